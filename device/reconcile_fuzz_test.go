package device

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// allowed is the answer-back state machine every item must follow.
var allowed = map[protocol.EventType][]protocol.EventType{
	"": {protocol.EventReceived},
	// An emergency may start before its media is fetched.
	protocol.EventReceived: {protocol.EventReady, protocol.EventFailed, protocol.EventMissed, protocol.EventExpired, protocol.EventCancelled, protocol.EventPlaying},
	protocol.EventReady:    {protocol.EventPlaying, protocol.EventExpired, protocol.EventMissed, protocol.EventCancelled, protocol.EventReady},
	protocol.EventPlaying:  {protocol.EventPlayed, protocol.EventFailed, protocol.EventCancelled, protocol.EventPreempted},
	// A live session that ended while preempted was played (in part).
	protocol.EventPreempted: {protocol.EventPlaying, protocol.EventExpired, protocol.EventMissed, protocol.EventCancelled, protocol.EventPlayed},
	protocol.EventCancelled: {protocol.EventReceived},
	protocol.EventPlayed:    nil,
	protocol.EventFailed:    nil,
	protocol.EventMissed:    nil,
	protocol.EventExpired:   nil,
}

// FuzzReconcile drives the loop's handlers with a script of plans, configs,
// clock moves and fetch/play outcomes decoded from the input, and checks
// that every item's events follow the state machine and that one item at
// most is on the output. Item i5 is a live session's; the box follows its
// session exactly while it is not final and near its cue or on the output.
func FuzzReconcile(f *testing.F) {
	f.Add([]byte{0, 0xff, 2, 5, 2, 5, 2, 30})
	// Fetch, play, fail a play, drop an item, run past every window.
	f.Add([]byte{0, 0xff, 3, 0, 2, 40, 5, 0, 2, 40, 5, 0, 2, 40, 5, 1, 0, 0x01, 2, 255})
	f.Add([]byte{1, 3, 0, 0x0f, 4, 0xf0, 2, 1, 3, 2, 2, 60, 0, 0x03})
	f.Add([]byte{0, 0x81, 5, 2, 2, 3, 0, 0x00, 2, 10, 0, 0x81, 2, 200})
	f.Fuzz(func(t *testing.T, script []byte) {
		a := fuzzAgent(t)
		clock := a.clock.base.(*fakeClock)
		a.runCtx = context.Background()
		ids := []string{"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7"}
		targets := []string{"all", "group/g1", "group/g2", "device/" + testID}
		last := map[string]protocol.EventType{}
		gen := t0
		var playing []string

		check := func() {
			ops, _ := a.out.next()
			for _, x := range ops {
				if x.kind != opPublish || !strings.HasSuffix(x.topics[0], "/events") {
					continue
				}
				var ev protocol.Event
				if _, err := protocol.Decode(x.payload, testSite, protocol.KindEvent, &ev); err != nil {
					t.Fatalf("bad event: %v", err)
				}
				prev := last[ev.Item]
				ok := false
				for _, n := range allowed[prev] {
					ok = ok || n == ev.Type
				}
				if !ok {
					t.Fatalf("item %s: %q after %q", ev.Item, ev.Type, prev)
				}
				last[ev.Item] = ev.Type
			}
			n := 0
			for _, rec := range a.items {
				if rec.Status == protocol.EventPlaying {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("%d items playing at once", n)
			}
		}
		// Answer the workers the loop would have: fetches succeed or fail,
		// the player finishes what it was given.
		finishFetches := func(fail bool) {
			for {
				select {
				case j := <-a.fetchReq:
					var err error
					if fail {
						err = errors.New("network down")
					}
					a.onFetched(fetchResult{sha: j.sha, err: err})
				default:
					return
				}
			}
		}
		// The player finishes what it was given: to the end, with an
		// error, or cut at some frame if the loop asked.
		finishPlay := func(how byte) {
			select {
			case j := <-a.playReq:
				playing = append(playing, j.item.ID)
				r := playResult{id: j.item.ID, completed: true, messages: 1}
				switch {
				case how&1 == 1:
					r.err, r.completed = errors.New("sink broke"), false
				case j.cut.Err() != nil && how&2 == 2:
					r.completed, r.pos = false, int64(how)
				}
				j.stop()
				a.onPlayed(r)
			default:
			}
		}

		for i := 0; i+1 < len(script); i += 2 {
			op, arg := script[i]%7, script[i+1]
			switch op {
			case 0, 4: // a plan for a target: arg's bits pick items
				target := targets[int(arg)%len(targets)]
				var items []protocol.PlanItem
				for k, id := range ids {
					if arg&(1<<k) != 0 {
						start := t0.Add(time.Duration(k*7) * time.Minute)
						it := protocol.PlanItem{
							ID: id, Start: start, Expires: start.Add(time.Duration(5+k) * time.Minute),
							Priority: protocol.Priority(k % 4), Repeat: 1, Status: protocol.StatusLive,
							OnPreempt: []string{"", protocol.OnPreemptRestart, protocol.OnPreemptResume, protocol.OnPreemptDrop}[k%4],
							Media:     protocol.Media{SHA256: fmt.Sprintf("%064x", k%3), Size: 1, DurationMS: 1},
						}
						if k == 5 {
							it.Media, it.Stream = protocol.Media{}, &protocol.StreamRef{Session: "s5", Channels: 1}
							if op == 4 { // a newer plan says when it ended
								it.Stream.Ends = start.Add(2 * time.Minute)
							}
						}
						items = append(items, it)
					}
				}
				if op == 0 {
					gen = gen.Add(time.Second)
				} else {
					gen = gen.Add(-time.Second) // sometimes stale
				}
				topic := a.topics.Root() + "/plan/" + target
				b := signed(t, topic, protocol.KindPlan, testSite, uint64(i), gen, protocol.Plan{Target: target, Generated: gen, Items: items})
				a.handleMessage(topic, b, false)
				a.applyInbox()
			case 1: // config: arg's bits pick groups
				var groups []string
				if arg&1 != 0 {
					groups = append(groups, "g1")
				}
				if arg&2 != 0 {
					groups = append(groups, "g2")
				}
				b := signed(t, a.topics.DeviceConfig(testID), protocol.KindConfig, testSite, uint64(i), t0.Add(time.Duration(i)*time.Second), protocol.DeviceConfig{Groups: groups, Volume: int(arg) % 101})
				a.handleMessage(a.topics.DeviceConfig(testID), b, false)
				a.applyInbox()
			case 2: // time passes
				clock.Advance(time.Duration(arg) * time.Minute / 4)
			case 3:
				finishFetches(arg&1 == 1)
			case 5:
				finishPlay(arg)
			case 6: // time jumps back to before the clock is plausible, or forward again
				if arg&1 == 1 {
					clock.Set(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC))
				} else {
					clock.Set(t0.Add(time.Duration(arg) * time.Minute))
				}
			}
			now := clock.Now()
			a.syncStreams(now)
			if a.plausible(now) {
				a.schedule(now)
			}
			a.syncStreams(now)
			a.dispatchFetches(now, a.plausible(now))
			check()
			// The session of i5 is followed while its item is not final and
			// its cue is near or it is on the output.
			it, inPlan := a.live["i5"]
			rec := a.items["i5"]
			want := inPlan && rec != nil && !rec.Status.Final() &&
				(a.queue.onOutput("i5") || a.plausible(now) && !now.Before(it.Start.Add(-cueLead-streamFollowLead)))
			if got := a.streams.get("s5") != nil; got != want {
				t.Fatalf("following the session of i5: %v, want %v (status %v)", got, want, rec)
			}
		}
	})
}
