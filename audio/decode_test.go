package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readStream reads s to the end.
func readStream(t testing.TB, s Stream) []float32 {
	t.Helper()
	var all []float32
	buf := make([]float32, 1000*s.Format().Channels)
	for {
		n, err := s.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			return all
		}
		if err != nil {
			t.Fatalf("read %s: %v", s.Codec(), err)
		}
	}
}

// decodeFile decodes a fixture from testdata.
func decodeFile(t testing.TB, name string) (Stream, []float32) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return s, readStream(t, s)
}

// channel returns channel c of interleaved samples.
func channel(samples []float32, channels, c int) []float32 {
	out := make([]float32, len(samples)/channels)
	for i := range out {
		out[i] = samples[i*channels+c]
	}
	return out
}

// toneAt is the amplitude of the component of x at freq Hz (Goertzel).
func toneAt(x []float32, rate int, freq float64) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / float64(len(x))
}

// zeroCrossingFreq estimates the frequency of a tone from the times of its
// upward zero crossings, interpolated between samples.
func zeroCrossingFreq(x []float32, rate int) float64 {
	first, last := -1.0, -1.0
	n := 0
	for i := 1; i < len(x); i++ {
		if x[i-1] < 0 && x[i] >= 0 {
			t := float64(i-1) + float64(-x[i-1])/float64(x[i]-x[i-1])
			if first < 0 {
				first = t
			}
			last = t
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) * float64(rate) / (last - first)
}

func rms(x []float32) float64 {
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(x)))
}

func TestDecodeFixtures(t *testing.T) {
	tests := []struct {
		file   string
		codec  string
		format Format
		rms    float64 // of the 1 s, 0.5 amplitude tone: 0.354
	}{
		{"tone.wav", CodecWAV, Format{22050, 1}, 0.354},
		{"tone-8bit.wav", CodecWAV, Format{8000, 1}, 0.354},
		{"tone-24bit.wav", CodecWAV, Format{8000, 1}, 0.354},
		{"tone-32bit.wav", CodecWAV, Format{8000, 1}, 0.354},
		{"tone-float.wav", CodecWAV, Format{8000, 1}, 0.354},
		{"tone.mp3", CodecMP3, Format{22050, 1}, 0.336}, // LAME's level, as ffmpeg decodes it too
		{"tone-stereo-id3.mp3", CodecMP3, Format{44100, 2}, 0.336},
		{"tone.ogg", CodecOGG, Format{22050, 1}, 0.354},
		{"tone-stereo.ogg", CodecOGG, Format{44100, 2}, 0.354},
		{"tone.flac", CodecFLAC, Format{22050, 1}, 0.354},
		{"tone-stereo.flac", CodecFLAC, Format{44100, 2}, 0.354},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s, samples := decodeFile(t, tt.file)
			if s.Codec() != tt.codec || s.Format() != tt.format {
				t.Fatalf("codec %s format %+v, want %s %+v", s.Codec(), s.Format(), tt.codec, tt.format)
			}
			rate, ch := tt.format.SampleRate, tt.format.Channels
			frames := len(samples) / ch
			// MP3 encoder delay and padding are trimmed from the LAME tag,
			// so every codec gives exactly one second.
			if frames != rate {
				t.Errorf("frames = %d, want %d", frames, rate)
			}
			for c := 0; c < ch; c++ {
				x := channel(samples, ch, c)
				mid := x[rate/4 : rate*3/4] // whole cycles of 440 Hz
				if f := zeroCrossingFreq(mid, rate); math.Abs(f-440) > 1 {
					t.Errorf("channel %d: tone at %.2f Hz, want 440", c, f)
				}
				if a := toneAt(mid, rate, 440); math.Abs(a-0.5*tt.rms/0.354) > 0.02 {
					t.Errorf("channel %d: 440 Hz amplitude %.3f, want %.3f", c, a, 0.5*tt.rms/0.354)
				}
				if r := rms(mid); math.Abs(r-tt.rms) > 0.01 {
					t.Errorf("channel %d: rms %.4f, want %.4f", c, r, tt.rms)
				}
				for _, v := range x {
					if v < -1 || v > 1 || v != v {
						t.Fatalf("sample %v out of range", v)
					}
				}
			}
		})
	}
}

