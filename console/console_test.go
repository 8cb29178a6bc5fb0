package console_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
)

func TestSignIn(t *testing.T) {
	s := openSite(t)
	p := s.person()
	if status, _, loc := p.get("/"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
		t.Fatalf("GET / signed out: %d → %q; want a redirect to /login", status, loc)
	}
	if status, body := p.signIn("not-a-token"); status != http.StatusUnauthorized || !strings.Contains(body, `role="alert"`) {
		t.Fatalf("a wrong token: %d; want 401 with the reason shown\n%s", status, body)
	}
	if status, loc := p.signIn(s.token); status != http.StatusSeeOther || loc != "/" {
		t.Fatalf("sign-in: %d → %q; want a redirect to /", status, loc)
	}
	u, _ := url.Parse(s.base)
	for _, c := range p.hc.Jar.Cookies(u) {
		if c.Name == "loa_session" && c.Value == s.token {
			t.Fatal("the session cookie holds the token itself")
		}
	}
	status, page, _ := p.get("/")
	if status != http.StatusOK || !strings.Contains(page, "admin (admin)") {
		t.Fatalf("status page: %d\n%s", status, page)
	}
	if status, _, loc := p.post("/logout", url.Values{}); status != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("sign-out: %d → %q", status, loc)
	}
	if status, _, _ := p.get("/"); status != http.StatusSeeOther {
		t.Fatalf("after sign-out, GET / answered %d; want a redirect to sign in", status)
	}
}

func TestSessionCookie(t *testing.T) {
	s := openSite(t)
	p := s.person()
	_, page, _ := p.get("/login")
	m := csrfRE.FindStringSubmatch(page)
	req, _ := http.NewRequest(http.MethodPost, s.base+"/login", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {s.token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name != "loa_session" {
			continue
		}
		found = true
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Errorf("session cookie %+v; want HttpOnly, SameSite=Strict, Path=/", c)
		}
	}
	if !found {
		t.Fatal("no session cookie after sign-in")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

// TestForgedCSRF: a form with a wrong or missing token, or from another
// site, is refused and changes nothing.
func TestForgedCSRF(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	if _, err := s.admin.AddDevice(ctx, api.AddDeviceRequest{ID: "box-1", Groups: []string{"thon-1"}}); err != nil {
		t.Fatal(err)
	}
	p := s.person()
	p.signIn(s.token)
	form := url.Values{"target": {"all"}, "tone": {"siren"}, "repeat": {"1"}, "confirm": {"TẤT CẢ"}}
	for name, tc := range map[string]struct {
		csrf, origin string
	}{
		"forged":      {csrf: "AAAAforged", origin: ""},
		"missing":     {csrf: "", origin: ""},
		"other site":  {csrf: p.csrf, origin: "http://evil.example"},
		"login token": {csrf: "x", origin: s.base},
	} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("csrf", tc.csrf)
		status, body, _ := p.postForm("/emergency", f, tc.origin)
		if status != http.StatusForbidden || !strings.Contains(body, messages.In("vi", messages.ConsoleCSRF)) {
			t.Errorf("%s: %d; want 403 and the CSRF message", name, status)
		}
	}
	if em, err := s.admin.Emergencies(ctx); err != nil || len(em) != 0 {
		t.Fatalf("emergencies after forged forms: %+v, %v; want none", em, err)
	}
	// The same form with the session's token goes through.
	if status, body, loc := p.post("/emergency", form); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/announcements/") {
		t.Fatalf("the genuine form: %d → %q\n%s", status, loc, body)
	}
}

// TestViewer: a viewer sees no announce or emergency controls, and the
// server refuses the forms when posted by hand.
func TestViewer(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	if _, err := s.admin.AddDevice(ctx, api.AddDeviceRequest{ID: "box-1", Groups: []string{"thon-1"}}); err != nil {
		t.Fatal(err)
	}
	p := s.person()
	if status, _ := p.signIn(s.tokenFor("xa-viewer", "viewer")); status != http.StatusSeeOther {
		t.Fatalf("viewer sign-in: %d", status)
	}
	_, page, _ := p.get("/")
	for _, link := range []string{`href="/announce"`, `href="/emergency"`} {
		if strings.Contains(page, link) {
			t.Errorf("a viewer's page links %s", link)
		}
	}
	for _, path := range []string{"/emergency", "/announce"} {
		status, body, _ := p.post(path, url.Values{"target": {"all"}, "confirm": {"TẤT CẢ"}, "group": {"thon-1"}, "text": {"x"}})
		if status != http.StatusForbidden || !strings.Contains(body, "xa-viewer") {
			t.Errorf("viewer POST %s: %d; want 403 naming the token", path, status)
		}
	}
	if em, _ := s.admin.Emergencies(ctx); len(em) != 0 {
		t.Fatalf("a viewer started %+v", em)
	}
}

