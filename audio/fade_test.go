package audio

import (
	"bytes"
	"io"
	"math"
	"testing"
	"testing/iotest"
	"time"
)

// ones is n frames of full-scale DC in f: every gain shows as it is.
func ones(f Format, n int) []byte {
	s := make([]float32, n*f.Channels)
	for i := range s {
		s[i] = 1
	}
	return PutFloats(nil, s)
}

func TestFader(t *testing.T) {
	f := Format{SampleRate: 1000, Channels: 2}
	const n = 1000 // one second
	tests := []struct {
		name   string
		fadeIn time.Duration
		cutAt  int           // frame after which FadeOut is called; -1 for never
		fade   time.Duration // fade-out length
		src    func(io.Reader) io.Reader
	}{
		{"plain", 0, -1, 0, nil},
		{"fade in", 20 * time.Millisecond, -1, 0, nil},
		{"cut", 0, 300, 30 * time.Millisecond, nil},
		{"cut in the fade-in", 50 * time.Millisecond, 10, 20 * time.Millisecond, nil},
		{"cut near the end", 0, 990, 30 * time.Millisecond, nil},
		{"one byte reads", 10 * time.Millisecond, 500, 30 * time.Millisecond, iotest.OneByteReader},
		{"half reads", 0, 200, 30 * time.Millisecond, iotest.HalfReader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(ones(f, n))
			if tt.src != nil {
				src = tt.src(src)
			}
			x := NewFader(src, f, tt.fadeIn)
			var out []byte
			buf := make([]byte, 7*f.BytesPerFrame()+3) // odd sizes on purpose
			cut := int64(-1)
			for {
				if tt.cutAt >= 0 && cut < 0 && len(out)/f.BytesPerFrame() >= tt.cutAt {
					var ok bool
					cut, ok = x.FadeOut(tt.fade)
					if !ok || cut != int64(len(out)/f.BytesPerFrame()) {
						t.Fatalf("FadeOut = %d, %v after %d frames read", cut, ok, len(out)/f.BytesPerFrame())
					}
				}
				k, err := x.Read(buf)
				out = append(out, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got := channel(Floats(out), 2, 0)
			if r := channel(Floats(out), 2, 1); !slicesEqual(got, r) {
				t.Fatal("channels differ")
			}
			inN := int(frames(f, tt.fadeIn))
			wantLen := n
			if cut >= 0 {
				wantLen = min(n, int(cut)+int(frames(f, tt.fade)))
			}
			if len(got) != wantLen {
				t.Fatalf("%d frames, want %d", len(got), wantLen)
			}
			for i, v := range got {
				want := 1.0
				if i < inN {
					want = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(inN))
				}
				if cut >= 0 && i >= int(cut) {
					k := float64(i - int(cut))
					want *= 0.5 + 0.5*math.Cos(math.Pi*k/float64(frames(f, tt.fade)))
				}
				if math.Abs(float64(v)-want) > 1e-6 {
					t.Fatalf("frame %d = %v, want %v", i, v, want)
				}
			}
			if x.Frames() != int64(len(got)) {
				t.Fatalf("Frames() = %d, read %d", x.Frames(), len(got))
			}
			if x.Ended() != (cut < 0) {
				t.Fatalf("Ended() = %v", x.Ended())
			}
		})
	}
	t.Run("fade after the end", func(t *testing.T) {
		x := NewFader(bytes.NewReader(ones(f, 10)), f, 0)
		io.ReadAll(x)
		if at, ok := x.FadeOut(time.Second); ok || at != 10 || !x.Ended() {
			t.Fatalf("FadeOut after the end = %d, %v", at, ok)
		}
	})
	t.Run("second fade keeps the first", func(t *testing.T) {
		x := NewFader(bytes.NewReader(ones(f, 100)), f, 0)
		x.FadeOut(10 * time.Millisecond)
		if at, ok := x.FadeOut(50 * time.Millisecond); ok || at != 0 {
			t.Fatalf("second FadeOut = %d, %v", at, ok)
		}
		if b, _ := io.ReadAll(x); len(b) != 10*f.BytesPerFrame() {
			t.Fatalf("%d bytes after a 10 ms fade", len(b))
		}
	})
	t.Run("partial frame at the end is dropped", func(t *testing.T) {
		x := NewFader(bytes.NewReader(append(ones(f, 3), 1, 2, 3)), f, 0)
		if b, err := io.ReadAll(x); err != nil || len(b) != 3*f.BytesPerFrame() {
			t.Fatalf("%d bytes, %v", len(b), err)
		}
	})
}

// TestFaderCutIsSmooth cuts a loud 1 kHz tone at its peak: the fade takes
// the requested time and no step is larger than the tone's own.
func TestFaderCutIsSmooth(t *testing.T) {
	f := DefaultFormat
	tone := make([]float32, 48000*f.Channels)
	for i := range tone {
		tone[i] = float32(0.9 * math.Sin(2*math.Pi*1000*float64(i/2)/48000))
	}
	x := NewFader(bytes.NewReader(PutFloats(nil, tone)), f, 0)
	head := make([]byte, 12*f.BytesPerFrame()) // a quarter period: the peak
	io.ReadFull(x, head)
	x.FadeOut(30 * time.Millisecond)
	rest, _ := io.ReadAll(x)
	got := channel(Floats(append(head, rest...)), 2, 0)
	if len(got) != 12+1440 {
		t.Fatalf("%d frames after a 30 ms fade", len(got))
	}
	limit := 0.9 * 2 * math.Pi * 1000 / 48000 * 1.01
	for i := 1; i < len(got); i++ {
		if d := math.Abs(float64(got[i] - got[i-1])); d > limit {
			t.Fatalf("step of %.3f at frame %d", d, i)
		}
	}
	if last := math.Abs(float64(got[len(got)-1])); last > 1e-3 {
		t.Fatalf("ends at %v", last)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
