package device

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// The play queue decides, in one place, what the box's single output plays:
// which waiting item starts, which playing item is cut for a more urgent
// one, what becomes of the cut item, and which items will never play. It
// does no I/O: the loop gives it the waiting items and applies what it
// decides, so the rules are tested as a table (queue_test.go).
//
//	          start(x)               finished: played | failed
//	idle ───────────────▶ playing(x) ─────────────────────────▶ idle
//	 ▲                        │
//	 │                        │ cut: preempt(y) | replace(y) | remove
//	 │                        ▼
//	 └──── finished ──── stopping(x)   (the output fades x out)
//
// While stopping nothing starts; once the sink has returned, x's outcome is
// applied and the best waiting item starts at the next decision:
//
//   - preempt: a due item y of higher priority than x. x reports
//     preempted, then follows its on_preempt rule: restart (waits, plays
//     from the beginning), resume (waits, continues from the frame where
//     it was cut) or drop (cancelled). A waiting x whose window closes
//     is expired.
//   - replace: x is an emergency and y a newer one: x is cancelled
//     ("replaced by y"). A waiting older emergency is cancelled the same
//     way without ever playing.
//   - remove: x left the plan (the loop reports cancelled itself).
//
// A shutdown is no transition: the loop ends, and an item that was playing
// plays again from its start after a restart if its window is still open.
//
// Waiting items are ordered by priority, then interrupted ones first, then
// earliest start, then first come (equal priority never preempts). An item
// is due from its start until it expires; a non-emergency item also needs
// its media. An emergency starts when due even without its media: its alert
// tone is synthesized on the box. Items due in quiet hours are missed,
// except emergencies.
//
// A live session's item needs nothing fetched. Its window closes cueLead
// before its session ends (candidate.until), if that is before its expiry.
// Preempted (restart or resume), it waits to rejoin the session at its live
// point; if the session ends first, or while the box restarted, it has
// played (part of it), not expired.
type queueState int

const (
	queueIdle queueState = iota
	queuePlaying
	queueStopping
)

func (s queueState) String() string {
	switch s {
	case queuePlaying:
		return "playing"
	case queueStopping:
		return "stopping"
	}
	return "idle"
}

// cutCause is why the output stops an item before its end.
type cutCause int

const (
	cutNone cutCause = iota
	cutPreempt
	cutReplace
	cutRemove
)

func (c cutCause) String() string {
	return [...]string{"none", "preempt", "replace", "remove"}[c]
}

// candidate is an item that may go on the output, as the loop sees it.
type candidate struct {
	item    protocol.PlanItem
	arrival uint64 // first come, first played
	// ready is true when the item's media is decoded, or it needs none.
	ready bool
	// problem says why the media is not ready, for a missed item's reason.
	problem reason
	// started is true when it began playing before a restart of the box.
	started bool
	// preempted is true when a higher item cut it and it waits to go on.
	preempted bool
	// resume is the frame of its program to continue from.
	resume int64
	// until, if set, is the latest it may start instead of its expiry: a
	// live session's item cannot join less than cueLead before the
	// session ends.
	until time.Time
}

// expires is the end of c's window: it must not start after it.
func (c candidate) expires() time.Time {
	if !c.until.IsZero() {
		return c.until
	}
	return c.item.Expires
}

func (c candidate) emergency() bool { return c.item.Priority == protocol.Emergency }

// due reports whether c may start at t (its window's end is checked apart).
func (c candidate) due(t time.Time) bool {
	return !c.item.Start.After(t) && (c.ready || c.emergency())
}

// order ranks waiting candidates: the first plays first.
func order(x, y candidate) int {
	return cmp.Or(
		-cmp.Compare(x.item.Priority, y.item.Priority),
		-boolCmp(x.preempted, y.preempted),
		x.item.Start.Compare(y.item.Start),
		cmp.Compare(x.arrival, y.arrival),
		strings.Compare(x.item.ID, y.item.ID),
	)
}

