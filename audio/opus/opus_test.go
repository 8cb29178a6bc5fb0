//go:build cgo

package opus_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/internal/oggtest"
	"github.com/loa-commune/loa/audio/opus"
)

// ffmpeg returns the path of ffmpeg, skipping the test without it.
func ffmpeg(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg is not installed: no reference encoder and decoder (apt-get install ffmpeg)")
	}
	return path
}

// run runs a command with a deadline and returns its standard output.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// encode makes dir/name with ffmpeg: input arguments, then encoder ones,
// as the controller converts uploads (libopus, Ogg).
func encode(t testing.TB, dir, name string, in []string, enc ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error"}, in...)
	args = append(args, "-c:a", "libopus")
	args = append(args, enc...)
	run(t, ffmpeg(t), append(args, "-f", "ogg", path)...)
	return path
}

// ffmpegDecode decodes path with ffmpeg's decoder (its own, "opus", or
// libopus through ffmpeg's demuxer, "libopus") to float32 at 48 kHz,
// clamped to [-1, 1] as audio.Decode clamps.
func ffmpegDecode(t testing.TB, path string, channels int, decoder string) []float32 {
	t.Helper()
	out := run(t, ffmpeg(t), "-nostdin", "-hide_banner", "-loglevel", "error",
		"-c:a", decoder, "-request_sample_fmt", "flt", "-i", path,
		"-f", "f32le", "-ac", string(rune('0'+channels)), "-ar", "48000", "-")
	pcm := audio.Floats(out)
	for i, v := range pcm {
		pcm[i] = float32(math.Max(-1, math.Min(1, float64(v))))
	}
	return pcm
}

// loaDecode decodes path with audio.Decode, through libopus.
func loaDecode(t testing.TB, path string) (audio.Stream, []float32) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := audio.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	var all []float32
	buf := make([]float32, 4096)
	for {
		n, err := s.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			return s, all
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
	}
}

