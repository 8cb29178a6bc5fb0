package device

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// TestBatchEvents checks how the outbox worker merges queued answers: runs
// of events become batches of at most protocol.MaxBatchEvents, in order,
// carrying every disk record; other operations keep their place.
func TestBatchEvents(t *testing.T) {
	a := &Agent{cfg: validConfig(), log: slog.New(slog.DiscardHandler)}
	a.topics = protocol.NewTopics(a.cfg.Site)
	ev := func(i int) op {
		b, err := protocol.Encode(protocol.KindEvent, a.cfg.Site, uint64(i), t0.Add(time.Duration(i)*time.Second),
			protocol.Event{Item: fmt.Sprintf("a-%d", i), Type: protocol.EventPlaying, At: t0})
		if err != nil {
			t.Fatal(err)
		}
		return a.eventOp(b, uint64(i))
	}
	state := op{kind: opPublish, topics: []string{a.topics.DeviceState(a.cfg.ID)}, retained: true, payload: []byte("s")}
	ops := []op{ev(1), ev(2), state, ev(3)}
	for i := 4; i < 4+protocol.MaxBatchEvents; i++ {
		ops = append(ops, ev(i))
	}
	got := a.batchEvents(ops)
	// [1 2] state [3 .. 66] 67
	if len(got) != 4 || got[1].payload[0] != 's' {
		t.Fatalf("%d operations, want a batch, the state, a full batch and one event", len(got))
	}
	next := 1
	for i, x := range got {
		if i == 1 {
			continue
		}
		evs, err := protocol.DecodeEvents(x.payload, a.cfg.Site)
		if err != nil {
			t.Fatalf("operation %d: %v", i, err)
		}
		if len(evs) != len(x.records) {
			t.Fatalf("operation %d: %d events, %d records", i, len(evs), len(x.records))
		}
		for j, e := range evs {
			if e.Item != fmt.Sprintf("a-%d", next) || x.records[j] != uint64(next) {
				t.Fatalf("operation %d event %d: %s (record %d), want a-%d", i, j, e.Item, x.records[j], next)
			}
			next++
		}
	}
	if next != 4+protocol.MaxBatchEvents {
		t.Fatalf("%d events out, want %d", next-1, 3+protocol.MaxBatchEvents)
	}
	var env protocol.Envelope
	if err := json.Unmarshal(got[2].payload, &env); err != nil || env.Kind != protocol.KindEvents || env.Seq != 2+protocol.MaxBatchEvents {
		t.Fatalf("full batch: kind %s, sequence %d, %v: want the newest event's sequence", env.Kind, env.Seq, err)
	}
	if env, _ := protocol.DecodeEnvelope(got[3].payload, a.cfg.Site, protocol.KindEvent); env.Seq != 3+protocol.MaxBatchEvents {
		t.Fatalf("a lone event is sent as it was, got sequence %d", env.Seq)
	}
}

func TestAnswerDelay(t *testing.T) {
	if d := AnswerDelay(0); d != eventLinger {
		t.Fatalf("no spread: %v, want %v", d, eventLinger)
	}
	var longest time.Duration
	for range 1000 {
		d := AnswerDelay(500)
		if d < eventLinger || d >= eventLinger+500*time.Millisecond {
			t.Fatalf("spread 500 ms: %v is outside [%v, %v)", d, eventLinger, eventLinger+500*time.Millisecond)
		}
		longest = max(longest, d)
	}
	if longest < eventLinger+250*time.Millisecond {
		t.Fatalf("1,000 waits within a 500 ms spread, the longest %v: not spread", longest)
	}
}
