package audio

import (
	"io"
	"math"
	"testing"
)

// sliceStream is a Stream over samples in memory, giving at most chunk
// frames per Read to exercise partial reads.
type sliceStream struct {
	format  Format
	samples []float32
	chunk   int
}

func (s *sliceStream) Format() Format { return s.format }
func (s *sliceStream) Codec() string  { return "test" }

func (s *sliceStream) Read(p []float32) (int, error) {
	if len(s.samples) == 0 {
		return 0, io.EOF
	}
	ch := s.format.Channels
	n := min(len(p)/ch, len(s.samples)/ch)
	if s.chunk > 0 {
		n = min(n, s.chunk)
	}
	copy(p, s.samples[:n*ch])
	s.samples = s.samples[n*ch:]
	return n * ch, nil
}

// sine returns frames of a tone on every channel of f (channel c gets
// amplitude amp/(c+1), to tell channels apart).
func sine(f Format, freq, amp float64, frames int) []float32 {
	out := make([]float32, frames*f.Channels)
	for i := 0; i < frames; i++ {
		v := math.Sin(2 * math.Pi * freq * float64(i) / float64(f.SampleRate))
		for c := 0; c < f.Channels; c++ {
			out[i*f.Channels+c] = float32(amp * v / float64(c+1))
		}
	}
	return out
}

func TestResampler(t *testing.T) {
	tests := []struct {
		in, out  int
		channels int
		freq     float64
	}{
		{22050, 48000, 1, 440},
		{44100, 48000, 2, 440},
		{44100, 48000, 1, 10000},
		{8000, 48000, 1, 1000},
		{48000, 44100, 2, 440},
		{48000, 22050, 1, 3000},
		{44056, 48000, 1, 440}, // no small ratio: interpolated phases
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			in := Format{tt.in, tt.channels}
			frames := tt.in // one second
			src := &sliceStream{format: in, samples: sine(in, tt.freq, 0.5, frames), chunk: 777}
			r := NewResampler(src, tt.out)
			if r.Format() != (Format{tt.out, tt.channels}) {
				t.Fatalf("format %+v", r.Format())
			}
			out := readStream(t, r)
			got := len(out) / tt.channels
			want := (frames*tt.out + tt.in - 1) / tt.in
			if got != want {
				t.Errorf("%d frames, want %d", got, want)
			}
			for c := 0; c < tt.channels; c++ {
				x := channel(out, tt.channels, c)
				mid := x[tt.out/4 : tt.out*3/4]
				if f := zeroCrossingFreq(mid, tt.out); math.Abs(f-tt.freq) > tt.freq*1e-4 {
					t.Errorf("channel %d: %.3f Hz, want %.0f", c, f, tt.freq)
				}
				amp := 0.5 / float64(c+1)
				if a := toneAt(mid, tt.out, tt.freq); math.Abs(a-amp) > amp*0.002 {
					t.Errorf("channel %d: amplitude %.5f, want %.5f", c, a, amp)
				}
				// Beyond the tone itself, what remains is filter error.
				var resid float64
				for i, v := range mid {
					want := amp * math.Sin(2*math.Pi*tt.freq*float64(i+tt.out/4)/float64(tt.out))
					resid += (float64(v) - want) * (float64(v) - want)
				}
				if e := math.Sqrt(resid / float64(len(mid))); e > 1e-4*amp { // -80 dB
					t.Errorf("channel %d: rms error %.2g", c, e)
				}
			}
		})
	}
}

// TestResamplerAntiAlias checks that a tone above the new Nyquist
// frequency is filtered out rather than folded back.
func TestResamplerAntiAlias(t *testing.T) {
	in := Format{48000, 1}
	src := &sliceStream{format: in, samples: sine(in, 15000, 0.5, 48000)}
	out := readStream(t, NewResampler(src, 22050))
	mid := out[5000:17000]
	if r := rms(mid); r > 0.5*math.Pow(10, -60.0/20) {
		t.Errorf("15 kHz into 22050 Hz leaves rms %.2g (alias at %d Hz)", r, 22050-15000)
	}
}

// TestResamplerReadSizes checks that the output does not depend on how it
// is read.
func TestResamplerReadSizes(t *testing.T) {
	in := Format{22050, 2}
	samples := sine(in, 440, 0.5, 5000)
	whole := readStream(t, NewResampler(&sliceStream{format: in, samples: samples}, 48000))
	r := NewResampler(&sliceStream{format: in, samples: samples, chunk: 3}, 48000)
	var bits []float32
	buf := make([]float32, 2)
	for {
		n, err := r.Read(buf)
		bits = append(bits, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(bits) != len(whole) {
		t.Fatalf("%d samples by frame, %d at once", len(bits), len(whole))
	}
	for i := range bits {
		if bits[i] != whole[i] {
			t.Fatalf("sample %d: %v vs %v", i, bits[i], whole[i])
		}
	}
}

func TestResamplerSameRate(t *testing.T) {
	src := &sliceStream{format: Format{48000, 2}}
	if NewResampler(src, 48000) != Stream(src) {
		t.Fatal("same rate should return the source")
	}
}

func TestRemix(t *testing.T) {
	tests := []struct {
		name     string
		in       int
		samples  []float32
		channels int
		want     []float32
	}{
		{"mono to stereo", 1, []float32{0.1, -0.2}, 2, []float32{0.1, 0.1, -0.2, -0.2}},
		{"stereo to mono", 2, []float32{0.1, 0.3, -0.2, 0.4}, 1, []float32{0.2, 0.1}},
		{"5.1 to stereo", 6, []float32{0.6, 0.3, 0.3, 0, 0, 0.3}, 2, []float32{0.3, 0.2}},
		{"stereo to 4", 2, []float32{0.1, 0.2}, 4, []float32{0.1, 0.2, 0.1, 0.2}},
		{"same", 2, []float32{0.1, 0.2}, 2, []float32{0.1, 0.2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &sliceStream{format: Format{8000, tt.in}, samples: tt.samples, chunk: 1}
			m := Remix(src, tt.channels)
			if m.Format().Channels != tt.channels {
				t.Fatalf("channels %d", m.Format().Channels)
			}
			got := readStream(t, m)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
