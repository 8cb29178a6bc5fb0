package live

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// fullDisk fails every write once limit bytes were written, as a full disk
// does.
type fullDisk struct {
	*os.File
	limit int
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.File.Write(p[:f.limit])
		f.limit = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.limit -= len(p)
	return f.File.Write(p)
}

type countPublisher struct {
	mu sync.Mutex
	n  int
}

func (p *countPublisher) PublishStream(string, []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return nil
}

type instantClock struct{ now time.Time }

func (c *instantClock) Now() time.Time { return c.now }
func (c *instantClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

// silenceStream is an Ogg Opus stream of n silent 20 ms packets.
func silenceStream(t *testing.T, n int) []byte {
	var b bytes.Buffer
	w, err := audio.NewOggOpusWriter(&b, 1, 312, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := w.WritePacket(audio.OpusSilence(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testSession(t *testing.T, recording string) (*Session, *countPublisher) {
	_, priv, _ := ed25519Key()
	pub := &countPublisher{}
	s, err := New(Config{
		ID: "s1", Site: "x", Signers: []*protocol.Signer{protocol.NewSigner(priv)}, Publisher: pub,
		Options: func() Options { o := DefaultOptions(); o.Announce = 0; return o }(), Recording: recording, Clock: &instantClock{now: time.Unix(1e9, 0)},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

// TestRecordingDiskFull: the disk fills mid-session: the recording goes,
// its temporary file too, and the session plays on to its end.
func TestRecordingDiskFull(t *testing.T) {
	dir := t.TempDir()
	s, pub := testSession(t, filepath.Join(dir, "s1.opus"))
	s.newRecord = func(path string) (recordFile, string, error) {
		f, tmp, err := createRecordFile(path)
		if err != nil {
			return nil, "", err
		}
		return &fullDisk{File: f.(*os.File), limit: 300}, tmp, nil
	}
	sum, err := s.Run(context.Background(), bytes.NewReader(silenceStream(t, 250)))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Ended != EndFinished || sum.End.Sub(sum.Start) != 5*time.Second || pub.n != 51 {
		t.Errorf("%d published; summary %+v", pub.n, sum)
	}
	if sum.Recording != "" || !errors.Is(sum.RecordingError, syscall.ENOSPC) {
		t.Errorf("recording %q, error %v; want none, ENOSPC", sum.Recording, sum.RecordingError)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("files left: %v", left)
	}
}

// TestRecordingCannotStart: a recording folder that cannot be made costs
// the recording only.
func TestRecordingCannotStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, pub := testSession(t, filepath.Join(file, "s1.opus"))
	sum, err := s.Run(context.Background(), bytes.NewReader(silenceStream(t, 100)))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Ended != EndFinished || pub.n != 21 || sum.Recording != "" || sum.RecordingError == nil {
		t.Errorf("%d published; summary %+v", pub.n, sum)
	}
}

func ed25519Key() (ed25519.PublicKey, ed25519.PrivateKey, error) { return ed25519.GenerateKey(nil) }
