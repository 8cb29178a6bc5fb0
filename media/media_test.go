package media

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
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
	return names
}

func TestPutStoresByHash(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	data := wav(8000, time.Second)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	f, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if f.SHA256 != want || f.Size != int64(len(data)) {
		t.Fatalf("Put = %s (%d bytes), want %s (%d bytes)", f.SHA256, f.Size, want, len(data))
	}
	if f.Info.Codec != audio.CodecWAV || f.Info.Duration != time.Second {
		t.Fatalf("Info = %+v, want wav of 1s", f.Info)
	}
	stored, err := os.ReadFile(s.Path(want))
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("the stored file differs from the upload (%v)", err)
	}
	rf, err := s.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	rf.Close()

	// The same bytes again: fine, one file.
	f2, err := s.Put(bytes.NewReader(data))
	if err != nil || f2.SHA256 != want {
		t.Fatalf("second Put = %+v, %v", f2, err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{want}) {
		t.Fatalf("folder holds %v, want just %s", names, want)
	}

	if err := s.Remove(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(want); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("folder holds %v after Remove", names)
	}
}

func TestOpenAndRemoveRefuseBadIDs(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultLimits)
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
	}
	if _, err := os.Stat(dir + "/../secret"); err != nil {
		t.Fatalf("the file outside the folder is gone: %v", err)
	}
}

func TestPutRefuses(t *testing.T) {
	good := wav(8000, time.Second)
	random := make([]byte, 4096)
	rand.Read(random)
	tests := []struct {
		name   string
		limits Limits
		data   []byte
		is     error // nil: any error
	}{
		{"corrupt", DefaultLimits, random, nil},
		{"empty", DefaultLimits, nil, audio.ErrUnknownFormat},
		{"header cut short", DefaultLimits, good[:30], nil},
		{"data cut short", DefaultLimits, good[:len(good)/2], nil},
		{"header only", DefaultLimits, good[:44], nil},
		{"over MaxBytes", Limits{MaxBytes: int64(len(good)) - 1, MaxDuration: time.Hour}, good, ErrTooBig},
		{"over MaxDuration", Limits{MaxBytes: 1 << 20, MaxDuration: 500 * time.Millisecond}, good, audio.ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Put(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatalf("Put accepted it: %+v", f)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Put = %v, want %v", err, tc.is)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("folder holds %v after a refused upload", names)
			}
		})
	}
}

func TestPutAtTheLimits(t *testing.T) {
	good := wav(8000, time.Second)
	s, err := Open(t.TempDir(), Limits{MaxBytes: int64(len(good)), MaxDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bytes.NewReader(good)); err != nil {
		t.Fatalf("a file exactly at both limits is refused: %v", err)
	}
}

func TestPutFromTestdata(t *testing.T) {
	for _, name := range []string{"tone.wav", "tone.mp3", "tone.ogg", "tone.flac"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("../audio/testdata/" + name)
			if err != nil {
				t.Skipf("no fixture: %v", err)
			}
			s, err := Open(t.TempDir(), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Put(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Put(%s): %v", name, err)
			}
			if f.Info.Duration <= 0 {
				t.Fatalf("Info = %+v", f.Info)
			}
		})
	}
	for _, name := range []string{"corrupt.mp3", "truncated.flac", "empty.wav"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("../audio/testdata/" + name)
			if err != nil {
				t.Skipf("no fixture: %v", err)
			}
			dir := t.TempDir()
			s, err := Open(dir, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if f, err := s.Put(bytes.NewReader(data)); err == nil {
				t.Fatalf("Put(%s) accepted it: %+v", name, f)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("folder holds %v", names)
			}
		})
	}
}
