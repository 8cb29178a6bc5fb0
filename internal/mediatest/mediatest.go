package mediatest

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/loa-commune/loa/audio"
)

// Need skips the test when a program is missing; under CI, which installs
// them all (scripts/deps.sh test), it fails instead.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed: scripts/deps.sh test", p)
			}
			t.Skipf("%s is not installed: scripts/deps.sh test", p)
		}
	}
}

// FFmpeg runs ffmpeg quietly with args (overwriting outputs) and returns
// what it wrote to stdout; a failure fails the test with ffmpeg's words.
func FFmpeg(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// Speech writes text spoken by espeak-ng's Vietnamese voice (16-bit mono
// WAV at 22.05 kHz) to path and returns path.
func Speech(t testing.TB, path, text string) string {
	t.Helper()
	if out, err := exec.Command("espeak-ng", "-v", "vi", "-w", path, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	return path
}

// PCM is ffmpeg's decode of path: float32 at 48 kHz in the given number of
// channels. decoder goes before the input (e.g. "-c:a", "libopus").
func PCM(t testing.TB, path string, channels int, decoder ...string) []float32 {
	t.Helper()
	args := slices.Concat(decoder, []string{"-i", path, "-ac", strconv.Itoa(channels), "-ar", "48000", "-f", "f32le", "-"})
	return audio.Floats(FFmpeg(t, args...))
}

var summaryI = regexp.MustCompile(`(?s)Summary:.*?I:\s+(-?[0-9.]+) LUFS`)

// LUFS is the integrated loudness of path's first channel as ffmpeg's
// ebur128 filter measures it (EBU R128).
func LUFS(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", path,
		"-af", "pan=mono|c0=c0,ebur128", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg ebur128 %s: %v: %s", path, err, out)
	}
	m := summaryI.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no loudness summary for %s: %s", path, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
