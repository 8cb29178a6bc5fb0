package audio

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"
)

func TestJoin(t *testing.T) {
	tone, err := os.ReadFile("testdata/tone.wav")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	info, err := Join(&out, SpeechFormat, 500*time.Millisecond, bytes.NewReader(tone), bytes.NewReader(tone))
	if err != nil {
		t.Fatal(err)
	}
	f, got, err := ReadWAV(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	one := len(got) - 11025 // two parts and half a second of silence at 22050 Hz
	if f != SpeechFormat || one%2 != 0 || info.Duration < 2400*time.Millisecond || info.Duration > 2600*time.Millisecond {
		t.Fatalf("joined %v: %d samples, %v", f, len(got), info.Duration)
	}
	one /= 2
	var gapPeak, diff float64
	for i := one; i < one+11025; i++ {
		gapPeak = math.Max(gapPeak, math.Abs(float64(got[i])))
	}
	for i := 0; i < one; i++ { // both parts are the same tone, 16-bit rounding apart
		diff = math.Max(diff, math.Abs(float64(got[i]-got[one+11025+i])))
	}
	if gapPeak != 0 || diff > 1.0/16384 {
		t.Fatalf("gap peak %g, parts differ by %g", gapPeak, diff)
	}
	if _, err := Join(&out, SpeechFormat, 0, bytes.NewReader([]byte("not audio"))); err == nil {
		t.Fatal("joining a non-audio part succeeded")
	}
}
