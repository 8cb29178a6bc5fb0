package capture_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/capture"
	"github.com/loa-commune/loa/internal/mediatest"
)

// run captures path to its end and returns the Ogg stream's packets
// (checked by the independent Ogg reader) and the meter's levels.
func run(t *testing.T, o capture.Options) (int, []capture.Level) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := capture.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var levels []capture.Level
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range c.Levels() {
			levels = append(levels, l)
		}
	}()
	ogg, err := io.ReadAll(c.Audio())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	<-done
	pk, err := audio.NewOpusPackets(bytes.NewReader(ogg))
	if err != nil {
		t.Fatalf("the capture is not Ogg Opus: %v", err)
	}
	n := 0
	for {
		_, samples, err := pk.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if samples != 960 {
			t.Fatalf("packet of %d samples, want 20 ms frames (960)", samples)
		}
		n++
	}
	return n, levels
}

func tone(t *testing.T, name, expr string) string {
	path := filepath.Join(t.TempDir(), name)
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", expr, "-t", "2", "-ar", "48000", "-ac", "1", path)
	return path
}

func TestCaptureFile(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	packets, levels := run(t, capture.Options{File: tone(t, "tone.wav", "sine=frequency=440:sample_rate=48000")})
	if packets < 95 || packets > 105 {
		t.Errorf("%d packets of 20 ms for 2 s of sound", packets)
	}
	if len(levels) < 15 {
		t.Fatalf("%d meter readings for 2 s, want about 20", len(levels))
	}
	// ffmpeg's sine is at 1/8 of full scale: peak -18 dBFS, RMS -21 dBFS.
	mid := levels[len(levels)/2]
	if math.Abs(mid.Peak+18.1) > 1 || math.Abs(mid.RMS+21.1) > 1 {
		t.Errorf("level %+v, want peak -18 and RMS -21 dBFS", mid)
	}
}

func TestCaptureStdin(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	f, err := os.Open(tone(t, "tone.wav", "sine=frequency=300:sample_rate=48000"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if packets, _ := run(t, capture.Options{File: "-", Stdin: f}); packets < 95 {
		t.Errorf("%d packets for 2 s from standard input", packets)
	}
}

func TestCaptureWarnings(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	for _, tc := range []struct {
		name, expr string
		want       capture.Warning
	}{
		{"silent", "anullsrc=sample_rate=48000:channel_layout=mono", capture.Silent},
		{"clipping", "sine=frequency=440:sample_rate=48000,volume=20", capture.Clipping},
		{"speech level", "sine=frequency=440:sample_rate=48000", capture.NoWarning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 4 s: long enough for the silence warning.
			path := filepath.Join(t.TempDir(), "in.wav")
			mediatest.FFmpeg(t, "-f", "lavfi", "-i", tc.expr, "-t", "4", "-ac", "1", path)
			_, levels := run(t, capture.Options{File: path})
			var m capture.Monitor
			got := capture.NoWarning
			at := time.Unix(0, 0)
			for _, l := range levels {
				at = at.Add(100 * time.Millisecond)
				if w := m.Observe(l, at); w != capture.NoWarning && got == capture.NoWarning {
					got = w
				}
			}
			if got != tc.want {
				t.Errorf("warning %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCaptureRefusesWhatIsNotSound(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	text := filepath.Join(t.TempDir(), "notes.wav")
	if err := os.WriteFile(text, []byte("not a recording"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]capture.Options{
		"missing file":       {File: filepath.Join(t.TempDir(), "nothing.wav")},
		"text file":          {File: text},
		"no such microphone": {Source: "alsa:hw:97"},
		"no ffmpeg":          {FFmpeg: "/nonexistent/ffmpeg", File: text},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := capture.Start(context.Background(), o)
			if !errors.Is(err, capture.ErrNoCapture) || !strings.Contains(err.Error(), ":") {
				t.Fatalf("err = %v, want ErrNoCapture with the reason", err)
			}
			t.Log(err)
		})
	}
}

func TestCaptureStopEndsTheStreamCleanly(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	// A long file stopped after a moment, as Ctrl-C does.
	path := filepath.Join(t.TempDir(), "long.wav")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60", "-ac", "1", path)
	c, err := capture.Start(context.Background(), capture.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Levels() {
		}
	}()
	time.AfterFunc(time.Second, c.Stop)
	ogg, err := io.ReadAll(c.Audio())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("a stopped capture reports %v", err)
	}
	pk, err := audio.NewOpusPackets(bytes.NewReader(ogg))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := pk.Next(); err != nil {
			if err != io.EOF {
				t.Fatalf("the stream does not end cleanly after Stop: %v", err)
			}
			break
		}
		n++
	}
	if n < 20 || n > 200 {
		t.Errorf("%d packets after a stop at about 1 s", n)
	}
}
