package audio

import (
	"bytes"
	"io"
	"math"
	"testing"
	"testing/iotest"
	"time"
)

func TestVolumeGain(t *testing.T) {
	tests := []struct {
		volume int
		want   float32
	}{
		{-10, 0}, {0, 0}, {10, 0.01}, {50, 0.25}, {70, 0.49}, {100, 1}, {150, 1},
	}
	for _, tt := range tests {
		if got := VolumeGain(tt.volume); math.Abs(float64(got-tt.want)) > 1e-6 {
			t.Errorf("VolumeGain(%d) = %v, want %v", tt.volume, got, tt.want)
		}
	}
}

// splitReader returns the data in reads of the sizes given, in turn.
type splitReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), r.sizes[r.i%len(r.sizes)])
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestGainReader(t *testing.T) {
	samples := []float32{0, 0.5, -0.5, 1, -1, 0.25, 0.9, -0.9, float32(math.NaN()), 3}
	for i := 0; i < 5000; i++ {
		samples = append(samples, float32(math.Sin(float64(i)/7)))
	}
	pcm := PutFloats(nil, samples)
	tests := []struct {
		name  string
		gain  float32
		src   func() io.Reader
		reads []int // sizes of the reads made on the gain reader
	}{
		{"whole", 0.49, func() io.Reader { return bytes.NewReader(pcm) }, []int{1 << 20}},
		{"odd source splits", 0.49, func() io.Reader { return &splitReader{data: pcm, sizes: []int{1, 3, 5, 7, 4099}} }, []int{4096}},
		{"odd reads", 0.25, func() io.Reader { return bytes.NewReader(pcm) }, []int{1, 2, 3, 5, 7, 11, 13}},
		{"both odd", 2, func() io.Reader { return iotest.HalfReader(&splitReader{data: pcm, sizes: []int{3, 5}}) }, []int{7, 1, 6}},
		{"unity", 1, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(pcm)) }, []int{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGainReader(tt.src(), tt.gain)
			var got []byte
			for i := 0; ; i++ {
				buf := make([]byte, tt.reads[i%len(tt.reads)])
				n, err := g.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			out := Floats(got)
			if len(out) != len(samples) || len(got)%4 != 0 {
				t.Fatalf("%d bytes out for %d samples", len(got), len(samples))
			}
			for i, v := range samples {
				want := v * tt.gain
				switch {
				case v != v:
					want = 0
				case want > 1:
					want = 1
				case want < -1:
					want = -1
				}
				if out[i] != want {
					t.Fatalf("sample %d: %v × %v = %v, want %v", i, v, tt.gain, out[i], want)
				}
			}
		})
	}
}

// TestGainReaderPartialTail checks that a partial sample at the end is
// dropped, not padded.
func TestGainReaderPartialTail(t *testing.T) {
	pcm := append(PutFloats(nil, []float32{0.5, 0.5}), 1, 2)
	got, err := io.ReadAll(NewGainReader(bytes.NewReader(pcm), 0.5))
	if err != nil {
		t.Fatal(err)
	}
	if out := Floats(got); len(got) != 8 || out[0] != 0.25 || out[1] != 0.25 {
		t.Fatalf("got %v", out)
	}
}

func TestTones(t *testing.T) {
	formats := []Format{DefaultFormat, {22050, 1}}
	for _, f := range formats {
		tests := []struct {
			name string
			pcm  []byte
			dur  time.Duration
			freq [2]float64 // range the dominant pitch stays in
		}{
			{"chime", Chime(f), ChimeDuration, [2]float64{500, 700}},
			{"siren", Siren(f, 5*time.Second), 5 * time.Second, [2]float64{490, 1110}},
			{"short siren", Siren(f, 10*time.Millisecond), 10 * time.Millisecond, [2]float64{0, 0}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if len(tt.pcm) != int(f.Bytes(tt.dur)) {
					t.Fatalf("%d bytes, want %d", len(tt.pcm), f.Bytes(tt.dur))
				}
				all := Floats(tt.pcm)
				for c := 1; c < f.Channels; c++ {
					for i := range all {
						if all[i] != all[i-i%f.Channels] {
							t.Fatal("channels differ")
						}
					}
				}
				x := channel(all, f.Channels, 0)
				if x[0] != 0 || math.Abs(float64(x[len(x)-1])) > 1e-3 {
					t.Errorf("starts at %v, ends at %v: want 0", x[0], x[len(x)-1])
				}
				// No clicks: the largest step between samples is what a
				// full-scale 1.2 kHz tone could make.
				limit := 2 * math.Pi * 1200 / float64(f.SampleRate)
				var peak float64
				for i := range x {
					peak = max(peak, math.Abs(float64(x[i])))
					if i > 0 && math.Abs(float64(x[i]-x[i-1])) > limit {
						t.Fatalf("step of %.3f at sample %d", x[i]-x[i-1], i)
					}
				}
				if peak > 0.9 || (tt.dur > time.Second && peak < 0.3) {
					t.Errorf("peak %.2f", peak)
				}
				if tt.freq[1] > 0 {
					win := f.SampleRate / 10
					for at := 0; at+win <= len(x); at += win {
						fr := zeroCrossingFreq(x[at:at+win], f.SampleRate)
						if fr < tt.freq[0] || fr > tt.freq[1] {
							t.Errorf("%.0f Hz at %v", fr, time.Duration(at)*time.Second/time.Duration(f.SampleRate))
						}
					}
				}
			})
		}
	}
	t.Run("siren glides", func(t *testing.T) {
		x := Floats(Siren(Format{48000, 1}, 4*time.Second))
		low := zeroCrossingFreq(x[0:4800], 48000)
		high := zeroCrossingFreq(x[96000-2400:96000+2400], 48000)
		if low > 560 || high < 1050 {
			t.Errorf("pitch %.0f Hz at the start, %.0f Hz at 2 s", low, high)
		}
	})
	t.Run("silence", func(t *testing.T) {
		s := Silence(DefaultFormat, 250*time.Millisecond)
		if len(s) != 12000*8 || !bytes.Equal(s, make([]byte, len(s))) {
			t.Fatalf("%d bytes", len(s))
		}
	})
	t.Run("invalid format", func(t *testing.T) {
		if Chime(Format{}) != nil || Siren(Format{48000, 0}, time.Second) != nil || Silence(Format{}, time.Second) != nil {
			t.Fatal("want nil")
		}
	})
}