// TestEmergencyConfirmation: a wrong typed target sends nothing; the right
// one starts the emergency, the banner shows it, and Cancel ends it.
func TestEmergencyConfirmation(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	for _, d := range []api.AddDeviceRequest{{ID: "box-1", Groups: []string{"thon-1"}}, {ID: "box-2", Groups: []string{"thon-2"}}} {
		if _, err := s.admin.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	p := s.person()
	p.signIn(s.tokenFor("can-bo", "operator"))
	form := url.Values{"target": {"groups"}, "group": {"thon-1"}, "tone": {"flood"}, "repeat": {"2"}, "exercise": {"1"}}
	for _, typed := range []string{"", "thon-2", "TẤT CẢ", "thon"} {
		form.Set("confirm", typed)
		status, body, _ := p.post("/emergency", form)
		if status != http.StatusBadRequest || !strings.Contains(body, "thon-1") {
			t.Errorf("typed %q: %d; want 400 saying what to type", typed, status)
		}
	}
	if em, _ := s.admin.Emergencies(ctx); len(em) != 0 {
		t.Fatalf("a wrong confirmation sent %+v", em)
	}
	form.Set("confirm", " Thon-1 ")
	status, _, loc := p.post("/emergency", form)
	if status != http.StatusSeeOther {
		t.Fatalf("confirmed emergency: %d", status)
	}
	em, err := s.admin.Emergencies(ctx)
	if err != nil || len(em) != 1 || !em[0].Exercise || em[0].Tone != "flood" || em[0].Targets.String() != "group:thon-1" {
		t.Fatalf("emergencies %+v, %v; want one flood exercise on thon-1", em, err)
	}
	id := strings.TrimPrefix(loc, "/announcements/")
	if id != em[0].ID {
		t.Errorf("sent to %q; want the emergency's page %s", loc, em[0].ID)
	}
	_, page, _ := p.get("/")
	if !strings.Contains(page, `class="banner"`) || !strings.Contains(page, `id="cancel-`+id+`"`) {
		t.Fatalf("no emergency banner with Cancel on the status page:\n%s", page)
	}
	if status, _, _ := p.post("/emergency/cancel", url.Values{"id": {id}}); status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", status)
	}
	if em, _ := s.admin.Emergencies(ctx); len(em) != 0 {
		t.Fatalf("still active after Cancel: %+v", em)
	}
	if _, page, _ := p.get("/"); strings.Contains(page, `class="banner"`) {
		t.Error("the banner stays after Cancel")
	}
}

// TestStatusFilters: the village and state filters, and the map of boxes
// with coordinates drawn without tiles.
func TestStatusFilters(t *testing.T) {
	s := openSite(t)
	ctx := context.Background()
	lat, lon := 22.33, 103.84
	for _, d := range []api.AddDeviceRequest{
		{ID: "box-1", Groups: []string{"thon-1"}, Lat: &lat, Lon: &lon},
		{ID: "box-2", Groups: []string{"thon-2"}},
	} {
		if _, err := s.admin.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	p := s.person()
	p.signIn(s.tokenFor("xem", "viewer"))
	_, page, _ := p.get("/?village=thon-1")
	if !strings.Contains(page, `id="box-box-1"`) || strings.Contains(page, `id="box-box-2"`) {
		t.Errorf("village filter thon-1 shows the wrong boxes")
	}
	if !strings.Contains(page, `id="pin-box-1"`) || strings.Contains(page, "<image") {
		t.Errorf("the map: want box-1's pin on a plain background")
	}
	_, page, _ = p.get("/?state=online")
	if strings.Contains(page, `id="box-box-1"`) {
		t.Errorf("state filter online shows an offline box")
	}
}

// TestConsoleKeys: every string a template shows is in both languages.
func TestConsoleKeys(t *testing.T) {
	key := regexp.MustCompile(`\.T "([^"]+)"`)
	err := fs.WalkDir(os.DirFS("templates"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("templates/" + path)
		if err != nil {
			return err
		}
		for _, m := range key.FindAllStringSubmatch(string(b), -1) {
			for _, lang := range []string{"en", "vi"} {
				if !messages.Has(lang, messages.Key(m[1])) {
					t.Errorf("%s: %q has no %s text", path, m[1], lang)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys the templates make with printf.
	var made []string
	for _, tone := range []string{"siren", "flood", "storm", "fire", "other"} {
		made = append(made, "console.tone."+tone)
	}
	for _, state := range []string{"all", "online", "offline", "playing", "problem"} {
		made = append(made, "console.filter."+state)
	}
	for _, k := range made {
		for _, lang := range []string{"en", "vi"} {
			if !messages.Has(lang, messages.Key(k)) {
				t.Errorf("%q has no %s text", k, lang)
			}
		}
	}
}
