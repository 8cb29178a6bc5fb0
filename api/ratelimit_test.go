package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// fakeClock is the limiter's clock, moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logCount counts log records by message.
type logCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCount) WithGroup(string) slog.Handler      { return l }
func (l *logCount) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// limitedEnv is the API with the given limits, a box (loa-1, its token),
// a viewer token and a media file.
type limitedEnv struct {
	srv      *httptest.Server
	handler  *api.Server
	store    *store.Store
	clock    *fakeClock
	logs     *logCount
	boxToken string
	viewer   string // a viewer token
	staff    string // an admin token, not the bootstrap one
	mediaID  string
}

func newLimitedEnv(t *testing.T, limits api.Limits) *limitedEnv {
	t.Helper()
	ctx := context.Background()
	loc := hcm(t)
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ms, err := media.Open(filepath.Join(dir, "media"), media.DefaultLimits, ingest.New(ingest.DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	e := &limitedEnv{store: st, clock: &fakeClock{t: now}, logs: &logCount{}}
	limits.Now = e.clock.Now
	e.handler = api.NewServer(api.Options{
		Site: "xa-an-binh", AdminToken: adminToken, BrokerURL: "tcp://10.0.0.1:1883", ServerURL: "http://10.0.0.1:8080",
		DefaultVolume: 80, Validity: 15 * time.Minute, Now: func() time.Time { return now }, Limits: limits,
	}, st, ms, &fakeBroadcaster{sched: scheduler.New(loc, 48*time.Hour)}, slog.New(e.logs))
	e.srv = httptest.NewServer(e.handler)
	t.Cleanup(e.srv.Close)

	e.boxToken = auth.NewToken()
	if err := st.AddDevice(ctx, store.Device{ID: "loa-1", Volume: 70, CreatedAt: now}, auth.Hash(e.boxToken)); err != nil {
		t.Fatal(err)
	}
	e.viewer = auth.NewToken()
	if _, err := st.AddToken(ctx, store.Token{Name: "dashboard", Role: string(auth.RoleViewer), CreatedAt: now}, auth.Hash(e.viewer)); err != nil {
		t.Fatal(err)
	}
	e.staff = auth.NewToken()
	if _, err := st.AddToken(ctx, store.Token{Name: "duty-officer", Role: string(auth.RoleAdmin), CreatedAt: now}, auth.Hash(e.staff)); err != nil {
		t.Fatal(err)
	}
	data := wav(8000, time.Second)
	sum := sha256.Sum256(data)
	e.mediaID = hex.EncodeToString(sum[:])
	if _, err := api.NewClient(e.srv.URL, adminToken).AddMedia(ctx, "tone.wav", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour) // every bucket full again
	return e
}

type answer struct {
	status     int
	retryAfter string
	body       api.ErrorResponse
}

// call makes one request; auth is "Bearer <token>", "box" (loa-1's HTTP
// Basic) or "".
func (e *limitedEnv) call(t *testing.T, method, path, auth string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case auth == "box":
		req.SetBasicAuth("loa-1", e.boxToken)
	case auth != "":
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &a.body); err != nil {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, path, resp.StatusCode, data)
		}
	}
	return a
}

// burst makes n calls and returns how many were answered 429.
func (e *limitedEnv) burst(t *testing.T, n int, method, path, auth string) int {
	t.Helper()
	refused := 0
	for range n {
		if e.call(t, method, path, auth, "").status == http.StatusTooManyRequests {
			refused++
		}
	}
	return refused
}

func TestRateLimitPerToken(t *testing.T) {
	e := newLimitedEnv(t, api.Limits{Staff: api.Rate{PerSec: 2, Burst: 5}, CAP: api.Rate{PerSec: 1, Burst: 2}})

	for i := range 5 {
		if a := e.call(t, "GET", "/v1/devices", e.staff, ""); a.status != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %+v", i+1, a.status, a.body)
		}
	}
	a := e.call(t, "GET", "/v1/devices", e.staff, "")
	if a.status != http.StatusTooManyRequests || a.retryAfter != "1" {
		t.Fatalf("after the burst: %d, Retry-After %q; want 429 and 1 (s)", a.status, a.retryAfter)
	}
	if a.body.Code != string(messages.RateLimited) || a.body.Error != messages.T(messages.RateLimited, 1) {
		t.Fatalf("429 body %+v", a.body)
	}
	if !strings.Contains(messages.T(messages.RateLimited, 1), "wait 1 s") {
		t.Fatalf("the message does not say how long to wait: %q", messages.T(messages.RateLimited, 1))
	}

	// Other clients are not held back: another token, a box fetching
	// media, a caller without a token (its address has its own bucket),
	// and the same token on the CAP route.
	if a := e.call(t, "GET", "/v1/status", e.viewer, ""); a.status != http.StatusOK {
		t.Errorf("another token: %d %+v", a.status, a.body)
	}
	if a := e.call(t, "GET", "/v1/media/"+e.mediaID, "box", ""); a.status != http.StatusOK {
		t.Errorf("a box fetching media: %d %+v", a.status, a.body)
	}
	if a := e.call(t, "GET", "/v1/devices", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("no token: %d %+v, want 401", a.status, a.body)
	}
	if a := e.call(t, "POST", "/v1/alerts/cap", e.staff, "<not-cap/>"); a.status != http.StatusBadRequest && a.status != http.StatusUnprocessableEntity {
		t.Errorf("CAP with the held-back token: %d %+v, want it judged (400/422), not refused", a.status, a.body)
	}
	if n := e.burst(t, 3, "POST", "/v1/alerts/cap", e.staff); n != 2 {
		t.Errorf("CAP: %d of 3 more refused, want 2 (burst 2)", n)
	}
	// Refused mutating requests are not written to the audit log: a flood
	// must not turn into database writes.
	if n := e.burst(t, 20, "POST", "/v1/announcements", e.staff); n != 20 {
		t.Fatalf("%d of 20 refused", n)
	}

	// The bootstrap admin token (on the controller's machine) is not held
	// back: `loa bench` registers a thousand boxes with it.
	if n := e.burst(t, 100, "GET", "/v1/devices", adminToken); n != 0 {
		t.Errorf("the bootstrap admin token was refused %d times", n)
	}

	// Half a second later one request is allowed again, not two.
	e.clock.Add(500 * time.Millisecond)
	if a := e.call(t, "GET", "/v1/devices", e.staff, ""); a.status != http.StatusOK {
		t.Fatalf("after the refill: %d %+v", a.status, a.body)
	}
	if a := e.call(t, "GET", "/v1/devices", e.staff, ""); a.status != http.StatusTooManyRequests {
		t.Fatalf("second after the refill: %d, want 429", a.status)
	}

	e.clock.Add(time.Hour)
	rows, err := api.NewClient(e.srv.URL, adminToken).AuditRequests(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if strings.Contains(r.Details, " 429 ") {
			t.Errorf("a refused request is in the audit log: %+v", r)
		}
	}
	// One line at the first refusal; the rest wait for the summary.
	if n := e.logs.count("refused a request over the rate limit"); n != 1 {
		t.Errorf("%d lines for the first refusal, want 1", n)
	}
}

