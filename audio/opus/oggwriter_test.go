//go:build cgo

package opus_test

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/opus"
)

// TestOpusSilence: the gap packet decodes to silence after speech, in mono
// and stereo, and lasts 20 ms.
func TestOpusSilence(t *testing.T) {
	for _, channels := range []int{1, 2} {
		p := audio.OpusSilence(channels)
		if n, err := audio.OpusPacketSamples(p); err != nil || n != 960 {
			t.Fatalf("%d channels: %d samples, %v", channels, n, err)
		}
		d, err := opus.NewDecoder(channels)
		if err != nil {
			t.Fatal(err)
		}
		pcm := make([]float32, audio.OpusMaxFrame*channels)
		for range 5 {
			n, err := d.Decode(p, pcm)
			if err != nil || n != 960 {
				t.Fatalf("%d channels: decoded %d samples, %v", channels, n, err)
			}
			// libopus adds a whisper (1e-35) against denormals.
			for i, v := range pcm[:n*channels] {
				if v > 1e-9 || v < -1e-9 {
					t.Fatalf("%d channels: sample %d is %v", channels, i, v)
				}
			}
		}
		d.Close()
	}
}

// TestOggOpusWriterFFmpeg: ffmpeg's files rewritten packet by packet (with
// a gap of silence packets in the middle) decode, in ffmpeg and in Loa, to
// the original's sound with the gap's length of silence inserted.
func TestOggOpusWriterFFmpeg(t *testing.T) {
	dir := t.TempDir()
	src := encode(t, dir, "speech.opus", []string{"-i", speech(t, dir)}, "-ac", "1", "-b:a", "24k")
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	op, err := audio.NewOpusPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rewritten.opus")
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audio.NewOggOpusWriter(o, op.Channels(), op.PreSkip(), 1, "loa")
	if err != nil {
		t.Fatal(err)
	}
	const gapAfter, gapPackets = 50, 25 // 500 ms of silence after 1 s
	written := 0
	for {
		p, n, err := op.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if written += n; written == gapAfter*960 {
			for range gapPackets {
				if err := w.WritePacket(audio.OpusSilence(1)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	ref := ffmpegDecode(t, src, 1, "libopus")
	cut := gapAfter*960 - op.PreSkip()
	want := slices.Concat(ref[:cut], make([]float32, gapPackets*960), ref[cut:])
	// The source's end trimming is lost (the writer ends on the last
	// packet), so the rewritten file may be longer by under a packet.
	for _, dec := range []struct {
		name string
		pcm  []float32
	}{{"ffmpeg", ffmpegDecode(t, out, 1, "libopus")}, {"loa", func() []float32 { _, pcm := loaDecode(t, out); return pcm }()}} {
		got := dec.pcm
		if len(got) < len(want) || len(got) > len(want)+960 {
			t.Fatalf("%s: %d samples, want %d", dec.name, len(got), len(want))
		}
		got = got[:len(want)]
		// The decoder state after the silence differs from the
		// original's: the first packet after the gap blends in.
		after := cut + gapPackets*960 + 960
		if s := snr(want[:cut], got[:cut]); s < 60 {
			t.Errorf("%s: before the gap %.1f dB from the original", dec.name, s)
		}
		if s := snr(want[after:], got[after:]); s < 20 {
			t.Errorf("%s: after the gap %.1f dB from the original", dec.name, s)
		}
		for i, v := range got[cut+960 : cut+gapPackets*960] {
			if v > 1e-3 || v < -1e-3 {
				t.Fatalf("%s: gap sample %d is %v", dec.name, i, v)
			}
		}
	}
}
