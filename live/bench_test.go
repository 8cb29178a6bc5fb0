package live_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/live"
)

// discard is a publisher that keeps nothing, as a broker that is never
// slow would.
type discard struct{}

func (discard) PublishStream(string, []byte) error { return nil }

// BenchmarkSession measures the controller's work for one live session: a
// minute of speech (mono Opus at 24 kbit/s, 20 ms frames, as a relay
// encodes it) read, stamped, grouped into 100 ms packets, signed and
// handed to the publisher, on a clock that never waits. µs/audio-s is the
// time that work takes per second of sound (it keeps about one core busy:
// the pump and the goroutine reading the source take turns);
// allocs/audio-s, B/audio-s (bytes published) and packets/audio-s
// likewise. Variants: one signing key or two
// (a rotation), and with the recording written.
func BenchmarkSession(b *testing.B) {
	mediatest.Need(b, "ffmpeg", "espeak-ng")
	wav := speechWAV(b)
	path := fixture(b, "speech-60s.opus", func(path string) {
		mediatest.FFmpeg(b, "-stream_loop", "-1", "-i", wav, "-t", "60", "-ac", "1",
			"-c:a", "libopus", "-b:a", "24k", "-frame_duration", "20", "-f", "ogg", path)
	})
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	_, samples := opusInfo(b, data)
	audioSeconds := float64(samples) / 48000
	for _, bc := range []struct {
		name    string
		signers int
		record  bool
	}{{"1 key", 1, false}, {"2 keys", 2, false}, {"1 key, recorded", 1, true}} {
		b.Run(bc.name, func(b *testing.B) {
			k := newKeys(b, bc.signers)
			dir := b.TempDir()
			var sum live.Summary
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				rec := ""
				if bc.record {
					rec = filepath.Join(dir, fmt.Sprintf("s%d.opus", i))
				}
				i++
				s, err := live.New(live.Config{
					ID: testSession, Site: testSite, Signers: k.signers, Publisher: discard{},
					Options: testOptions(), Recording: rec, Clock: newFakeClock(),
					Logger: slog.New(slog.DiscardHandler), Location: time.UTC,
				})
				if err != nil {
					b.Fatal(err)
				}
				sum, err = s.Run(context.Background(), bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if rec != "" {
					os.Remove(rec)
				}
			}
			b.StopTimer()
			perAudio := b.Elapsed().Seconds() / float64(b.N) / audioSeconds
			b.ReportMetric(perAudio*1e6, "µs/audio-s")
			b.ReportMetric(float64(sum.Bytes)/audioSeconds, "B/audio-s")
			b.ReportMetric(float64(sum.Packets)/audioSeconds, "packets/audio-s")
			allocs := testing.AllocsPerRun(1, func() {
				s, _ := live.New(live.Config{
					ID: testSession, Site: testSite, Signers: k.signers, Publisher: discard{},
					Options: testOptions(), Clock: newFakeClock(), Logger: slog.New(slog.DiscardHandler),
				})
				s.Run(context.Background(), bytes.NewReader(data))
			})
			b.ReportMetric(allocs/audioSeconds, "allocs/audio-s")
		})
	}
}
