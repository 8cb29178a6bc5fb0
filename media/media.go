package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/protocol"
)

// ErrTooBig is returned when an upload exceeds the size limit.
var ErrTooBig = errors.New("file too big")

// Limits bound what may be uploaded (the sound's length is the Renderer's).
type Limits struct {
	MaxBytes int64
}

// DefaultLimits: 50 MB, an hour of a phone's 128 kbit/s recording.
var DefaultLimits = Limits{MaxBytes: 50 << 20}

// Renderer makes what boxes play from a recording: ingest.Pipeline.
type Renderer interface {
	Render(ctx context.Context, src, dst string) (ingest.Result, error)
	DecodeWAV(ctx context.Context, src, dst string, rate, channels int) error
}

var _ Renderer = (*ingest.Pipeline)(nil)

// Store keeps media files in one folder.
type Store struct {
	dir    string
	limits Limits
	render Renderer
}

// Open uses (creating) dir.
func Open(dir string, limits Limits, render Renderer) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open media folder: %w", err)
	}
	return &Store{dir: dir, limits: limits, render: render}, nil
}

// File describes a stored original and its rendition.
type File struct {
	SHA256 string
	Size   int64
	// Existed: the original was stored already, so nothing was rendered
	// and only SHA256 and Size are set.
	Existed bool
	// Result is what rendering found: codec, duration, loudness.
	Result ingest.Result
	// PlaySHA256 and PlaySize name the rendition boxes download.
	PlaySHA256 string
	PlaySize   int64
}

// Put reads an upload, renders it for the boxes, and keeps the original and
// the rendition under their hashes; on any error it keeps neither. known
// reports an original already stored: then Put renders nothing and returns
// File.Existed.
func (s *Store) Put(ctx context.Context, r io.Reader, known func(sha string) bool) (File, error) {
	tmp, err := os.CreateTemp(s.dir, ".upload-*")
	if err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()

	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, s.limits.MaxBytes+1))
	if err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	if n > s.limits.MaxBytes {
		return File{}, fmt.Errorf("%w: over %d MB", ErrTooBig, s.limits.MaxBytes>>20)
	}
	if n == 0 {
		return File{}, fmt.Errorf("%w: the file is empty", ingest.ErrNotAudio)
	}
	f := File{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	if known != nil && known(f.SHA256) {
		f.Existed = true
		return f, nil
	}
	if err := tmp.Sync(); err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	if err := s.renderFile(ctx, tmp.Name(), &f); err != nil {
		return File{}, err
	}
	if err := os.Rename(tmp.Name(), s.Path(f.SHA256)); err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	return f, nil
}

// Render makes the rendition of an original already stored (media from
// before renditions).
func (s *Store) Render(ctx context.Context, sha string, size int64) (File, error) {
	if err := protocol.ValidSHA256(sha); err != nil {
		return File{}, err
	}
	f := File{SHA256: sha, Size: size}
	return f, s.renderFile(ctx, s.Path(sha), &f)
}

// renderFile renders src, keeps the rendition under its hash and fills in
// f's Result and Play fields.
func (s *Store) renderFile(ctx context.Context, src string, f *File) error {
	out, err := os.CreateTemp(s.dir, ".play-*")
	if err != nil {
		return fmt.Errorf("store media: %w", err)
	}
	out.Close()
	defer os.Remove(out.Name()) // no-op after the rename
	res, err := s.render.Render(ctx, src, out.Name())
	f.Result = res
	if err != nil {
		return err
	}
	sha, size, err := hashFile(out.Name())
	if err != nil {
		return fmt.Errorf("store media: %w", err)
	}
	if err := os.Rename(out.Name(), s.Path(sha)); err != nil {
		return fmt.Errorf("store media: %w", err)
	}
	f.PlaySHA256, f.PlaySize = sha, size
	return nil
}

// hashFile syncs the file at path and returns its SHA-256 and size.
func hashFile(path string) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, f.Sync()
}

// DecodeWAV decodes a stored original into 16-bit WAV at the given rate and
// channels (the controller joins recordings in that form).
func (s *Store) DecodeWAV(ctx context.Context, sha string, rate, channels int) ([]byte, error) {
	if err := protocol.ValidSHA256(sha); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(s.dir, ".wav-*")
	if err != nil {
		return nil, fmt.Errorf("decode media %s: %w", sha, err)
	}
	out.Close()
	defer os.Remove(out.Name())
	if err := s.render.DecodeWAV(ctx, s.Path(sha), out.Name(), rate, channels); err != nil {
		return nil, err
	}
	return os.ReadFile(out.Name())
}

// Path is where the file with this hash lives. The caller must have checked
// the hash with protocol.ValidSHA256.
func (s *Store) Path(sha string) string { return filepath.Join(s.dir, sha) }

// Open opens a stored file for reading.
func (s *Store) Open(sha string) (*os.File, error) {
	if err := protocol.ValidSHA256(sha); err != nil {
		return nil, err
	}
	return os.Open(s.Path(sha))
}

// Remove deletes a stored file; a missing one is not an error.
func (s *Store) Remove(sha string) error {
	if err := protocol.ValidSHA256(sha); err != nil {
		return err
	}
	if err := os.Remove(s.Path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove media %s: %w", sha, err)
	}
	return nil
}