// TestDecodeMP3Gapless checks that the MP3's encoder delay is trimmed to the
// sample: the decoded tone lines up with the WAV it was encoded from.
func TestDecodeMP3Gapless(t *testing.T) {
	_, ref := decodeFile(t, "tone.wav")
	_, got := decodeFile(t, "tone.mp3")
	if len(got) != len(ref) {
		t.Fatalf("mp3 has %d frames, wav %d", len(got), len(ref))
	}
	// Lossy, so compare closeness at lag 0 against neighbouring lags.
	diff := func(lag int) float64 {
		var d float64
		for i := 2000; i < 20000; i++ {
			e := float64(got[i+lag] - ref[i])
			d += e * e
		}
		return d
	}
	d0 := diff(0)
	for _, lag := range []int{-2, -1, 1, 2} {
		if d := diff(lag); d <= d0 {
			t.Errorf("lag %d fits better (%.3f) than lag 0 (%.3f)", lag, d, d0)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wav := fixture("tone.wav")
	mp3 := fixture("tone.mp3")
	ogg := fixture("tone.ogg")
	flac := fixture("tone.flac")
	badRate := bytes.Clone(wav)
	badRate[24], badRate[25], badRate[26], badRate[27] = 100, 0, 0, 0 // 100 Hz
	badChannels := bytes.Clone(wav)
	badChannels[22] = 200
	tests := []struct {
		name    string
		data    []byte
		unknown bool   // errors.Is ErrUnknownFormat
		prefix  string // start of the error message
	}{
		{"empty", fixture("empty.wav"), true, "decode"},
		{"text", []byte("hello, this is not audio at all\n"), true, "decode"},
		{"zeros", make([]byte, 10000), true, "decode"},
		{"corrupt mp3", fixture("corrupt.mp3"), false, "decode mp3:"},
		{"truncated mp3", mp3[:len(mp3)-100], false, "decode mp3:"},
		{"id3 without frames", append([]byte("ID3\x03\x00\x00\x00\x00\x00\x10"), make([]byte, 16+100)...), false, "decode mp3:"},
		{"truncated flac", fixture("truncated.flac"), false, "decode flac:"},
		{"flac header only", flac[:42], false, "decode flac:"},
		{"truncated ogg", ogg[:len(ogg)-500], false, "decode ogg:"},
		{"ogg magic only", []byte("OggS\x00\x02"), false, "decode ogg:"},
		{"truncated wav", wav[:len(wav)-1000], false, "decode wav:"},
		{"wav header only", wav[:20], false, "decode wav:"},
		{"wav rate 100", badRate, false, "decode wav:"},
		{"wav 200 channels", badChannels, false, "decode wav:"},
		// Found by FuzzDecode: panics inside oggvorbis and go-mp3, recovered.
		{"ogg page without segments", []byte("OggS\x00000000000000000000000\x00"), false, "decode ogg: corrupt input (decoder panic in github.com/jfreymuth/oggvorbis"},
		{"mp3 bad scale factors", []byte("\xff\xf3 000000000000017\xb5000000000000000000000000000000000"), false, "decode mp3: corrupt input (decoder panic in github.com/hajimehoshi/go-mp3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(bytes.NewReader(tt.data))
			if err == nil {
				_, err = drain(s)
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if errors.Is(err, ErrUnknownFormat) != tt.unknown {
				t.Errorf("errors.Is(%v, ErrUnknownFormat) = %v, want %v", err, !tt.unknown, tt.unknown)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Errorf("error %q does not start with %q", err, tt.prefix)
			}
		})
	}
}

// drain reads s to the end, returning the samples count and the first
// error other than io.EOF.
func drain(s Stream) (int, error) {
	buf := make([]float32, 4096*s.Format().Channels)
	total := 0
	for {
		n, err := s.Read(buf)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// TestDecodeFromOffset checks that Decode starts where the reader stands.
func TestDecodeFromOffset(t *testing.T) {
	b, err := os.ReadFile("testdata/tone.flac")
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(append([]byte("junk before the media"), b...))
	r.Seek(21, io.SeekStart)
	s, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := drain(s); err != nil || n != 22050 {
		t.Fatalf("got %d samples, %v", n, err)
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		file  string
		max   time.Duration
		want  Info
		error error
	}{
		{"tone.wav", time.Minute, Info{Codec: "wav", Source: Format{22050, 1}, Frames: 22050, Duration: time.Second}, nil},
		{"tone-stereo-id3.mp3", 0, Info{Codec: "mp3", Source: Format{44100, 2}, Frames: 44100, Duration: time.Second}, nil},
		{"tone.ogg", time.Second, Info{Codec: "ogg", Source: Format{22050, 1}, Frames: 22050, Duration: time.Second}, nil},
		{"tone.flac", 500 * time.Millisecond, Info{}, ErrTooLong},
		{"empty.wav", time.Minute, Info{}, ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, err := Probe(f, tt.max)
			if tt.error != nil {
				if !errors.Is(err, tt.error) {
					t.Fatalf("err = %v, want %v", err, tt.error)
				}
				return
			}
			if err != nil || info != tt.want {
				t.Fatalf("Probe = %+v, %v; want %+v", info, err, tt.want)
			}
		})
	}
	t.Run("no frames", func(t *testing.T) {
		var wav bytes.Buffer
		if err := WriteWAV(&wav, Format{22050, 1}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(bytes.NewReader(wav.Bytes()), time.Minute); !errors.Is(err, ErrNoAudio) {
			t.Fatalf("err = %v, want ErrNoAudio", err)
		}
	})
}

func TestTranscode(t *testing.T) {
	for _, file := range []string{"tone.wav", "tone.mp3", "tone-stereo.flac", "tone-stereo.ogg", "tone-8bit.wav"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			info, err := Transcode(f, DefaultFormat, &out)
			if err != nil {
				t.Fatal(err)
			}
			if info.Frames != int64(info.Source.SampleRate) || info.Duration != time.Second {
				t.Errorf("info %+v", info)
			}
			pcm := Floats(out.Bytes())
			if got := len(pcm) / 2; got != 48000 {
				t.Errorf("%d frames out, want 48000", got)
			}
			left, right := channel(pcm, 2, 0), channel(pcm, 2, 1)
			if info.Source.Channels == 1 {
				for i := range left {
					if left[i] != right[i] {
						t.Fatalf("frame %d: left %v right %v differ", i, left[i], right[i])
					}
				}
			}
			for _, x := range [][]float32{left, right} {
				mid := x[12000:36000]
				if f := zeroCrossingFreq(mid, 48000); math.Abs(f-440) > 0.5 {
					t.Errorf("tone at %.2f Hz", f)
				}
				if a := toneAt(mid, 48000, 440); a < 0.45 || a > 0.52 {
					t.Errorf("amplitude %.3f", a)
				}
			}
		})
	}
	t.Run("to mono 22050", func(t *testing.T) {
		f, err := os.Open("testdata/tone-stereo.flac")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		if _, err := Transcode(f, Format{22050, 1}, &out); err != nil {
			t.Fatal(err)
		}
		pcm := Floats(out.Bytes())
		if len(pcm) != 22050 {
			t.Fatalf("%d frames", len(pcm))
		}
		if a := toneAt(pcm[5512:16537], 22050, 440); math.Abs(a-0.5) > 0.01 {
			t.Errorf("amplitude %.3f", a)
		}
	})
}

// synthWAV is a 16-bit stereo WAV file of a tone that is generated as it is
// read, so a long file costs no memory in the test itself.
type synthWAV struct {
	header []byte
	size   int64
	pos    int64
}

func newSynthWAV(rate int, d time.Duration) *synthWAV {
	frames := int64(d.Seconds() * float64(rate))
	data := frames * 4
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+data))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 2)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*4))
	binary.LittleEndian.PutUint16(h[32:], 4)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(data))
	return &synthWAV{header: h, size: 44 + data}
}

