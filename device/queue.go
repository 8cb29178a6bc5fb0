package device

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// queueState is where the single output stands.
type queueState int

// The play queue's states:
//
//	idle ──start(x)──▶ playing(x) ──finished──▶ idle
//	                   playing(x) ──stop──▶ stopping(x) ──finished──▶ idle
//
// Preemption will add playing(x) ──preempt(y)──▶ stopping(x), then
// playing(y), with x requeued by its on_preempt rule.
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

// playQueue is the one place that decides what the output plays. It is owned
// by the loop goroutine.
type playQueue struct {
	state   queueState
	current protocol.PlanItem
	since   time.Time
	cancel  context.CancelFunc
}

// queued is an item waiting for the output.
type queued struct {
	item    protocol.PlanItem
	arrival uint64
}

// before orders waiting items: highest priority first, then earliest start,
// then first come.
func before(x, y queued) int {
	return cmp.Or(
		-cmp.Compare(x.item.Priority, y.item.Priority),
		x.item.Start.Compare(y.item.Start),
		cmp.Compare(x.arrival, y.arrival),
		strings.Compare(x.item.ID, y.item.ID),
	)
}

// pick returns the item to start now from due, or false when the output is
// busy (an equal or higher item waits its turn; lower ones wait too until
// preemption exists) or nothing is due.
func (q *playQueue) pick(due []queued) (protocol.PlanItem, bool) {
	if q.state != queueIdle || len(due) == 0 {
		return protocol.PlanItem{}, false
	}
	return slices.MinFunc(due, before).item, true
}

// start moves idle → playing.
func (q *playQueue) start(it protocol.PlanItem, now time.Time, cancel context.CancelFunc) {
	q.state, q.current, q.since, q.cancel = queuePlaying, it, now, cancel
}

// playing reports whether id is on the output.
func (q *playQueue) playing(id string) bool {
	return q.state != queueIdle && q.current.ID == id
}

// stop asks the output to stop the current item: playing → stopping.
func (q *playQueue) stop() {
	if q.state == queuePlaying {
		q.state = queueStopping
		q.cancel()
	}
}

// finished moves back to idle once the sink has returned.
func (q *playQueue) finished() {
	if q.cancel != nil {
		q.cancel()
	}
	*q = playQueue{}
}

// schedule makes the decisions due at now: items whose window closed become
// expired, missed or failed; the best due item starts if the output is idle.
func (a *Agent) schedule(now time.Time) {
	var due []queued
	for id, it := range a.live {
		rec := a.items[id]
		if rec == nil || rec.Status.Final() || rec.Status == protocol.EventPlaying {
			continue
		}
		a.updateReadiness(it, rec)
		if rec.Status.Final() {
			continue
		}
		if now.After(it.Expires) {
			switch {
			case rec.Started:
				a.setStatus(it, rec, protocol.EventFailed, "interrupted by a restart, and its window closed before it could play again")
			case rec.Status == protocol.EventReady:
				a.setStatus(it, rec, protocol.EventExpired, "its window closed before it could play (output busy or box off)")
			default:
				a.setStatus(it, rec, protocol.EventMissed, "media not ready by expiry: "+a.mediaProblem(it.Media.SHA256))
			}
			continue
		}
		if rec.Status == protocol.EventReady && !it.Start.After(now) {
			due = append(due, queued{item: it, arrival: rec.Arrival})
		}
	}
	if it, ok := a.queue.pick(due); ok {
		a.startPlayback(it, now)
	}
}
