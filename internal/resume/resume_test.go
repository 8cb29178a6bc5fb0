package resume_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/resume"
)

// server serves body with Range (http.ServeContent); its first answer is
// cut after cut bytes, as a 3G link drops.
func server(t *testing.T, body []byte, cut int) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "box-1" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 1 && cut > 0 {
			w.Header().Set("Content-Length", "999999")
			w.Write(body[:cut])
			return // the handler ends early: the client sees the body end short
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestDownloadResumes(t *testing.T) {
	body := bytes.Repeat([]byte("loa "), 50_000)
	sum := sha256.Sum256(body)
	srv, calls := server(t, body, 70_000)
	part := filepath.Join(t.TempDir(), "x.part")
	r := resume.Request{URL: srv.URL, User: "box-1", Password: "secret", Size: int64(len(body)), MinRate: 1 << 10}
	err := resume.Download(context.Background(), r, part, hex.EncodeToString(sum[:]))
	if err == nil || resume.Have(part) != 70_000 {
		t.Fatalf("cut download: %v, %d bytes kept; want an error and 70000", err, resume.Have(part))
	}
	if err := resume.Download(context.Background(), r, part, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(part)
	if !bytes.Equal(got, body) || calls.Load() != 2 {
		t.Fatalf("after resuming: %d bytes, %d requests", len(got), calls.Load())
	}
}

func TestDownloadMismatch(t *testing.T) {
	body := []byte(strings.Repeat("x", 4096))
	other := sha256.Sum256([]byte("something else"))
	srv, _ := server(t, body, 0)
	dir := t.TempDir()
	for name, r := range map[string]resume.Request{
		"wrong sha256": {URL: srv.URL, User: "box-1", Password: "secret", Size: 4096},
		"longer":       {URL: srv.URL, User: "box-1", Password: "secret", Size: 4000},
	} {
		part := filepath.Join(dir, name)
		err := resume.Download(context.Background(), r, part, hex.EncodeToString(other[:]))
		if !errors.Is(err, resume.ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
		if _, err := os.Stat(part); !os.IsNotExist(err) {
			t.Errorf("%s: the partial file is still there", name)
		}
	}
	r := resume.Request{URL: srv.URL, User: "box-1", Password: "wrong", Size: 4096}
	if err := resume.Download(context.Background(), r, filepath.Join(dir, "auth"), hex.EncodeToString(other[:])); err == nil || !strings.Contains(err.Error(), "check the device id and token") {
		t.Errorf("wrong token: %v", err)
	}
}
