package resume

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

// ErrMismatch: what was downloaded is not the file asked for (more bytes
// than its size, or another SHA-256); the partial file is removed.
var ErrMismatch = errors.New("the download does not match the file's size and SHA-256")

// Download fetches r into the partial file part, going on from what an
// earlier attempt left there, and checks the whole against r.Size and the
// hex SHA-256 sha. On success part holds the file, synced to disk; on
// ErrMismatch it is removed; on other errors (network, server) it keeps
// what was fetched for the next attempt.
func Download(ctx context.Context, r Request, part, sha string) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	mismatch := func(err error) error {
		f.Close()
		f = nil
		os.Remove(part)
		return err
	}
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > r.Size {
		if err := Truncate(f); err != nil {
			return err
		}
		have = 0
	}
	if have < r.Size {
		if err := get(ctx, r, f, have); err != nil {
			if errors.Is(err, ErrMismatch) {
				return mismatch(err)
			}
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != r.Size || got != strings.ToLower(sha) {
		return mismatch(fmt.Errorf("%w: got %d bytes with sha256 %s, want %d bytes", ErrMismatch, n, got, r.Size))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	return err
}

// Request is one download.
type Request struct {
	URL            string
	User, Password string // HTTP Basic
	Size           int64  // the file's size: no more is read
	// MinRate bounds how slow the transfer may be, in bytes a second: the
	// request's deadline is a minute plus Size/MinRate.
	MinRate int64
	Client  *http.Client // nil: http.DefaultClient
}

// get GETs r.URL from offset have into file, which is positioned at its
// end, asking for the rest with Range; a server that answers with the whole
// file starts it over. The file holds r.Size bytes when get returns nil.
func get(ctx context.Context, r Request, file *os.File, have int64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(r.Size/max(r.MinRate, 1))*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(r.User, r.Password)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if err := Truncate(file); err != nil {
			return err
		}
		have = 0
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
			Truncate(file)
			return fmt.Errorf("GET %s: unexpected Content-Range %q", r.URL, resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		Truncate(file)
		return fmt.Errorf("GET %s: %s", r.URL, resp.Status)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("GET %s: %s: check the device id and token", r.URL, resp.Status)
	default:
		return fmt.Errorf("GET %s: %s", r.URL, resp.Status)
	}
	n, err := io.Copy(file, io.LimitReader(resp.Body, r.Size-have+1))
	if have+n > r.Size {
		return fmt.Errorf("GET %s: %w: more than %d bytes", r.URL, ErrMismatch, r.Size)
	}
	if err != nil {
		return fmt.Errorf("GET %s: after %d bytes: %w", r.URL, have+n, err)
	}
	if have+n < r.Size {
		return fmt.Errorf("GET %s: body ended after %d of %d bytes", r.URL, have+n, r.Size)
	}
	return nil
}

// Have is how many bytes the partial file at path holds (0 if none).
func Have(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Truncate empties a partial file, to start the download over.
func Truncate(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}
