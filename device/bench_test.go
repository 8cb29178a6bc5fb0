package device

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// BenchmarkPlayPipeline measures the player's path (file → repeat/gap →
// gain → sink) for 10 s of PCM into an unpaced null sink.
func BenchmarkPlayPipeline(b *testing.B) {
	a := fuzzAgent(b)
	sha := strings.Repeat("ef", 32)
	pcm := make([]byte, audio.DefaultFormat.Bytes(10*time.Second))
	if err := os.WriteFile(a.pcmPath(sha), pcm, 0o644); err != nil {
		b.Fatal(err)
	}
	a.sink = audio.NewNullSink(audio.DefaultFormat, false)
	it := protocol.PlanItem{ID: "bench", Repeat: 1, Media: protocol.Media{SHA256: sha}}
	b.SetBytes(int64(len(pcm)))
	for b.Loop() {
		if err := a.play(playJob{ctx: context.Background(), item: it, path: a.pcmPath(sha), volume: 70}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReconcileFullPlan measures taking a plan of MaxPlanItems items
// that replaces one of the same size (half the items change).
func BenchmarkReconcileFullPlan(b *testing.B) {
	a := fuzzAgent(b)
	mk := func(offset int) *heldPlan {
		items := make([]protocol.PlanItem, protocol.MaxPlanItems)
		for i := range items {
			items[i] = protocol.PlanItem{
				ID: fmt.Sprintf("item-%d", i+offset), Start: t0.Add(time.Duration(i) * time.Minute), Expires: t0.Add(time.Duration(i+10) * time.Minute),
				Priority: protocol.Normal, Repeat: 1, Status: protocol.StatusLive,
				Media: protocol.Media{SHA256: fmt.Sprintf("%064x", i%50), Size: 1, DurationMS: 1},
			}
		}
		return &heldPlan{Plan: protocol.Plan{Target: "all", Items: items}}
	}
	plans := []*heldPlan{mk(0), mk(protocol.MaxPlanItems / 2)}
	for i := 0; b.Loop(); i++ {
		a.plans["all"] = plans[i%2]
		a.reconcile()
		a.out.next()
	}
}
