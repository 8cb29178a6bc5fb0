package ingest

import (
	"context"
	"github.com/loa-commune/loa/internal/mediatest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRenderThirtyMinutes: upload to ready for a 30-minute speech
// recording (a phone's 128 kbit/s stereo MP3), and what a box downloads per
// minute of it. Run: go test -run '^$' -bench RenderThirty -benchtime 3x ./ingest
func BenchmarkRenderThirtyMinutes(b *testing.B) {
	needFFmpeg(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "thirty.mp3")
	// espeak-ng's speech looped, with a pause between repeats.
	mediatest.FFmpeg(b, "-stream_loop", "-1", "-i", speech(b, dir), "-af", "apad=pad_dur=1", "-t", "1800",
		"-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", src)
	o := DefaultOptions()
	o.Timeout = 10 * time.Minute
	p := New(o)
	in, _ := os.Stat(src)
	b.ResetTimer()
	for b.Loop() {
		dst := filepath.Join(dir, "out.opus")
		res, err := p.Render(context.Background(), src, dst)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := os.Stat(dst)
		minutes := res.Duration.Minutes()
		b.ReportMetric(float64(in.Size())/1000/minutes, "upload_kB/min")
		b.ReportMetric(float64(out.Size())/1000/minutes, "box_kB/min")
		b.ReportMetric(res.Output.Integrated, "out_LUFS")
	}
}

// BenchmarkRenderSpokenText: a spoken emergency text (espeak-ng's WAV, a
// few seconds), from text-to-speech output to the file boxes download.
// Run: go test -run '^$' -bench RenderSpoken -benchtime 10x -count 3 ./ingest
func BenchmarkRenderSpokenText(b *testing.B) {
	needFFmpeg(b)
	dir := b.TempDir()
	src := speech(b, dir)
	p := New(DefaultOptions())
	for b.Loop() {
		if _, err := p.Render(context.Background(), src, filepath.Join(dir, "out.opus")); err != nil {
			b.Fatal(err)
		}
	}
}
