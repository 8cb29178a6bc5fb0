package selfupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
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
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("download build: %w", err)
	}
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	have, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("download build: %w", err)
	}
	if have > f.Size {
		if err := truncate(file); err != nil {
			return "", fmt.Errorf("download build: %w", err)
		}
		have = 0
	}
	if have < f.Size {
		if err := get(ctx, f, file, have); err != nil {
			if errors.Is(err, ErrTampered) {
				file.Close()
				file = nil
				os.Remove(part)
			}
			return "", err
		}
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("download build: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, file)
	if err != nil {
		return "", fmt.Errorf("download build: %w", err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != strings.ToLower(f.SHA256) {
		file.Close()
		file = nil
		os.Remove(part)
		return "", ErrTampered
	}
	if err := file.Close(); err != nil {
		file = nil
		return "", fmt.Errorf("download build: %w", err)
	}
	file = nil
	return part, nil
}

// Have is how many bytes of the build with sha256 are downloaded.
func (s *Store) Have(sha string) int64 {
	fi, err := os.Stat(s.PartialPath(sha))
	if err != nil {
		return 0
	}
	return fi.Size()
}

func truncate(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// get GETs the build from offset have into file (positioned at its end).
func get(ctx context.Context, f Fetch, file *os.File, have int64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(f.Size/minRate)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return fmt.Errorf("download build: %w", err)
	}
	req.SetBasicAuth(f.User, f.Password)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download build: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if err := truncate(file); err != nil {
			return fmt.Errorf("download build: %w", err)
		}
		have = 0
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
			truncate(file)
			return fmt.Errorf("download build: GET %s: unexpected Content-Range %q", f.URL, resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		truncate(file)
		return fmt.Errorf("download build: GET %s: %s", f.URL, resp.Status)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("download build: GET %s: %s: check the device id and token", f.URL, resp.Status)
	default:
		return fmt.Errorf("download build: GET %s: %s", f.URL, resp.Status)
	}
	n, err := io.Copy(file, io.LimitReader(resp.Body, f.Size-have+1))
	if have+n > f.Size {
		return ErrTampered
	}
	if err != nil {
		return fmt.Errorf("download build: GET %s: after %d bytes: %w", f.URL, have+n, err)
	}
	if have+n < f.Size {
		return fmt.Errorf("download build: GET %s: body ended after %d of %d bytes", f.URL, have+n, f.Size)
	}
	return nil
}
