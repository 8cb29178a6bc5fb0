package console_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
)

// site is a real controller (SQLite, embedded broker, API and console) on
// loopback, run in the test's process.
type site struct {
	t     *testing.T
	base  string
	admin *api.Client
	token string // the admin token
	data  string // the controller's data folder
}

func openSite(t *testing.T) *site {
	t.Helper()
	cfg := controller.Defaults()
	cfg.Data = t.TempDir()
	cfg.HTTP, cfg.MQTT = "127.0.0.1:0", "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, nil))
	}
	c, err := controller.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	base := "http://" + c.HTTPAddr()
	return &site{t: t, base: base, admin: api.NewClient(base, c.AdminToken()), token: c.AdminToken(), data: cfg.Data}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// tokenFor makes a staff token with role.
func (s *site) tokenFor(name, role string) string {
	s.t.Helper()
	r, err := s.admin.AddToken(context.Background(), api.AddTokenRequest{Name: name, Role: role})
	if err != nil {
		s.t.Fatal(err)
	}
	return r.Secret
}

// person is someone using the console with a browser-like HTTP client:
// cookies kept, redirects not followed (the tests look at them).
type person struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (s *site) person() *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: s.t, base: s.base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs p in with token, as the sign-in form does; it returns the
// answer's status and where it sends.
func (p *person) signIn(token string) (int, string) {
	p.t.Helper()
	_, page, _ := p.get("/login")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		p.t.Fatalf("the sign-in page has no CSRF field:\n%s", page)
	}
	status, body, loc := p.postForm("/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/"}}, "")
	if status == http.StatusSeeOther {
		_, page, _ := p.get("/")
		if m := csrfRE.FindStringSubmatch(page); m != nil {
			p.csrf = m[1]
		}
		return status, loc
	}
	return status, body
}

func (p *person) get(path string) (int, string, string) {
	p.t.Helper()
	resp, err := p.hc.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// post sends a form with the session's CSRF token.
func (p *person) post(path string, form url.Values) (int, string, string) {
	p.t.Helper()
	form.Set("csrf", p.csrf)
	return p.postForm(path, form, "")
}

// postForm sends form as it is, with an Origin header if origin is set.
func (p *person) postForm(path string, form url.Values, origin string) (int, string, string) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// postFile sends a multipart form with the session's CSRF token and a file
// in field file (named name; an empty name is a file input left alone), as
// the upload and announce forms do.
func (p *person) postFile(path string, fields url.Values, file, name string, data []byte) (int, string, string) {
	p.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("csrf", p.csrf)
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, _ := mw.CreateFormFile(file, name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, p.base+path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

// sound makes a few seconds of tone with ffmpeg as a file of ext (wav,
// m4a, …); the test is skipped without ffmpeg.
func sound(t *testing.T, ext string, seconds string) []byte {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("no ffmpeg: apt-get install ffmpeg")
	}
	out := filepath.Join(t.TempDir(), "tone."+ext)
	cmd := exec.Command(ff, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "sine=frequency=440:duration="+seconds, "-ac", "1", "-ar", "44100", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
