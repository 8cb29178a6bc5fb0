package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func TestRecordStatesSkipsUnknownAndKeepsTheLast(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	for _, id := range []string{"a", "b"} {
		if err := s.AddDevice(ctx, Device{ID: id, Volume: 70, CreatedAt: now}, "h"); err != nil {
			t.Fatal(err)
		}
	}
	unknown, err := s.RecordStates(ctx, []DeviceState{
		{Device: "a", State: protocol.State{Online: true, State: protocol.StateIdle, UptimeSec: 1}, Received: now},
		{Device: "ghost", State: protocol.State{Online: true}, Received: now},
		{Device: "a", State: protocol.State{Online: true, State: protocol.StatePlaying, Playing: "x-1", UptimeSec: 2}, Received: now.Add(time.Second)},
		{Device: "b", State: protocol.State{Online: false, State: protocol.StateOffline}, Received: now},
	})
	if err != nil || unknown != 1 {
		t.Fatalf("RecordStates: %d unknown, %v; want 1, nil", unknown, err)
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].ID != "a" || st[0].UptimeSec != 2 || st[0].State != protocol.StatePlaying || !st[0].LastSeen.Equal(now.Add(time.Second)) {
		t.Fatalf("a: %+v; want its last state", st[0])
	}
	if st[1].ID != "b" || st[1].Online {
		t.Fatalf("b: %+v; want offline", st[1])
	}
	if err := s.RecordState(ctx, "ghost", protocol.State{}, now); err == nil {
		t.Fatal("RecordState of an unknown device: no error")
	}
}

// benchDevices registers n boxes, box-00000 on, and returns their ids.
func benchDevices(b *testing.B, s *Store, n int, now time.Time) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("box-%05d", i)
		if err := s.AddDevice(context.Background(), Device{ID: ids[i], Volume: 70, CreatedAt: now}, "h"); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkRecordStates is the heartbeat ingestion rate of the store: 256
// heartbeats of 10,000 boxes per transaction, as the broadcaster batches
// them, against one transaction each.
func BenchmarkRecordStates(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	now := time.Now()
	const boxes = 10000
	benchDevices(b, s, boxes, now)
	state := protocol.State{Online: true, State: protocol.StateIdle, Volume: 70}
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			n := 0
			for b.Loop() {
				states := make([]DeviceState, batch)
				for j := range states {
					states[j] = DeviceState{Device: fmt.Sprintf("box-%05d", n%boxes), State: state, Received: now}
					n++
				}
				if _, err := s.RecordStates(ctx, states); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "heartbeats/s")
		})
	}
}

// BenchmarkRecordEvents is the answer-back ingestion rate of the store:
// every box of 5,000 answers playing then played for one item, 256 events
// per transaction, into a report that already holds 100,000 rows.
func BenchmarkRecordEvents(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	now := time.Now()
	const boxes = 5000
	ids := benchDevices(b, s, boxes, now)
	for r := range 20 {
		if err := s.addPending(ctx, fmt.Sprintf("old-%d-1", r), fmt.Sprintf("old-%d", r), now, ids); err != nil {
			b.Fatal(err)
		}
	}
	var batch []DeviceEvent
	n, item := 0, 0
	for b.Loop() {
		if n%(2*boxes) == 0 {
			item++
			if err := s.addPending(ctx, fmt.Sprintf("e-%d-1", item), fmt.Sprintf("e-%d", item), now, ids); err != nil {
				b.Fatal(err)
			}
		}
		batch = batch[:0]
		for range 256 {
			typ := protocol.EventPlaying
			if n%(2*boxes) >= boxes {
				typ = protocol.EventPlayed
			}
			batch = append(batch, DeviceEvent{Device: ids[n%boxes], Received: now,
				Event: protocol.Event{Item: fmt.Sprintf("e-%d-1", item), Announcement: fmt.Sprintf("e-%d", item), Type: typ, At: now.Add(time.Duration(n))}})
			n++
		}
		if _, err := s.RecordEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAddRule is storing a rule at 1,000 and 5,000 boxes, each run on a
// fresh store: a schedule (the rule alone) and an emergency to every box (the
// rule, then a pending report row per box in one statement). The API asks for
// the replan between the two (AddRuleThen), so the rows do not delay the
// plan.
func BenchmarkAddRule(b *testing.B) {
	ctx := context.Background()
	for _, boxes := range []int{1000, 5000} {
		for _, kind := range []string{KindCron, KindOnce} {
			b.Run(fmt.Sprintf("boxes=%d/kind=%s", boxes, kind), func(b *testing.B) {
				s := openStore(b)
				benchDevices(b, s, boxes, time.Now())
				if _, err := s.AddMedia(ctx, Media{SHA256: shaA, Name: "m", Codec: "wav", Size: 1, Duration: time.Second, CreatedAt: t0}); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					n++
					r := Rule{ID: fmt.Sprintf("%s-%d", kind, n), Kind: kind, Targets: Targets{All: true}, Media: shaA,
						Priority: protocol.Emergency, Repeat: 1, Validity: time.Hour, CreatedAt: t0}
					if kind == KindOnce {
						r.Start = t0.Add(time.Duration(n) * time.Second)
					} else {
						r.Cron = "0 6 * * *"
					}
					if err := s.AddRule(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