// newer orders emergencies by how recent they are: later start, then later
// arrival.
func newer(x, y candidate) bool {
	return cmp.Or(
		x.item.Start.Compare(y.item.Start),
		cmp.Compare(x.arrival, y.arrival),
		strings.Compare(x.item.ID, y.item.ID),
	) > 0
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// verdict is a final event for an item that will not play (again).
type verdict struct {
	id    string
	event protocol.EventType
	why   reason
}

// decision is what the queue wants done now.
type decision struct {
	final []verdict  // items that will never play
	cut   cutCause   // cut the item on the output (cutNone: leave it)
	by    string     // the item that cut it
	start *candidate // put this item on the output
}

// playQueue is the output's state. It is owned by the loop goroutine.
type playQueue struct {
	state   queueState
	current candidate
	cause   cutCause // while stopping: why
	by      string   // while stopping: the item that cut it
	// cut asks the player to fade the current item out.
	cut context.CancelFunc
}

// onOutput reports whether id is playing or being stopped.
func (q *playQueue) onOutput(id string) bool {
	return q.state != queueIdle && q.current.item.ID == id
}

// decide makes every decision due at now about the waiting items (those not
// on the output, not final), given the quiet hours. An idle output takes an
// item up to cue before its start, so that the player can open the sound
// card and start its first sample on time (the candidate's start is then
// in the future). A live session's item cuts a lower one as early, for the
// same reason: cut at its start, it could only join at its live point.
func (q *playQueue) decide(now time.Time, cue time.Duration, waiting []candidate, quiet quietHours) decision {
	var d decision
	var due []candidate
	dueBy := now
	if q.state == queueIdle {
		dueBy = now.Add(cue)
	}
	for _, c := range waiting {
		by := dueBy
		if c.item.Stream != nil {
			// A session does not wait for the output: whatever it would
			// cut is cut a cue ahead, so it starts on time rather than at
			// its live point, a cue after its start.
			by = now.Add(cue)
		}
		switch {
		case now.After(c.expires()):
			d.final = append(d.final, expiry(c))
		case !c.due(by):
		case !c.emergency() && quiet.contains(later(now, c.item.Start)):
			d.final = append(d.final, verdict{c.item.ID, protocol.EventMissed, because(protocol.WhyQuietHours)})
		default:
			due = append(due, c)
		}
	}

	// The newest emergency replaces every other one, waiting or playing.
	var newest *candidate
	consider := func(c *candidate) {
		if c.emergency() && (newest == nil || newer(*c, *newest)) {
			newest = c
		}
	}
	if q.state == queuePlaying {
		consider(&q.current)
	}
	for i := range due {
		consider(&due[i])
	}
	if newest != nil {
		id := newest.item.ID
		kept := due[:0]
		for _, c := range due {
			if c.emergency() && c.item.ID != id {
				d.final = append(d.final, verdict{c.item.ID, protocol.EventCancelled, because(protocol.WhyReplacedBy, id)})
				continue
			}
			kept = append(kept, c)
		}
		due = kept
	}

	var best *candidate
	for i := range due {
		if best == nil || order(due[i], *best) < 0 {
			best = &due[i]
		}
	}
	if best == nil {
		return d
	}
	switch q.state {
	case queueIdle:
		d.start = best
	case queuePlaying:
		switch {
		case q.current.emergency() && best.emergency():
			d.cut, d.by = cutReplace, best.item.ID
		case best.item.Priority > q.current.item.Priority:
			d.cut, d.by = cutPreempt, best.item.ID
		}
	}
	return d
}

// expiry is the final event of a waiting item whose window closed.
func expiry(c candidate) verdict {
	id := c.item.ID
	switch {
	case c.item.Stream != nil && c.preempted:
		// It sounded part of the session: the loop adds how much.
		return verdict{id, protocol.EventPlayed, because(protocol.WhySessionPreempted)}
	case c.item.Stream != nil && c.started:
		return verdict{id, protocol.EventPlayed, because(protocol.WhySessionRestart)}
	case c.preempted:
		return verdict{id, protocol.EventExpired, because(protocol.WhyPreemptedExpired)}
	case c.started:
		return verdict{id, protocol.EventFailed, because(protocol.WhyRestartExpired)}
	case c.ready || c.emergency():
		return verdict{id, protocol.EventExpired, because(protocol.WhyWindowClosed)}
	}
	return verdict{id, protocol.EventMissed, because(protocol.WhyMediaNotReady).and(c.problem)}
}

// start moves idle → playing(c); cut will ask the player to stop it.
func (q *playQueue) start(c candidate, cut context.CancelFunc) {
	*q = playQueue{state: queuePlaying, current: c, cut: cut}
}

// stop moves playing → stopping for cause (by: the item that caused it).
// A second stop while stopping keeps the first cause, except that removal
// overrides a preemption or replacement (the item then has no future).
func (q *playQueue) stop(cause cutCause, by string) {
	switch q.state {
	case queuePlaying:
		q.state, q.cause, q.by = queueStopping, cause, by
		q.cut()
	case queueStopping:
		if cause == cutRemove {
			q.cause, q.by = cause, by
		}
	}
}

// playResult is what the player reports after one play.
type playResult struct {
	id  string
	err error
	// completed is true when the whole program reached the sink.
	completed bool
	// pos is the frame of the program the listeners had reached when the
	// item was cut (counted from the program's start, not from where this
	// play began).
	pos int64
	// messages and missing count the repeats in which the message played,
	// and in which it could not be (an emergency whose media was not
	// there: its alert tone played alone).
	messages, missing int
}

// outcome is what becomes of the item that was on the output.
type outcome struct {
	events  []verdict // in order; may be empty (already reported)
	requeue bool      // it waits to play again (preempted with restart or resume)
	resume  int64     // the frame to continue from
}

// finished moves stopping/playing → idle with the player's result and
// returns the outcome for the item. problem says why its media is not
// ready, for an emergency whose message could not play.
func (q *playQueue) finished(r playResult, problem reason) outcome {
	c, cause, by := q.current, q.cause, q.by
	if q.cut != nil {
		q.cut()
	}
	*q = playQueue{}
	id := c.item.ID
	if r.completed && r.err == nil && cause != cutRemove {
		cause = cutNone // it ended on its own just as it was cut
	}
	if r.err != nil && cause != cutNone && isCanceled(r.err) {
		r.err = nil // the cut itself
	}
	switch {
	case cause == cutRemove:
		return outcome{}
	case r.err != nil:
		return outcome{events: []verdict{{id, protocol.EventFailed, because(protocol.WhyError, r.err.Error())}}}
	case cause == cutReplace:
		return outcome{events: []verdict{{id, protocol.EventCancelled, because(protocol.WhyReplacedBy, by)}}}
	case cause == cutPreempt:
		ev := verdict{id, protocol.EventPreempted, because(protocol.WhyPreemptedBy, by)}
		switch c.item.OnPreempt {
		case protocol.OnPreemptDrop:
			return outcome{events: []verdict{ev, {id, protocol.EventCancelled, ev.why.and(because(protocol.WhyDropped))}}}
		case protocol.OnPreemptResume:
			return outcome{events: []verdict{ev}, requeue: true, resume: r.pos}
		}
		return outcome{events: []verdict{ev}, requeue: true} // restart, the default
	}
	switch {
	case r.missing > 0 && r.messages == 0:
		return outcome{events: []verdict{{id, protocol.EventFailed,
			because(protocol.WhyToneOnly, strconv.Itoa(r.missing)).and(problem)}}}
	case r.missing > 0:
		return outcome{events: []verdict{{id, protocol.EventPlayed,
			because(protocol.WhyMessageMissing, strconv.Itoa(r.missing), strconv.Itoa(r.missing+r.messages))}}}
	}
	return outcome{events: []verdict{{id, protocol.EventPlayed, nil}}}
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }
