package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// fakeBroadcaster stands in for the MQTT side: it counts what the API asks
// of it and hands out a real scheduler.
type fakeBroadcaster struct {
	sched *scheduler.Scheduler

	mu        sync.Mutex
	replans   int
	configs   int
	forgotten []string
}

func (b *fakeBroadcaster) Replan() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replans++
}

func (b *fakeBroadcaster) PublishConfigs(context.Context, ...string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.configs++
	return nil
}

func (b *fakeBroadcaster) ForgetDevice(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forgotten = append(b.forgotten, id)
	return nil
}

func (b *fakeBroadcaster) RepublishAll(ctx context.Context) error {
	b.Replan()
	return b.PublishConfigs(ctx)
}

func (b *fakeBroadcaster) Scheduler() *scheduler.Scheduler { return b.sched }

func (b *fakeBroadcaster) Metrics() map[string]int64 {
	replans, configs := b.counts()
	return map[string]int64{"replans": int64(replans), "configs_published": int64(configs)}
}

func (b *fakeBroadcaster) counts() (replans, configs int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.replans, b.configs
}

var _ api.Broadcaster = (*fakeBroadcaster)(nil)

const adminToken = "admin-secret-0123456789"

// env is a running API with a real store and media folder.
type env struct {
	srv      *httptest.Server
	client   *api.Client
	store    *store.Store
	mediaDir string
	bc       *fakeBroadcaster
	loc      *time.Location
	now      time.Time
}

func hcm(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// newEnv starts the API at a fixed "now": 2026-03-01 05:30 in Hanoi's zone
// (2026-02-28 22:30 UTC).
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, api.Options{})
}

// fakeSpeaker "speaks" any text as a one-second tone, counting calls.
type fakeSpeaker struct {
	mu    sync.Mutex
	texts []string
}

func (f *fakeSpeaker) Render(_ context.Context, text string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.texts = append(f.texts, text)
	return wav(22050, time.Second+time.Duration(len(f.texts))*time.Millisecond), nil
}

// newEnvWith is newEnv with the clock, keys, speech, exercise, all-clear and collectors options of extra,
// and a rollout engine when it names a BuildsDir.
func newEnvWith(t testing.TB, extra api.Options) *env {
	t.Helper()
	loc := hcm(t)
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	if extra.Now != nil {
		now = extra.Now()
	}
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mediaDir := filepath.Join(dir, "media")
	ms, err := media.Open(mediaDir, media.DefaultLimits, ingest.New(ingest.DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	bc := &fakeBroadcaster{sched: scheduler.New(loc, 48*time.Hour)}
	clock := func() time.Time { return now }
	if extra.Now != nil {
		clock = extra.Now
	}
	var rollouts api.Rollouts
	if extra.BuildsDir != "" {
		rollouts = rollout.New(st, bc.PublishConfigs, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	h := api.NewServer(api.Options{
		Site: "xa-an-binh", AdminToken: adminToken, BrokerURL: "tcp://10.0.0.1:1883", ServerURL: "http://10.0.0.1:8080",
		DefaultVolume: 80, Validity: 15 * time.Minute, StaleAfter: time.Minute, Now: clock,
		Speech: extra.Speech, ExerciseNotice: extra.ExerciseNotice, AllClearText: extra.AllClearText, CAP: extra.CAP,
		Collectors: extra.Collectors, Keys: extra.Keys, BuildsDir: extra.BuildsDir, Rollouts: rollouts,
	}, st, ms, bc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: srv, client: api.NewClient(srv.URL, adminToken), store: st, mediaDir: mediaDir, bc: bc, loc: loc, now: now}
}

// apiError asserts err is an answer of the controller with this status.
func apiError(t *testing.T, err error, status int) *api.APIError {
	t.Helper()
	var ae *api.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want an API error with status %d", err, err, status)
	}
	if ae.Status != status {
		t.Fatalf("status %d (%s: %s), want %d", ae.Status, ae.Code, ae.Message, status)
	}
	if ae.Message == "" || ae.Code == "" {
		t.Fatalf("error without message or code: %+v", ae)
	}
	return ae
}

func (e *env) addDevice(t *testing.T, id string, groups ...string) api.AddDeviceResponse {
	t.Helper()
	resp, err := e.client.AddDevice(context.Background(), api.AddDeviceRequest{ID: id, Groups: groups})
	if err != nil {
		t.Fatalf("add device %s: %v", id, err)
	}
	return resp
}

func (e *env) addMedia(t *testing.T, data []byte) api.MediaInfo {
	t.Helper()
	m, err := e.client.AddMedia(context.Background(), "tone.wav", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("add media: %v", err)
	}
	return m
}

func (e *env) mediaFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(e.mediaDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	sort.Strings(names)
	return names
}

// wav returns a 16-bit mono PCM WAV file of a 440 Hz tone.
func wav(rate int, d time.Duration) []byte {
	frames := int(int64(rate) * int64(d) / int64(time.Second))
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*frames))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
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

// addBoxes registers n boxes, box-00000 on, spread over 10 groups g-00..g-09.
func (e *env) addBoxes(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		d := store.Device{ID: fmt.Sprintf("box-%05d", i), Groups: []string{fmt.Sprintf("g-%02d", i%10)}, Volume: 70, CreatedAt: e.now}
		if err := e.store.AddDevice(context.Background(), d, "h"); err != nil {
			t.Fatal(err)
		}
	}
}

// postCreated POSTs body to path over real HTTP as the admin and returns the
// answer's bytes; anything but 201 Created fails t.
func (e *env) postCreated(t testing.TB, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s %.200s, %v", path, resp.Status, raw, err)
	}
	return raw
}
