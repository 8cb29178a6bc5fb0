package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// ErrTooBig is returned when an upload exceeds the size limit.
var ErrTooBig = errors.New("file too big")

// Limits bound what may be uploaded.
type Limits struct {
	MaxBytes    int64
	MaxDuration time.Duration
}

// DefaultLimits suit spoken announcements and short music: 50 MB, 30 min.
var DefaultLimits = Limits{MaxBytes: 50 << 20, MaxDuration: 30 * time.Minute}

// Store keeps media files in one folder.
type Store struct {
	dir    string
	limits Limits
}

// Open uses (creating) dir.
func Open(dir string, limits Limits) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open media folder: %w", err)
	}
	return &Store{dir: dir, limits: limits}, nil
}

// File describes a stored file.
type File struct {
	SHA256 string
	Size   int64
	Info   audio.Info
}

// Put reads an upload, checks that it decodes within the limits, and keeps
// it under its hash. Putting the same bytes twice is harmless.
func (s *Store) Put(r io.Reader) (File, error) {
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
		return File{}, fmt.Errorf("%w: the file is empty", audio.ErrUnknownFormat)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return File{}, err
	}
	info, err := audio.Probe(tmp, s.limits.MaxDuration)
	if err != nil {
		return File{}, err
	}
	if err := tmp.Sync(); err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	f := File{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Info: info}
	if err := os.Rename(tmp.Name(), s.Path(f.SHA256)); err != nil {
		return File{}, fmt.Errorf("store media: %w", err)
	}
	return f, nil
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