func TestRateLimitWithoutCredentials(t *testing.T) {
	e := newLimitedEnv(t, api.Limits{Unauthenticated: api.Rate{PerSec: 1, Burst: 10}, LogEvery: time.Hour})
	refused := 0
	for i := range 200 {
		tok := fmt.Sprintf("guess-%d", i)
		if i%2 == 0 {
			tok = ""
		}
		switch a := e.call(t, "GET", "/v1/status", tok, ""); a.status {
		case http.StatusTooManyRequests:
			refused++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("request %d: %d %+v", i, a.status, a.body)
		}
	}
	if refused != 190 {
		t.Fatalf("%d of 200 refused, want 190 (burst 10)", refused)
	}
	// Valid credentials from the same address are their own client.
	if a := e.call(t, "GET", "/v1/status", adminToken, ""); a.status != http.StatusOK {
		t.Fatalf("admin from the same address: %d %+v", a.status, a.body)
	}
	if a := e.call(t, "GET", "/v1/media/"+e.mediaID, "box", ""); a.status != http.StatusOK {
		t.Fatalf("box from the same address: %d %+v", a.status, a.body)
	}
	// A box with a wrong password is an unknown caller.
	req := httptest.NewRequest("GET", "/v1/media/"+e.mediaID, nil)
	req.SetBasicAuth("loa-1", "wrong")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req) // httptest's address, 192.0.2.1: a fresh bucket
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("box with a wrong password: %d", rec.Code)
	}
	if n := e.logs.count("refused a request over the rate limit"); n != 1 {
		t.Errorf("%d lines for 190 refusals, want 1 (the rest in the summary)", n)
	}
	if n := e.logs.count("request failed"); n != 0 {
		t.Errorf("%d request failures logged", n)
	}
}

func TestRateLimitBoxesDownloadTogether(t *testing.T) {
	e := newLimitedEnv(t, api.Limits{})
	ctx := context.Background()
	// A commune's boxes fetch the new item's file at once, all from one
	// carrier address: each box has its own bucket.
	tokens := map[string]string{}
	for i := range 50 {
		id := fmt.Sprintf("box-%02d", i)
		tokens[id] = auth.NewToken()
		if err := e.store.AddDevice(ctx, store.Device{ID: id, Volume: 70}, auth.Hash(tokens[id])); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 3*len(tokens))
	for id, tok := range tokens {
		wg.Go(func() {
			for range 3 { // the file, and two resumes after a cut
				req, _ := http.NewRequest("GET", e.srv.URL+"/v1/media/"+e.mediaID, nil)
				req.SetBasicAuth(id, tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a box got %d", s)
		}
	}
}

func TestSlowBodyIsCutOff(t *testing.T) {
	e := newLimitedEnv(t, api.Limits{BodyTimeout: time.Second})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers promise a body that never comes.
	fmt.Fprintf(conn, "POST /v1/announcements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"text\":", adminToken)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // far more than the limit: the server must act first
	data, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server waited for the body without end")
	}
	if !bytes.HasPrefix(data, []byte("HTTP/1.1 400")) {
		t.Fatalf("answer %q, want a 400 once the body timed out", data)
	}
}

func TestLimitsFromYAML(t *testing.T) {
	l := api.DefaultLimits()
	dec := yaml.NewDecoder(strings.NewReader("staff: {per_sec: 5}\nbody_timeout: 30s\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		t.Fatal(err)
	}
	want := api.DefaultLimits()
	want.Staff.PerSec, want.BodyTimeout = 5, 30*time.Second
	if l.Staff != want.Staff || l.BodyTimeout != want.BodyTimeout || l.Boxes != want.Boxes || l.MaxClients != want.MaxClients {
		t.Fatalf("limits %+v, want %+v", l, want)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
}