func (s *synthWAV) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-s.pos))
	for i := range p[:n] {
		at := s.pos + int64(i)
		if at < 44 {
			p[i] = s.header[at]
			continue
		}
		sample := (at - 44) / 2 // 16-bit sample index
		v := int16(8000 * math.Sin(float64(sample/2)*0.0627))
		p[i] = byte(uint16(v) >> (8 * ((at - 44) % 2)))
	}
	s.pos += int64(n)
	return n, nil
}

func (s *synthWAV) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	}
	s.pos = offset
	return offset, nil
}

// heapWatcher is a writer that discards PCM and records the largest heap
// seen while it was written.
type heapWatcher struct {
	writes int
	bytes  int64
	peak   uint64
}

func (h *heapWatcher) Write(p []byte) (int, error) {
	h.writes++
	h.bytes += int64(len(p))
	if h.writes%200 == 0 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		h.peak = max(h.peak, m.HeapAlloc)
	}
	return len(p), nil
}

// TestTranscodeBoundedMemory transcodes a minute (23 MB of output)
// and checks the heap never grows by more than a few megabytes.
func TestTranscodeBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	src := newSynthWAV(44100, time.Minute)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	w := &heapWatcher{}
	info, err := Transcode(src, DefaultFormat, w)
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration != time.Minute || w.bytes != 60*48000*8 {
		t.Fatalf("info %+v, %d bytes out", info, w.bytes)
	}
	grew := int64(w.peak) - int64(before.HeapAlloc)
	t.Logf("heap grew by at most %d KB", grew>>10)
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MB while transcoding", grew>>20)
	}
}

// panicky is a decoder that fails the way a third-party one might.
type panicky struct{ sliceStream }

func (p *panicky) Read(b []float32) (int, error) {
	var table []int
	return table[len(b)], nil // index out of range
}

func TestSafeStreamRecovers(t *testing.T) {
	s := &safeStream{s: &panicky{sliceStream{format: Format{8000, 1}}}}
	n, err := s.Read(make([]float32, 10))
	if n != 0 || err == nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	want := "decode test: corrupt input (decoder panic in github.com/loa-commune/loa/audio.(*panicky).Read: runtime error: index out of range"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q\nwant prefix %q", err, want)
	}
	if _, again := s.Read(make([]float32, 10)); again != err {
		t.Fatalf("second Read = %v, want the same error", again)
	}
}
