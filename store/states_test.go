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

// BenchmarkRecordStates is the heartbeat ingestion rate of the store: 256
// heartbeats of 10,000 boxes per transaction, as the broadcaster batches
// them, against one transaction each.
func BenchmarkRecordStates(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/loa.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	const boxes = 10000
	for i := range boxes {
		if err := s.AddDevice(ctx, Device{ID: fmt.Sprintf("box-%05d", i), Volume: 70, CreatedAt: now}, "h"); err != nil {
			b.Fatal(err)
		}
	}
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
