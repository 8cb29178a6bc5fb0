package device

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// cand builds a waiting candidate: ready, starting at t0+start, open for
// window, with arrival order n.
func cand(id string, p protocol.Priority, start, window time.Duration, n uint64) candidate {
	return candidate{
		item: protocol.PlanItem{
			ID: id, Priority: p, Start: t0.Add(start), Expires: t0.Add(start + window),
			Repeat: 1, Status: protocol.StatusLive, Media: protocol.Media{SHA256: strings.Repeat("ab", 32), Size: 1, DurationMS: 1},
		},
		arrival: n,
		ready:   true,
	}
}

// Candidate modifiers.
func notReady(c candidate) candidate {
	c.ready, c.problem = false, because(protocol.WhyDownloading)
	return c
}
func started(c candidate) candidate { c.started = true; return c }
func interrupted(resume int64) func(candidate) candidate {
	return func(c candidate) candidate { c.preempted, c.resume = true, resume; return c }
}
func onPreempt(rule string) func(candidate) candidate {
	return func(c candidate) candidate { c.item.OnPreempt = rule; return c }
}
func with(c candidate, mods ...func(candidate) candidate) candidate {
	for _, m := range mods {
		c = m(c)
	}
	return c
}

const minute = time.Minute

// qstep is one thing that happens to the queue, and what must follow.
type qstep struct {
	at      time.Duration // the clock, from t0
	waiting []candidate   // decide with these waiting items...
	finish  *playResult   // ...or the player reports this

	// After decide:
	start string   // the item that starts ("" none)
	cut   string   // "preempt by X" / "replace by X" ("" none)
	final []string // "id event" for items that will never play, any order
	// After finish:
	events  []string // "id event: reason" in order (reason may be cut short)
	requeue string   // "at N": the item waits to go on from frame N; "": it does not
}