// snr is the signal-to-noise ratio of got against ref, in dB.
func snr(ref, got []float32) float64 {
	var sig, noise float64
	for i := range ref {
		d := float64(got[i]) - float64(ref[i])
		sig += float64(ref[i]) * float64(ref[i])
		noise += d * d
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// speech makes a WAV of Vietnamese speech with espeak-ng, skipping the
// test without it.
func speech(t testing.TB, dir string) string {
	t.Helper()
	espeak, err := exec.LookPath("espeak-ng")
	if err != nil {
		t.Skip("espeak-ng is not installed (apt-get install espeak-ng)")
	}
	path := filepath.Join(dir, "speech.wav")
	run(t, espeak, "-v", "vi", "-w", path, announcement)
	return path
}

const announcement = "Thông báo của Ủy ban nhân dân xã. Sáng mai, từ bảy giờ đến mười một giờ, " +
	"khu vực thôn Đông mất điện để sửa chữa đường dây. Đề nghị bà con chủ động sắp xếp công việc. Xin cảm ơn."

// Minimum agreement with ffmpeg, in dB of SNR. Through libopus, ffmpeg
// (its own Ogg demuxer, pre-skip, trimming and gain) gives the very samples
// audio.Decode gives here; a decoder off by one sample scores 21-25 dB on
// this material, one with a gain off by 0.1 dB 39 dB. ffmpeg's own decoder
// is a separate implementation: it matches libopus to 110-142 dB on
// CELT-only streams but resamples SILK output its own way, so on SILK and
// hybrid streams (speech, 32 kbit/s) it scores 15.9-33 dB against libopus,
// through ffmpeg or through Loa alike: there only its frame count is a
// strict check.
const (
	minSNRLibopus    = 120
	minSNRNativeCELT = 100
	minSNRNative     = 12
)

// TestDecodeMatchesFFmpeg encodes with ffmpeg as the controller does and
// checks that audio.Decode gives what ffmpeg decodes: the same number of
// frames, and the same samples up to the differences between decoders.
func TestDecodeMatchesFFmpeg(t *testing.T) {
	dir := t.TempDir()
	sine := func(seconds string) []string {
		return []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=" + seconds}
	}
	stereo := []string{"-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*660*t):s=48000:d=3"}
	tests := []struct {
		name     string
		make     func() string
		channels int
	}{
		{"sine mono 32k", func() string { return encode(t, dir, "mono32.opus", sine("3"), "-ac", "1", "-b:a", "32k") }, 1},
		{"sine stereo 64k", func() string { return encode(t, dir, "stereo64.opus", stereo, "-b:a", "64k") }, 2},
		{"stereo 32k", func() string { return encode(t, dir, "stereo32.opus", stereo, "-b:a", "32k") }, 2},
		{"mono 64k", func() string { return encode(t, dir, "mono64.opus", sine("3"), "-ac", "1", "-b:a", "64k") }, 1},
		// 2.0137 s is not a whole number of 20 ms frames: the end is
		// trimmed inside the last packet.
		{"odd length", func() string {
			return encode(t, dir, "odd.opus", []string{"-f", "lavfi", "-i", "aevalsrc=0.4*sin(2*PI*300*t):s=48000:d=2.0137"}, "-b:a", "32k")
		}, 1},
		{"speech 32k", func() string {
			return encode(t, dir, "speech.opus", []string{"-i", speech(t, dir)}, "-ac", "1", "-b:a", "32k")
		}, 1},
		{"speech 60 ms frames", func() string {
			return encode(t, dir, "speech60.opus", []string{"-i", speech(t, dir)}, "-ac", "1", "-b:a", "32k", "-frame_duration", "60")
		}, 1},
		{"2.5 ms frames", func() string {
			return encode(t, dir, "short.opus", sine("1"), "-ac", "1", "-b:a", "64k", "-frame_duration", "2.5")
		}, 1},
		{"120 ms frames", func() string { return encode(t, dir, "long.opus", stereo, "-b:a", "32k", "-frame_duration", "120") }, 2},
		{"packets across pages", func() string {
			path := encode(t, dir, "span.opus", stereo, "-b:a", "256k", "-page_duration", "4000000")
			if !hasContinuedPage(t, path) {
				t.Fatal("ffmpeg put no packet across pages")
			}
			return path
		}, 2},
		{"output gain -6 dB", func() string {
			return withGain(t, encode(t, dir, "g1.opus", sine("3"), "-ac", "1", "-b:a", "32k"), -6*256)
		}, 1},
		{"output gain +4.5 dB", func() string {
			return withGain(t, encode(t, dir, "g2.opus", sine("3"), "-ac", "1", "-b:a", "32k"), 1152)
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.make()
			s, got := loaDecode(t, path)
			if s.Codec() != audio.CodecOpus || s.Format() != (audio.Format{SampleRate: 48000, Channels: tt.channels}) {
				t.Fatalf("codec %s format %+v", s.Codec(), s.Format())
			}
			native := ffmpegDecode(t, path, tt.channels, "opus")
			if len(got) != len(native) {
				t.Fatalf("%d frames, ffmpeg %d", len(got)/tt.channels, len(native)/tt.channels)
			}
			viaFFmpeg := ffmpegDecode(t, path, tt.channels, "libopus")
			if len(got) != len(viaFFmpeg) {
				t.Fatalf("%d frames, ffmpeg with libopus %d", len(got)/tt.channels, len(viaFFmpeg)/tt.channels)
			}
			n, l := snr(native, got), snr(viaFFmpeg, got)
			celt := celtOnly(t, path)
			t.Logf("%d frames; SNR %.1f dB against ffmpeg's decoder (CELT only: %v), %.1f dB against ffmpeg with libopus", len(got)/tt.channels, n, celt, l)
			if min := map[bool]float64{true: minSNRNativeCELT, false: minSNRNative}[celt]; n < min {
				t.Errorf("SNR %.1f dB against ffmpeg's decoder, want ≥ %.0f", n, min)
			}
			if l < minSNRLibopus {
				t.Errorf("SNR %.1f dB against ffmpeg with libopus, want ≥ %d", l, minSNRLibopus)
			}
		})
	}
}

// celtOnly reports whether all the audio packets of an Ogg Opus file are in
// CELT mode (TOC configurations 16 to 31).
func celtOnly(t testing.TB, path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range oggtest.Packets(b)[2:] {
		if len(p) > 0 && p[0]>>3 < 16 {
			return false
		}
	}
	return true
}

// hasContinuedPage reports whether an Ogg file has a page that continues
// a packet.
func hasContinuedPage(t testing.TB, path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for len(b) >= 27 {
		if b[5]&oggtest.Continued != 0 {
			return true
		}
		size := 27 + int(b[26])
		for _, l := range b[27 : 27+int(b[26])] {
			size += int(l)
		}
		b = b[size:]
	}
	return false
}

// withGain writes a copy of an Ogg Opus file whose header asks for an
// output gain (Q7.8 dB), a field ffmpeg's encoder leaves at 0.
func withGain(t testing.TB, path string, gainQ8 int16) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := 27 + int(b[26]) // the OpusHead packet, alone on the first page
	if string(b[at:at+8]) != "OpusHead" {
		t.Fatal("no OpusHead")
	}
	binary.LittleEndian.PutUint16(b[at+16:], uint16(gainQ8))
	out := strings.TrimSuffix(path, ".opus") + "-gain.opus"
	if err := os.WriteFile(out, oggtest.FixCRCs(b), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOutputGain checks the header's gain against the same file without.
func TestOutputGain(t *testing.T) {
	dir := t.TempDir()
	plain := encode(t, dir, "plain.opus", []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=1"}, "-ac", "1", "-b:a", "32k")
	_, ref := loaDecode(t, plain)
	_, got := loaDecode(t, withGain(t, plain, -6*256))
	if len(got) != len(ref) {
		t.Fatalf("%d frames, %d without gain", len(got), len(ref))
	}
	var num, den float64
	for i := range ref {
		num += float64(got[i]) * float64(ref[i])
		den += float64(ref[i]) * float64(ref[i])
	}
	if ratio, want := num/den, math.Pow(10, -6.0/20); math.Abs(ratio-want) > 1e-4 {
		t.Errorf("level ratio %.5f, want %.5f (-6 dB)", ratio, want)
	}
}

// TestDecodeFixtures decodes the files in audio/testdata: one second of a
// 440 Hz tone at half scale.
func TestDecodeFixtures(t *testing.T) {
	for _, tt := range []struct {
		file     string
		channels int
	}{{"tone.opus", 1}, {"tone-stereo.opus", 2}} {
		t.Run(tt.file, func(t *testing.T) {
			s, pcm := loaDecode(t, filepath.Join("..", "testdata", tt.file))
			if s.Format() != (audio.Format{SampleRate: 48000, Channels: tt.channels}) {
				t.Fatalf("format %+v", s.Format())
			}
			if frames := len(pcm) / tt.channels; frames != 48000 {
				t.Errorf("%d frames, want 48000", frames)
			}
			for c := range tt.channels {
				x := make([]float32, 0, 24000)
				for i := 12000; i < 36000; i++ {
					x = append(x, pcm[i*tt.channels+c])
				}
				if a := toneAt(x, 48000, 440); math.Abs(a-0.5) > 0.02 {
					t.Errorf("channel %d: 440 Hz at amplitude %.3f, want 0.5", c, a)
				}
			}
		})
	}
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
	return 2 * math.Hypot(s1-s2*math.Cos(w), s2*math.Sin(w)) / float64(len(x))
}

// TestUnsupported checks what ffmpeg can make but the boxes do not play.
func TestUnsupported(t *testing.T) {
	dir := t.TempDir()
	stereo := []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-ac", "2"}
	surround := []string{"-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-ac", "6"}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"mapping family 1", encode(t, dir, "family1.opus", stereo, "-mapping_family", "1"), "decode opus: page 1: channel mapping family 1 is not supported (only family 0: mono or stereo)"},
		{"5.1", encode(t, dir, "surround.opus", surround), "decode opus: page 1: channel mapping family 1 is not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = audio.Decode(f)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecoder(t *testing.T) {
	if _, err := opus.NewDecoder(3); err == nil {
		t.Error("NewDecoder(3): no error")
	}
	d, err := opus.NewDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]float32, audio.OpusMaxFrame)
	if _, err := d.Decode(nil, pcm); err == nil {
		t.Error("empty packet: no error")
	}
	if _, err := d.Decode([]byte{0xf8, 1, 2}, pcm[:100]); err == nil {
		t.Error("short output: no error")
	}
	// Code 3 with a frame count of 0: libopus refuses it.
	if _, err := d.Decode([]byte{0xfb, 0}, pcm); err == nil || !strings.Contains(err.Error(), "opus:") {
		t.Errorf("invalid packet: err = %v", err)
	}
	// One 20 ms CELT frame of silence (TOC only).
	if n, err := d.Decode([]byte{0xf8}, pcm); err != nil || n != 960 {
		t.Errorf("Decode = %d, %v; want 960", n, err)
	}
	d.Close()
	if _, err := d.Decode([]byte{0xf8}, pcm); err == nil {
		t.Error("Decode after Close: no error")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcealContinuesTheSound reads a tone's packets as the controller
// relays them, decodes the first ones, then asks for concealment of a lost
// packet: libopus carries the tone on instead of falling silent.
func TestConcealContinuesTheSound(t *testing.T) {
	f, err := os.Open("../testdata/tone.opus")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pk, err := audio.NewOpusPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	d, err := opus.NewDecoder(pk.Channels())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pcm := make([]float32, audio.OpusMaxFrame*pk.Channels())
	var last int
	for i := range 20 {
		p, n, err := pk.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		got, err := d.Decode(p, pcm)
		if err != nil || got != n {
			t.Fatalf("packet %d: decoded %d of %d samples: %v", i, got, n, err)
		}
		last = n
	}
	n, err := d.Conceal(last, pcm)
	if err != nil || n != last {
		t.Fatalf("Conceal = %d, %v; want %d", n, err, last)
	}
	var energy float64
	for _, v := range pcm[:n*pk.Channels()] {
		energy += float64(v) * float64(v)
	}
	if rms := math.Sqrt(energy / float64(n*pk.Channels())); rms < 0.01 {
		t.Errorf("concealment is silent (rms %.4f); want the tone carried on", rms)
	}
	if _, err := d.Conceal(100, pcm); err == nil {
		t.Error("Conceal(100): no error for a length libopus cannot make")
	}
}
