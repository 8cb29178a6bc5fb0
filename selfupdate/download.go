package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/loa-commune/loa/internal/resume"
)

// ErrTampered: the downloaded build is not the one the signed offer names
// (another SHA-256, or more bytes than its size). It has been deleted.
var ErrTampered = errors.New("tampered: the build's SHA-256 differs from the signed offer")

// minRate is the slowest download waited for before an attempt is given up;
// the next attempt resumes where it stopped.
const minRate = 8 << 10 // bytes per second

// Fetch is one build to download.
type Fetch struct {
	Client   *http.Client
	URL      string // <server><Path>
	User     string // HTTP Basic: the box's id
	Password string // and token
	SHA256   string // hex, from the signed offer
	Size     int64
}

// Download fetches f into partial/<sha256>, resuming what an earlier attempt
// left with Range, never reading more than f.Size bytes, and returns the
// file's path once its size and SHA-256 match f. A mismatch deletes it and
// is ErrTampered; other errors (network, server) keep what was fetched for
// the next attempt.
func (s *Store) Download(ctx context.Context, f Fetch) (string, error) {
	part := s.PartialPath(f.SHA256)
	err := resume.Download(ctx, resume.Request{URL: f.URL, User: f.User, Password: f.Password, Size: f.Size,
		MinRate: minRate, Client: f.Client}, part, f.SHA256)
	if errors.Is(err, resume.ErrMismatch) {
		return "", ErrTampered
	}
	if err != nil {
		return "", fmt.Errorf("download build: %w", err)
	}
	return part, nil
}

// Have is how many bytes of the build with sha256 are downloaded.
func (s *Store) Have(sha string) int64 { return resume.Have(s.PartialPath(sha)) }
