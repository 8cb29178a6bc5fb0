package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/store"
)

// TestOpenWithoutFFmpeg: `loa serve` will not run without ffmpeg, and says
// how to install it.
func TestOpenWithoutFFmpeg(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Media.FFmpeg = "/nonexistent/ffmpeg"
	c, err := controller.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		c.Close(context.Background())
		t.Fatal("the controller started without ffmpeg")
	}
	if !strings.Contains(err.Error(), "apt-get install ffmpeg") || !strings.Contains(err.Error(), "/nonexistent/ffmpeg") {
		t.Fatalf("Open = %q, want it to name the missing program and how to install ffmpeg", err)
	}
}

// TestMediaFromBeforeIsConverted: media uploaded before renditions (a row
// without one, the original in the media folder) gets its normalised Opus
// at the first start, and the original stays served for boxes whose plans
// still name it.
func TestMediaFromBeforeIsConverted(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (scripts/deps.sh test installs it)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	original, err := os.ReadFile("../e2e/testdata/short.mp3")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(original)
	id := hex.EncodeToString(sum[:])
	if err := os.MkdirAll(filepath.Join(dir, "media"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "media", id), original, 0o644)
	st, err := store.Open(ctx, filepath.Join(dir, "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddMedia(ctx, store.Media{SHA256: id, Name: "old bulletin", Codec: "mp3", Size: int64(len(original)), Duration: 2 * time.Second, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	c, err := controller.Open(ctx, testConfig(dir), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	client := api.NewClient("http://"+c.HTTPAddr(), c.AdminToken())
	var m api.MediaInfo
	deadline := time.Now().Add(time.Minute)
	for m.Play == nil {
		if time.Now().After(deadline) {
			t.Fatalf("media not converted: %+v", m)
		}
		time.Sleep(100 * time.Millisecond)
		list, err := client.Media(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("media list %+v, %v", list, err)
		}
		m = list[0]
	}
	if m.ID != id || m.Play.Codec != "opus" || m.LoudnessLUFS == nil || m.Play.LoudnessLUFS == nil {
		t.Fatalf("converted media %+v (play %+v)", m, m.Play)
	}
	// Both files are served: boxes with older plans keep the original.
	for _, file := range []string{id, m.Play.ID} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+c.HTTPAddr()+"/v1/media/"+file, nil)
		req.Header.Set("Authorization", "Bearer "+c.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := sha256.Sum256(body); resp.StatusCode != http.StatusOK || hex.EncodeToString(got[:]) != file {
			t.Fatalf("GET /v1/media/%s: %s, %d bytes of another file", file, resp.Status, len(body))
		}
	}
}
