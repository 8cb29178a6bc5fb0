package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
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
		if r := a.play(newJob(it, a.pcmPath(sha), 70)); r.err != nil {
			b.Fatal(r.err)
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

// timingPrefix starts the lines in which a child process reports timings.
const timingPrefix = "TIMING "

// timing is when a play began and was cut, from the moment sound flowed.
type timing struct {
	Name  string        `json:"name"`
	Began time.Duration `json:"began"`
	Cut   time.Duration `json:"cut"` // 0: not cut
}

// timedSink records the timing of every play of the sink it wraps.
type timedSink struct {
	audio.Sink
	origin time.Time
	mu     sync.Mutex
	plays  []timing
}

func (s *timedSink) Play(ctx context.Context, name string, pcm io.Reader) error {
	tm := timing{Name: name, Began: time.Since(s.origin)}
	var mu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		tm.Cut = time.Since(s.origin)
		mu.Unlock()
	})
	err := s.Sink.Play(ctx, name, pcm)
	stop()
	mu.Lock()
	s.mu.Lock()
	s.plays = append(s.plays, tm)
	s.mu.Unlock()
	mu.Unlock()
	return err
}

// print writes the timings for the parent.
func (s *timedSink) print() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.plays {
		b, _ := json.Marshal(p)
		fmt.Printf("%s%s\n", timingPrefix, b)
	}
}

// otoBench is the sound-card part of BenchmarkPreemptToSilence, where cgo
// and PulseAudio are at hand (soundcard_test.go).
var otoBench func(b *testing.B)

// BenchmarkPreemptToSilence measures the time from the decision to cut a
// playing item to its last sound: through a paced WAV sink (the agent fades
// the PCM), and through oto into PulseAudio (oto fades; the figure is when
// the last sound went to ALSA, and the ALSA buffer plays after it). It
// reports the median and the worst over the iterations.
func BenchmarkPreemptToSilence(b *testing.B) {
	b.Run("wav-paced", func(b *testing.B) {
		a := fuzzAgent(b)
		wav, err := audio.NewWAVSink(b.TempDir(), audio.DefaultFormat, true)
		if err != nil {
			b.Fatal(err)
		}
		sink := &timedSink{Sink: wav, origin: time.Now()}
		a.sink, a.sinkFades = sink, false
		news := makeChirp(b, 300, 900, 2*time.Second)
		var pcm bytes.Buffer
		if _, err := audio.Transcode(bytes.NewReader(news.data), a.format, &pcm); err != nil {
			b.Fatal(err)
		}
		path := a.pcmPath(news.sha)
		if err := os.WriteFile(path, pcm.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		var lat []time.Duration
		for i := 0; b.Loop(); i++ {
			it := protocol.PlanItem{ID: fmt.Sprintf("news-%d", i), Repeat: 1, Media: news.ref()}
			j, cut := cutJob(it, path, 60)
			done := make(chan playResult)
			go func() { done <- a.play(j) }()
			time.Sleep(time.Duration(150+13*(i%7)) * time.Millisecond)
			decided := time.Since(sink.origin)
			cut()
			if r := <-done; r.err != nil || r.completed {
				b.Fatalf("cut play: %+v", r)
			}
			f, err := os.Open(wav.Path(it.ID))
			if err != nil {
				b.Fatal(err)
			}
			_, s, err := audio.ReadWAV(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			last := len(s)/2 - 1
			for last >= 0 && math.Abs(float64(s[2*last])) <= 1e-4 {
				last--
			}
			sink.mu.Lock()
			tm := sink.plays[len(sink.plays)-1]
			sink.mu.Unlock()
			// Frame F of a paced sink sounds F/rate after its Play began.
			end := tm.Began + time.Duration(last+1)*time.Second/48000
			lat = append(lat, end-decided)
		}
		reportLatencies(b, lat, "")
	})
	b.Run("oto", func(b *testing.B) {
		if otoBench == nil {
			b.Skip("needs cgo and Linux")
		}
		otoBench(b)
	})
}

// reportLatencies reports the median and the worst of lat in ms.
func reportLatencies(b *testing.B, lat []time.Duration, what string) {
	if what != "" {
		what += "-"
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "ms-"+what+"median")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "ms-"+what+"max")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d cuts: %v", len(lat), lat)
}