func TestQueue(t *testing.T) {
	n := func(id string, start time.Duration, arrival uint64) candidate {
		return cand(id, protocol.Normal, start, 30*minute, arrival)
	}
	e := func(id string, start time.Duration, arrival uint64) candidate {
		return cand(id, protocol.Emergency, start, 30*minute, arrival)
	}
	hi := func(id string, start time.Duration, arrival uint64) candidate {
		return cand(id, protocol.High, start, 30*minute, arrival)
	}
	bg := func(id string, start time.Duration, arrival uint64) candidate {
		return cand(id, protocol.Background, start, 30*minute, arrival)
	}
	// live is a live session's item: no media, open until its session
	// ends 10 minutes after its start (less the cue), its expiry later.
	live := func(id string, start time.Duration, arrival uint64) candidate {
		c := cand(id, protocol.High, start, 30*minute, arrival)
		c.item.Media, c.item.Stream = protocol.Media{}, &protocol.StreamRef{Session: "s-" + id, Channels: 1}
		c.until = t0.Add(start + 10*minute - cueLead)
		return c
	}
	played := func(id string) *playResult { return &playResult{id: id, completed: true} }
	cutAt := func(id string, pos int64) *playResult { return &playResult{id: id, pos: pos} }
	quiet, _ := parseQuietHours("22:00-05:00", "UTC") // t0 is 06:00 UTC

	tests := []struct {
		name  string
		quiet quietHours
		steps []qstep
	}{
		// What plays next.
		{"higher priority first", quietHours{}, []qstep{
			{waiting: []candidate{n("n", 0, 1), e("e", 0, 2)}, start: "e"},
		}},
		{"then earliest start", quietHours{}, []qstep{
			{at: 2 * minute, waiting: []candidate{n("b", 2*minute, 1), n("a", minute, 2)}, start: "a"},
		}},
		{"then first come", quietHours{}, []qstep{
			{at: minute, waiting: []candidate{hi("b", minute, 1), hi("a", minute, 2)}, start: "b"},
		}},
		{"background last", quietHours{}, []qstep{
			{at: 9 * minute, waiting: []candidate{bg("bg", 0, 1), n("n", 9*minute, 9)}, start: "n"},
		}},
		{"nothing before its start", quietHours{}, []qstep{
			{waiting: []candidate{e("e", minute, 1)}},
			{at: minute, waiting: []candidate{e("e", minute, 1)}, start: "e"},
		}},
		{"media not ready waits, an emergency does not", quietHours{}, []qstep{
			{waiting: []candidate{notReady(n("n", 0, 1))}},
			{waiting: []candidate{notReady(n("n", 0, 1)), notReady(e("e", 0, 2))}, start: "e"},
		}},
		{"an interrupted item goes before equal ones", quietHours{}, []qstep{
			{at: 5 * minute, waiting: []candidate{n("early", 0, 1), with(n("cut", 2*minute, 2), interrupted(0))}, start: "cut"},
		}},
		{"equal priority queues: first come, first played", quietHours{}, []qstep{
			{waiting: []candidate{n("a", 0, 1), n("b", 0, 2)}, start: "a"},
			{waiting: []candidate{n("b", 0, 2)}},
			{finish: played("a"), events: []string{"a played"}},
			{waiting: []candidate{n("b", 0, 2)}, start: "b"},
		}},
		{"lower priority waits", quietHours{}, []qstep{
			{waiting: []candidate{hi("h", 0, 1)}, start: "h"},
			{waiting: []candidate{n("n", 0, 2), bg("bg", 0, 3)}},
		}},

		// Preemption and on_preempt.
		{"preempted, restart", quietHours{}, []qstep{
			{waiting: []candidate{with(n("n", 0, 1), onPreempt(protocol.OnPreemptRestart))}, start: "n"},
			{at: minute, waiting: []candidate{e("e", minute, 2)}, cut: "preempt by e"},
			{at: minute, waiting: []candidate{e("e", minute, 2)}}, // stopping: nothing more
			{finish: cutAt("n", 48000), events: []string{"n preempted: preempted by e"}, requeue: "at 0"},
			{at: minute, waiting: []candidate{e("e", minute, 2), with(n("n", 0, 1), interrupted(0))}, start: "e"},
			{finish: played("e"), events: []string{"e played"}},
			{at: 2 * minute, waiting: []candidate{with(n("n", 0, 1), interrupted(0))}, start: "n"},
			{finish: played("n"), events: []string{"n played"}},
		}},
		{"preempted, restart by default", quietHours{}, []qstep{
			{waiting: []candidate{n("n", 0, 1)}, start: "n"},
			{waiting: []candidate{hi("h", 0, 2)}, cut: "preempt by h"},
			{finish: cutAt("n", 4800), events: []string{"n preempted: preempted by h"}, requeue: "at 0"},
		}},
		{"preempted, resume", quietHours{}, []qstep{
			{waiting: []candidate{with(n("n", 0, 1), onPreempt(protocol.OnPreemptResume))}, start: "n"},
			{waiting: []candidate{e("e", 0, 2)}, cut: "preempt by e"},
			{finish: cutAt("n", 96000), events: []string{"n preempted: preempted by e"}, requeue: "at 96000"},
		}},
		{"preempted, drop", quietHours{}, []qstep{
			{waiting: []candidate{with(bg("m", 0, 1), onPreempt(protocol.OnPreemptDrop))}, start: "m"},
			{waiting: []candidate{n("n", 0, 2)}, cut: "preempt by n"},
			{finish: cutAt("m", 1), events: []string{"m preempted: preempted by n", "m cancelled: preempted by n; dropped"}},
			{waiting: []candidate{n("n", 0, 2)}, start: "n"},
		}},
		{"every level preempts the ones below", quietHours{}, []qstep{
			{waiting: []candidate{bg("bg", 0, 1)}, start: "bg"},
			{waiting: []candidate{n("n", 0, 2)}, cut: "preempt by n"},
			{finish: cutAt("bg", 10), events: []string{"bg preempted: preempted by n"}, requeue: "at 0"},
			{waiting: []candidate{n("n", 0, 2), with(bg("bg", 0, 1), interrupted(0))}, start: "n"},
			{waiting: []candidate{hi("h", 0, 3)}, cut: "preempt by h"},
			{finish: cutAt("n", 10), events: []string{"n preempted: preempted by h"}, requeue: "at 0"},
			{waiting: []candidate{hi("h", 0, 3), with(n("n", 0, 2), interrupted(0)), with(bg("bg", 0, 1), interrupted(0))}, start: "h"},
			{waiting: []candidate{e("e", 0, 4)}, cut: "preempt by e"},
		}},
		{"finished just as it was cut: played", quietHours{}, []qstep{
			{waiting: []candidate{n("n", 0, 1)}, start: "n"},
			{waiting: []candidate{e("e", 0, 2)}, cut: "preempt by e"},
			{finish: played("n"), events: []string{"n played"}},
		}},
		{"a preempted item whose window closes expires", quietHours{}, []qstep{
			{at: 31 * minute, waiting: []candidate{with(n("n", 0, 1), interrupted(5))}, final: []string{"n expired"}},
		}},

		// Live sessions.
		{"a live session preempts a normal bulletin, an emergency preempts it", quietHours{}, []qstep{
			{waiting: []candidate{n("news", 0, 1)}, start: "news"},
			{at: minute, waiting: []candidate{live("speech", minute, 2)}, cut: "preempt by speech"},
			{finish: cutAt("news", 480), events: []string{"news preempted: preempted by speech"}, requeue: "at 0"},
			{at: minute, waiting: []candidate{live("speech", minute, 2), with(n("news", 0, 1), interrupted(0))}, start: "speech"},
			{at: 2 * minute, waiting: []candidate{e("e", 2*minute, 3)}, cut: "preempt by e"},
			{finish: cutAt("speech", 0), events: []string{"speech preempted: preempted by e"}, requeue: "at 0"},
		}},
		{"a live session that ends while preempted has played", quietHours{}, []qstep{
			{at: 11 * minute, waiting: []candidate{with(live("speech", 0, 1), interrupted(0)), n("news", 11*minute, 2)},
				start: "news", final: []string{"speech played"}},
		}},
		{"a live session ending while the box restarted has played", quietHours{}, []qstep{
			{at: 11 * minute, waiting: []candidate{started(live("speech", 0, 1))}, final: []string{"speech played"}},
		}},
		{"a live session that never played expires at its end, before its expiry", quietHours{}, []qstep{
			{waiting: []candidate{hi("h", 0, 1)}, start: "h"},
			{at: 10*minute - cueLead, waiting: []candidate{live("speech", 0, 2)}},
			{at: 10*minute - cueLead + time.Millisecond, waiting: []candidate{live("speech", 0, 2)}, final: []string{"speech expired"}},
		}},

		// Emergencies.
		{"a newer emergency replaces the playing one", quietHours{}, []qstep{
			{waiting: []candidate{e("e1", 0, 1)}, start: "e1"},
			{at: minute, waiting: []candidate{e("e2", minute, 2)}, cut: "replace by e2"},
			{finish: cutAt("e1", 100), events: []string{"e1 cancelled: replaced by e2"}},
			{at: minute, waiting: []candidate{e("e2", minute, 2)}, start: "e2"},
		}},
		{"an older emergency arriving later is replaced by the playing one", quietHours{}, []qstep{
			{at: minute, waiting: []candidate{e("e2", minute, 1)}, start: "e2"},
			{at: minute, waiting: []candidate{e("e1", 0, 2)}, final: []string{"e1 cancelled"}},
		}},
		{"of two due emergencies the newer plays, the older is cancelled", quietHours{}, []qstep{
			{at: minute, waiting: []candidate{e("e1", 0, 1), e("e2", minute, 2), n("n", 0, 3)}, start: "e2", final: []string{"e1 cancelled"}},
		}},
		{"same start: the later arrival is newer", quietHours{}, []qstep{
			{waiting: []candidate{e("x", 0, 2), e("y", 0, 1)}, start: "x", final: []string{"y cancelled"}},
		}},
		{"an emergency not yet due replaces nothing", quietHours{}, []qstep{
			{waiting: []candidate{e("e1", 0, 1), e("e2", minute, 2)}, start: "e1"},
			{waiting: []candidate{e("e2", minute, 2)}},
			{at: minute, waiting: []candidate{e("e2", minute, 2)}, cut: "replace by e2"},
		}},
		{"emergency without its message: failed, the tone played", quietHours{}, []qstep{
			{waiting: []candidate{notReady(e("e", 0, 1))}, start: "e"},
			{finish: &playResult{id: "e", completed: true, missing: 2}, events: []string{"e failed: the alert tone played 2 times, but the message could not be fetched; 404"}},
		}},
		{"emergency whose message came late: played", quietHours{}, []qstep{
			{waiting: []candidate{notReady(e("e", 0, 1))}, start: "e"},
			{finish: &playResult{id: "e", completed: true, missing: 1, messages: 2}, events: []string{"e played: the message was missing from 1 of 3 repeats"}},
		}},

		// Windows.
		{"expiry while waiting", quietHours{}, []qstep{
			{waiting: []candidate{n("playing", 0, 1)}, start: "playing"},
			{at: 31 * minute, waiting: []candidate{n("ready", 0, 2), notReady(n("late", 0, 3)), started(n("restarted", 0, 4)), e("alarm", 0, 5)},
				final: []string{"ready expired", "late missed", "restarted failed", "alarm expired"}},
		}},
		{"the window's last instant still plays", quietHours{}, []qstep{
			{at: 30 * minute, waiting: []candidate{n("n", 0, 1)}, start: "n"},
		}},

		// Quiet hours (22:00-05:00; t0 is 06:00).
		{"quiet hours: missed, emergencies play", quiet, []qstep{
			{at: 17 * time.Hour, waiting: []candidate{n("n", 17*time.Hour, 1), e("e", 17*time.Hour, 2), hi("h", 17*time.Hour, 3)},
				start: "e", final: []string{"n missed", "h missed"}},
		}},
		{"quiet hours end", quiet, []qstep{
			{at: 23 * time.Hour, waiting: []candidate{n("n", 23*time.Hour, 1)}, start: "n"},
		}},
		{"quiet hours begin after an item was due", quiet, []qstep{
			{at: 16*time.Hour - time.Second, waiting: []candidate{n("before", 16*time.Hour-time.Minute, 1)}, start: "before"},
			{at: 16 * time.Hour, waiting: []candidate{n("queued", 16*time.Hour-time.Minute, 2)}, final: []string{"queued missed"}},
		}},

		// The output's own troubles.
		{"sink error: failed", quietHours{}, []qstep{
			{waiting: []candidate{n("n", 0, 1)}, start: "n"},
			{finish: &playResult{id: "n", err: errors.New("sound card gone")}, events: []string{"n failed: sound card gone"}},
		}},
		{"removed while playing: already reported", quietHours{}, []qstep{
			{waiting: []candidate{n("n", 0, 1)}, start: "n"},
			{finish: cutAt("n", 5), events: nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q playQueue
			removed := strings.HasPrefix(tt.name, "removed")
			for i, st := range tt.steps {
				where := fmt.Sprintf("step %d", i)
				if st.finish != nil {
					if removed {
						q.stop(cutRemove, "")
					}
					out := q.finished(*st.finish, because(protocol.WhyDownloadFailed, "404"))
					var got []string
					for _, v := range out.events {
						got = append(got, fmt.Sprintf("%s %s: %s", v.id, v.event, v.why.text()))
					}
					if len(got) != len(st.events) {
						t.Fatalf("%s: events %q, want %q", where, got, st.events)
					}
					for k := range got {
						if !strings.HasPrefix(strings.TrimSuffix(got[k], ": "), st.events[k]) {
							t.Fatalf("%s: events %q, want %q", where, got, st.events)
						}
					}
					requeue := ""
					if out.requeue {
						requeue = fmt.Sprintf("at %d", out.resume)
					}
					if requeue != st.requeue {
						t.Fatalf("%s: requeue %q, want %q", where, requeue, st.requeue)
					}
					if q.state != queueIdle {
						t.Fatalf("%s: %v after finished", where, q.state)
					}
					continue
				}
				d := q.decide(t0.Add(st.at), 0, st.waiting, tt.quiet)
				var final []string
				for _, v := range d.final {
					final = append(final, fmt.Sprintf("%s %s", v.id, v.event))
				}
				slices.Sort(final)
				want := slices.Clone(st.final)
				slices.Sort(want)
				if !slices.Equal(final, want) {
					t.Fatalf("%s: final %q, want %q", where, final, want)
				}
				cut := ""
				if d.cut != cutNone {
					cut = d.cut.String() + " by " + d.by
				}
				if cut != st.cut {
					t.Fatalf("%s: cut %q, want %q", where, cut, st.cut)
				}
				start := ""
				if d.start != nil {
					start = d.start.item.ID
				}
				if start != st.start {
					t.Fatalf("%s: start %q, want %q", where, start, st.start)
				}
				// Apply it as the loop would.
				if d.cut != cutNone {
					q.stop(d.cut, d.by)
				}
				if d.start != nil {
					if q.state != queueIdle {
						t.Fatalf("%s: started %s while %v", where, start, q.state)
					}
					q.start(*d.start, func() {})
				}
			}
		})
	}
}

func TestQueueStopKeepsRemoval(t *testing.T) {
	var q playQueue
	cuts := 0
	q.start(cand("n", protocol.Normal, 0, minute, 1), func() { cuts++ })
	q.stop(cutPreempt, "e")
	q.stop(cutRemove, "")
	q.stop(cutPreempt, "f")
	if q.state != queueStopping || q.cause != cutRemove || cuts != 1 || !q.onOutput("n") {
		t.Fatalf("state %v cause %v cuts %d", q.state, q.cause, cuts)
	}
	if out := q.finished(playResult{id: "n"}, nil); len(out.events) != 0 || out.requeue {
		t.Fatalf("a removed item's outcome: %+v", out)
	}
}

func TestQuietHours(t *testing.T) {
	hcm := "Asia/Ho_Chi_Minh" // UTC+7, no daylight saving
	tests := []struct {
		span, tz string
		at       string // UTC
		want     bool
		err      bool
	}{
		{"22:00-05:00", hcm, "2026-03-02T15:00:00Z", true, false}, // 22:00 local
		{"22:00-05:00", hcm, "2026-03-02T14:59:00Z", false, false},
		{"22:00-05:00", hcm, "2026-03-02T21:59:00Z", true, false}, // 04:59
		{"22:00-05:00", hcm, "2026-03-02T22:00:00Z", false, false},
		{"12:00-13:30", "UTC", "2026-03-02T13:29:59Z", true, false},
		{"12:00-13:30", "UTC", "2026-03-02T11:59:59Z", false, false},
		{"", hcm, "2026-03-02T15:00:00Z", false, false},
		{"22-05", hcm, "2026-03-02T15:00:00Z", false, true},
		{"22:00-22:00", hcm, "2026-03-02T15:00:00Z", false, true},
		{"25:00-05:00", hcm, "2026-03-02T15:00:00Z", false, true},
		{"22:00-05:00", "Mars/Olympus", "2026-03-02T15:00:00Z", false, true}, // read in the box's zone (UTC here)
	}
	for _, tt := range tests {
		t.Run(tt.span+" "+tt.tz+" "+tt.at, func(t *testing.T) {
			q, err := parseQuietHours(tt.span, tt.tz)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if tt.tz == "Mars/Olympus" {
				if !q.set || q.loc != time.Local {
					t.Fatalf("an unknown zone: %v, want the span in the box's zone", q)
				}
				return
			}
			at, _ := time.Parse(time.RFC3339, tt.at)
			if got := q.contains(at); got != tt.want {
				t.Fatalf("contains(%s) = %v in %v", tt.at, got, q)
			}
		})
	}
}

// TestQueueSessionCutsACueAhead: a live session cuts a lower item a cue
// before its start, so that once the output is free it starts on time
// (cut at its start, it could only join at its live point, a cue later).
// An announcement cuts at its start.
func TestQueueSessionCutsACueAhead(t *testing.T) {
	session := cand("speech", protocol.High, minute, 30*minute, 2)
	session.item.Media, session.item.Stream = protocol.Media{}, &protocol.StreamRef{Session: "s-speech", Channels: 1}
	for _, tc := range []struct {
		name   string
		higher candidate
		cutAt  time.Duration
	}{
		{"a live session", session, minute - cueLead},
		{"an announcement", cand("speech", protocol.High, minute, 30*minute, 2), minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q playQueue
			q.start(cand("news", protocol.Normal, 0, 30*minute, 1), func() {})
			waiting := []candidate{tc.higher}
			if d := q.decide(t0.Add(tc.cutAt-time.Millisecond), cueLead, waiting, quietHours{}); d.cut != cutNone {
				t.Fatalf("cut %v by %s before %v", d.cut, d.by, tc.cutAt)
			}
			d := q.decide(t0.Add(tc.cutAt), cueLead, waiting, quietHours{})
			if d.cut != cutPreempt || d.by != "speech" {
				t.Fatalf("at %v: cut %v by %q, want a preemption by speech", tc.cutAt, d.cut, d.by)
			}
			q.stop(d.cut, d.by)
			q.finished(playResult{id: "news", pos: 480}, nil)
			after := t0.Add(tc.cutAt + 30*time.Millisecond) // the fade
			d = q.decide(after, cueLead, waiting, quietHours{})
			if d.start == nil || d.start.item.ID != "speech" {
				t.Fatalf("after the cut: %+v, want speech to start", d)
			}
			if tc.higher.item.Stream != nil && !d.start.item.Start.After(after) {
				t.Errorf("the session goes on the output at %v, after its start %v", after, d.start.item.Start)
			}
		})
	}
}
