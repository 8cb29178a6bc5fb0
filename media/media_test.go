package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/loa-commune/loa/ingest"
)

// wav returns a 16-bit mono PCM WAV file of a 440 Hz tone.
func wav(rate int, d time.Duration) []byte {
	frames := int(int64(rate) * int64(d) / int64(time.Second))
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*frames))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1)) // PCM
	le(uint16(1)) // mono
	le(uint32(rate))
	le(uint32(rate * 2))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * frames))
	for i := range frames {
		le(int16(0.5 * math.MaxInt16 * math.Sin(2*math.Pi*440*float64(i)/float64(rate))))
	}
	return b.Bytes()
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fakeRenderer writes out as the rendition, or fails with err.
type fakeRenderer struct {
	out   []byte
	err   error
	calls int
}

func (f *fakeRenderer) Render(_ context.Context, src, dst string) (ingest.Result, error) {
	f.calls++
	if f.err != nil {
		os.WriteFile(dst, []byte("half a file"), 0o644) // what a killed ffmpeg leaves
		return ingest.Result{}, f.err
	}
	return ingest.Result{Codec: "pcm_s16le", Duration: time.Second}, os.WriteFile(dst, f.out, 0o644)
}

func (f *fakeRenderer) DecodeWAV(_ context.Context, src, dst string, rate, channels int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func TestPutKeepsOriginalAndRendition(t *testing.T) {
	dir := t.TempDir()
	play := []byte("OggS rendition")
	r := &fakeRenderer{out: play}
	s, err := Open(dir, DefaultLimits, r)
	if err != nil {
		t.Fatal(err)
	}
	data := wav(8000, time.Second)
	f, err := s.Put(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if f.SHA256 != hashOf(data) || f.Size != int64(len(data)) || f.PlaySHA256 != hashOf(play) || f.PlaySize != int64(len(play)) {
		t.Fatalf("Put = %+v", f)
	}
	if names, want := dirNames(t, dir), []string{hashOf(data), hashOf(play)}; !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Fatalf("folder holds %v, want %v", names, want)
	}
	if stored, _ := os.ReadFile(s.Path(f.SHA256)); !bytes.Equal(stored, data) {
		t.Fatal("the original is not kept as uploaded")
	}

	// Known bytes: nothing rendered again, nothing new stored.
	f2, err := s.Put(context.Background(), bytes.NewReader(data), func(sha string) bool { return sha == f.SHA256 })
	if err != nil || !f2.Existed || f2.SHA256 != f.SHA256 || r.calls != 1 {
		t.Fatalf("second Put = %+v, %v (renders: %d)", f2, err, r.calls)
	}
	if len(dirNames(t, dir)) != 2 {
		t.Fatalf("folder holds %v", dirNames(t, dir))
	}

	// An original from before renditions gets one on demand.
	os.Remove(s.Path(f.PlaySHA256))
	f3, err := s.Render(context.Background(), f.SHA256, f.Size)
	if err != nil || f3.PlaySHA256 != hashOf(play) {
		t.Fatalf("Render = %+v, %v", f3, err)
	}
	if wavOut, err := s.DecodeWAV(context.Background(), f.SHA256, 8000, 1); err != nil || !bytes.Equal(wavOut, data) {
		t.Fatalf("DecodeWAV = %d bytes, %v", len(wavOut), err)
	}
}

func TestPutRefusesAndKeepsNothing(t *testing.T) {
	good := wav(8000, time.Second)
	for _, tc := range []struct {
		name   string
		limits Limits
		data   []byte
		render error
		is     error
	}{
		{"empty", DefaultLimits, nil, nil, ingest.ErrNotAudio},
		{"over MaxBytes", Limits{MaxBytes: int64(len(good)) - 1}, good, nil, ErrTooBig},
		{"render fails", DefaultLimits, good, ingest.ErrSilent, ingest.ErrSilent},
		{"render times out", DefaultLimits, good, ingest.ErrTimeout, ingest.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, tc.limits, &fakeRenderer{out: []byte("x"), err: tc.render})
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Put(context.Background(), bytes.NewReader(tc.data), nil)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Put = %+v, %v; want %v", f, err, tc.is)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("folder holds %v after a refused upload", names)
			}
		})
	}
}

func TestOpenAndRemoveRefuseBadIDs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultLimits, &fakeRenderer{})
	if err != nil {
		t.Fatal(err)
	}
	// A file next to the media folder that a path trick would reach.
	if err := os.WriteFile(dir+"/../secret", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../secret", "ABCDEF", "x"} {
		if _, err := s.Open(id); err == nil {
			t.Errorf("Open(%q) succeeded", id)
		}
		if err := s.Remove(id); err == nil {
			t.Errorf("Remove(%q) succeeded", id)
		}
		if _, err := s.Render(context.Background(), id, 1); err == nil {
			t.Errorf("Render(%q) succeeded", id)
		}
	}
	if _, err := os.Stat(dir + "/../secret"); err != nil {
		t.Fatalf("the file outside the folder is gone: %v", err)
	}
}

// TestPutWithFFmpeg: the real pipeline, end to end through the store.
func TestPutWithFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (scripts/deps.sh test installs it)")
	}
	o := ingest.DefaultOptions()
	dir := t.TempDir()
	s, err := Open(dir, DefaultLimits, ingest.New(o))
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Put(context.Background(), bytes.NewReader(wav(22050, 3*time.Second)), nil)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if f.Result.Codec != "pcm_s16le" || f.Result.Duration != 3*time.Second || f.PlaySize == 0 {
		t.Fatalf("Put = %+v", f)
	}
	play, _ := os.ReadFile(s.Path(f.PlaySHA256))
	if !bytes.HasPrefix(play, []byte("OggS")) || !bytes.Contains(play[:200], []byte("OpusHead")) {
		t.Fatalf("the rendition is not Ogg Opus: % x", play[:min(len(play), 40)])
	}
	// The same upload elsewhere makes the same bytes.
	other, err := Open(t.TempDir(), DefaultLimits, ingest.New(o))
	if err != nil {
		t.Fatal(err)
	}
	if f2, err := other.Put(context.Background(), bytes.NewReader(wav(22050, 3*time.Second)), nil); err != nil || f2.PlaySHA256 != f.PlaySHA256 {
		t.Fatalf("a second rendering gave %s (%v), the first %s", f2.PlaySHA256, err, f.PlaySHA256)
	}
}
