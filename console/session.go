package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
)

// Cookie names. The session cookie holds only a random id: the token stays
// on the controller.
const (
	sessionCookie = "loa_session"
	loginCookie   = "loa_login" // the sign-in form's CSRF secret
	langCookie    = "loa_lang"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// maxSessions bounds the sign-ins kept: only a valid token makes one, and
// past the bound the oldest goes.
const maxSessions = 10000

// session is one signed-in person.
type session struct {
	id, csrf   string
	token      string
	name, role string
	site       string
	timezone   string
	used       time.Time
}

// sessions are kept in memory: a controller restart signs everyone out,
// which costs a staff member one sign-in and keeps no token on disk twice.
type sessions struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]*session{}}
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) add(token string, site api.SiteInfo) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= maxSessions {
		var oldest *session
		for _, x := range s.m {
			if oldest == nil || x.used.Before(oldest.used) {
				oldest = x
			}
		}
		delete(s.m, oldest.id)
	}
	x := &session{id: randomID(), csrf: randomID(), token: token, name: site.Token, role: site.Role, site: site.Site, timezone: site.Timezone, used: now}
	s.m[x.id] = x
	return x
}

// get finds the session of id, if it is still fresh, and marks it used.
func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	if x == nil {
		return nil
	}
	now := s.now()
	if now.Sub(x.used) > s.ttl {
		delete(s.m, id)
		return nil
	}
	x.used = now
	c := *x
	return &c
}

// alive says whether the session of id is still there, without counting
// this as use: a page left open does not keep its sign-in forever.
func (s *sessions) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	return x != nil && s.now().Sub(x.used) <= s.ttl
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// cookie is a cookie the page's scripts cannot read, sent only to this
// site's own requests.
func (c *Console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: c.opts.Secure, SameSite: http.SameSiteStrictMode}
}

// lang is the language the person chose, Vietnamese unless English.
func lang(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil && ck.Value == "en" {
		return "en"
	}
	return "vi"
}

func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if l != "en" {
		l = "vi"
	}
	http.SetCookie(w, c.cookie(langCookie, l, 365*24*3600))
	http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// localPath is next if it is a path on this site, else the status page:
// a sign-in link cannot send anyone elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	secret := randomID()
	http.SetCookie(w, c.cookie(loginCookie, secret, 3600))
	v := &view{Lang: lang(r), Path: r.URL.Path, CSRF: secret, Error: problem, Title: "console.login.title",
		Data: map[string]string{"Next": localPath(r.FormValue("next"))}}
	c.render(w, status, "login", v)
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	l := lang(r)
	if !c.sameOrigin(r) || !formSecretMatches(r, loginCookie) {
		c.renderLogin(w, r, http.StatusForbidden, messages.In(l, messages.ConsoleCSRF))
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		c.renderLogin(w, r, http.StatusUnauthorized, messages.In(l, messages.ConsoleNoToken))
		return
	}
	site, err := api.NewLocalClient(c.opts.API, token, r.RemoteAddr, l).Site(r.Context())
	if err != nil {
		status := http.StatusUnauthorized
		var ae *api.APIError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		c.renderLogin(w, r, status, err.Error())
		return
	}
	if _, err := auth.ParseRole(site.Role); err != nil || site.Role == string(auth.RoleTrigger) {
		// A trigger token posts alerts from a machine; people sign in as
		// viewer, operator or admin.
		c.renderLogin(w, r, http.StatusForbidden, messages.In(l, messages.ConsoleTriggerToken, site.Token))
		return
	}
	x := c.sessions.add(token, site)
	http.SetCookie(w, c.cookie(sessionCookie, x.id, int(c.opts.SessionTTL.Seconds())))
	http.SetCookie(w, c.cookie(loginCookie, "", -1))
	c.log.Info("console sign-in", "token", site.Token, "role", site.Role, "from", r.RemoteAddr)
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
}

func (c *Console) signOut(q *request) error {
	c.sessions.remove(q.sess.id)
	http.SetCookie(q.w, c.cookie(sessionCookie, "", -1))
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
	return nil
}

// formSecretMatches says whether the form's csrf field equals the cookie's
// value (the sign-in form, before there is a session).
func formSecretMatches(r *http.Request, cookie string) bool {
	ck, err := r.Cookie(cookie)
	return err == nil && ck.Value != "" && equal(ck.Value, r.PostFormValue(csrfField))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// sameOrigin refuses a request a browser says came from another site
// (Sec-Fetch-Site, else Origin): a second line behind the CSRF token.
func (c *Console) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

// request is one signed-in person's request to a page.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	sess *session
	api  *api.Client
	lang string
}

// route registers h for pattern, for people whose role allows need. A
// page without a session sends to sign-in; a form without the session's
// CSRF token is refused before anything is done.
func (c *Console) route(pattern string, need auth.Role, h func(*request) error) {
	c.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		l := lang(r)
		var x *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			x = c.sessions.get(ck.Value)
		}
		if x == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/events" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.fail(w, r, l, http.StatusUnauthorized, messages.In(l, messages.ConsoleSignedOut))
			return
		}
		if r.Method != http.MethodGet {
			// An upload larger than the media limit is cut off here, before
			// it fills the disk; small ones stay in memory.
			r.Body = http.MaxBytesReader(w, r.Body, c.opts.MaxUpload)
			if err := r.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
				status := http.StatusBadRequest
				msg := messages.In(l, messages.BadRequest, err.Error())
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					status, msg = http.StatusRequestEntityTooLarge, messages.In(l, messages.MediaTooBig, fmt.Sprintf("> %d MB", c.opts.MaxUpload>>20))
				}
				c.fail(w, r, l, status, msg)
				return
			}
			if r.MultipartForm != nil {
				defer r.MultipartForm.RemoveAll()
			}
			sent := r.Header.Get(csrfHeader)
			if sent == "" {
				sent = r.PostFormValue(csrfField)
			}
			if !c.sameOrigin(r) || !equal(sent, x.csrf) {
				c.log.Warn("console: refused a form without its CSRF token", "path", r.URL.Path, "token", x.name, "from", r.RemoteAddr)
				c.fail(w, r, l, http.StatusForbidden, messages.In(l, messages.ConsoleCSRF))
				return
			}
		}
		role := auth.Role(x.role)
		if !role.Allows(need) {
			c.fail(w, r, l, http.StatusForbidden, messages.In(l, messages.Forbidden, x.name, role, need, need))
			return
		}
		q := &request{w: w, r: r, sess: x, lang: l, api: api.NewLocalClient(c.opts.API, x.token, r.RemoteAddr, l)}
		err := h(q)
		var ae *api.APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
			// The token was revoked or expired since sign-in.
			c.sessions.remove(x.id)
			c.renderLogin(w, r, http.StatusUnauthorized, ae.Message)
		case errors.As(err, &ae):
			c.fail(w, r, l, ae.Status, ae.Message)
		default:
			c.log.Error("console page failed", "path", r.URL.Path, "err", err)
			c.fail(w, r, l, http.StatusInternalServerError, messages.In(l, messages.Internal, err.Error()))
		}
	})
}

// fail answers with a page that says what went wrong and where to go.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, l string, status int, msg string) {
	c.render(w, status, "error", &view{Lang: l, Path: r.URL.Path, Error: msg, Title: "console.error.title"})
}

// can says whether the signed-in person's role allows need: pages show
// only the buttons that will work.
func (q *request) can(need auth.Role) bool { return auth.Role(q.sess.role).Allows(need) }
