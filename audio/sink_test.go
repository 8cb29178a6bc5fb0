package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"
)

func TestWAVSinkRoundTrip(t *testing.T) {
	for _, f := range []Format{DefaultFormat, {22050, 1}, {44100, 6}} {
		dir := t.TempDir()
		sink, err := NewWAVSink(dir, f, false)
		if err != nil {
			t.Fatal(err)
		}
		pcm := Chime(f)
		// A partial frame at the end is dropped.
		if err := sink.Play(context.Background(), "ann-1/../x y", bytes.NewReader(append(pcm, 1, 2, 3))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "ann-1_.._x_y.wav")
		if sink.Path("ann-1/../x y") != path {
			t.Fatalf("Path = %s", sink.Path("ann-1/../x y"))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if riff := binary.LittleEndian.Uint32(b[4:]); int(riff) != len(b)-8 {
			t.Errorf("RIFF size %d, file %d bytes", riff, len(b))
		}
		if tag := binary.LittleEndian.Uint16(b[20:]); tag != 3 {
			t.Errorf("format tag %d, want 3 (IEEE float)", tag)
		}
		gotF, samples, err := ReadWAV(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if gotF != f {
			t.Errorf("format %+v, want %+v", gotF, f)
		}
		if !bytes.Equal(PutFloats(nil, samples), pcm) {
			t.Errorf("samples differ from what was played")
		}
		// And the WAV decoder reads the same file.
		s, err := Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := drain(s); err != nil || n != len(pcm)/4 {
			t.Errorf("Decode: %d samples, %v", n, err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("%d files in the folder, want 1", len(entries))
		}
	}
}

func TestReadWAVFixtures(t *testing.T) {
	for _, name := range []string{"tone.wav", "tone-8bit.wav", "tone-24bit.wav", "tone-32bit.wav", "tone-float.wav"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			format, samples, err := ReadWAV(iotest.HalfReader(f))
			if err != nil {
				t.Fatal(err)
			}
			if len(samples) != format.SampleRate {
				t.Errorf("%d samples at %+v", len(samples), format)
			}
			_, decoded := decodeFile(t, name)
			if !bytes.Equal(PutFloats(nil, samples), PutFloats(nil, decoded)) {
				t.Error("ReadWAV and Decode differ")
			}
		})
	}
	if _, _, err := ReadWAV(bytes.NewReader([]byte("RIFF1234WAVEjunk"))); err == nil {
		t.Error("no error for a broken WAV")
	}
}

// TestWAVSinkPacedCancel plays 3 s in real time and cancels it early: Play
// returns the context's error and the file holds what was played so far.
func TestWAVSinkPacedCancel(t *testing.T) {
	dir := t.TempDir()
	f := Format{8000, 1}
	sink, err := NewWAVSink(dir, f, true)
	if err != nil {
		t.Fatal(err)
	}
	pcm := Siren(f, 3*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	src := &notifyReader{r: bytes.NewReader(pcm), after: int(f.Bytes(100 * time.Millisecond)), fn: cancel}
	err = sink.Play(ctx, "cut", src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Play = %v, want context.Canceled", err)
	}
	b, err := os.ReadFile(sink.Path("cut"))
	if err != nil {
		t.Fatal(err)
	}
	_, samples, err := ReadWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled once 100 ms had been read: a chunk or two more at most.
	if n := len(samples); n < 800 || n > 800+2*160 {
		t.Errorf("%d frames played before the cancel took effect", n)
	}
	if !bytes.Equal(PutFloats(nil, samples), pcm[:4*len(samples)]) {
		t.Error("played samples differ")
	}
}

// notifyReader calls fn once after bytes have been read.
type notifyReader struct {
	r     io.Reader
	after int
	read  int
	fn    func()
}

func (n *notifyReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	n.read += k
	if n.fn != nil && n.read >= n.after {
		n.fn()
		n.fn = nil
	}
	return k, err
}

func TestWAVSinkReadError(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewWAVSink(dir, DefaultFormat, false)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	src := io.MultiReader(bytes.NewReader(make([]byte, 8000)), iotest.ErrReader(boom))
	if err := sink.Play(context.Background(), "bad", src); !errors.Is(err, boom) {
		t.Fatalf("Play = %v, want boom", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
	sink.Close()
	if err := sink.Play(context.Background(), "late", bytes.NewReader(nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Close = %v", err)
	}
}

func TestNullSink(t *testing.T) {
	f := Format{8000, 2}
	t.Run("counts frames", func(t *testing.T) {
		s := NewNullSink(f, false)
		for i := 0; i < 3; i++ {
			if err := s.Play(context.Background(), "x", bytes.NewReader(Silence(f, time.Second))); err != nil {
				t.Fatal(err)
			}
		}
		if s.Frames() != 24000 {
			t.Fatalf("Frames = %d", s.Frames())
		}
	})
	t.Run("paced cancel", func(t *testing.T) {
		s := NewNullSink(f, true)
		ctx, cancel := context.WithCancel(context.Background())
		src := &notifyReader{r: bytes.NewReader(Silence(f, 3*time.Second)), after: int(f.Bytes(60 * time.Millisecond)), fn: cancel}
		if err := s.Play(ctx, "x", src); !errors.Is(err, context.Canceled) {
			t.Fatalf("Play = %v", err)
		}
		if n := s.Frames(); n < 480 || n > 480+320 {
			t.Fatalf("Frames = %d", n)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		s := NewNullSink(f, true)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := s.Play(ctx, "x", bytes.NewReader(Silence(f, time.Hour)))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Play = %v", err)
		}
	})
}

func TestSanitizeName(t *testing.T) {
	tests := map[string]string{
		"ann-1700000000":   "ann-1700000000",
		"../../etc/passwd": "_.._etc_passwd",
		"a/b\\c":           "a_b_c",
		"":                 "item",
		"...":              "item",
		".hidden":          "hidden",
		"thông báo":        "th_ng_b_o",
	}
	for in, want := range tests {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}
