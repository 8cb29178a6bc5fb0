package console

import (
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
)

//go:embed static
var staticFS embed.FS

// Options configure the console.
type Options struct {
	// API is the controller's API handler, which the console calls in
	// process with the signed-in person's token.
	API http.Handler
	// Secure marks the cookies Secure: the controller serves HTTPS.
	Secure bool
	// Tiles is the map's tile source, a URL with {z}, {x} and {y} (an
	// OpenStreetMap-style server the office can reach). Empty: the map shows
	// the boxes on a plain background, with no request outside Loa.
	Tiles string
	// MaxUpload bounds a form's body (a recording's upload, with room for
	// the form's fields); 0: 51 MB.
	MaxUpload int64
	// SessionTTL is how long a sign-in lasts without use; 0: 12 hours.
	SessionTTL time.Duration
	// Every is how often live pages look for changes; 0: a second.
	Every time.Duration
	Now   func() time.Time
}

// Console serves the web console.
type Console struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	pages    *pages
	csp      string
}

// New makes the console.
func New(opts Options, log *slog.Logger) (*Console, error) {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = 51 << 20
	}
	if opts.Every <= 0 {
		opts.Every = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	imgSrc := "'self' data:"
	if opts.Tiles != "" {
		if err := ValidTiles(opts.Tiles); err != nil {
			return nil, err
		}
		u, _ := url.Parse(opts.Tiles)
		imgSrc += " " + u.Scheme + "://" + u.Host
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{opts: opts, log: log, mux: http.NewServeMux(), sessions: newSessions(opts.SessionTTL, opts.Now), pages: p,
		// Scripts and styles come from the binary only; a map tile may come
		// from the configured tile server.
		csp: "default-src 'self'; script-src 'self'; style-src 'self'; img-src " + imgSrc +
			"; media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.signIn)
	c.mux.HandleFunc("GET /lang/{lang}", c.setLang)
	c.route("POST /logout", auth.RoleViewer, c.signOut)
	c.route("GET /{$}", auth.RoleViewer, c.statusPage)
	c.route("GET /events", auth.RoleViewer, c.events)
	c.route("GET /emergency", auth.RoleOperator, c.emergencyPage)
	c.route("POST /emergency", auth.RoleOperator, c.startEmergency)
	c.route("POST /emergency/cancel", auth.RoleOperator, c.cancelEmergency)
	c.routeAnnounce() // announce.go
	c.routeRecords()  // records.go: schedules, media, report, audit
	return c, nil
}

// ValidTiles checks a map tile source: an http(s) URL with {z}, {x} and {y}.
func ValidTiles(tiles string) error {
	u, err := url.Parse(tiles)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		!strings.Contains(tiles, "{z}") || !strings.Contains(tiles, "{x}") || !strings.Contains(tiles, "{y}") {
		return fmt.Errorf("console.tiles %q must be an http(s) URL with {z}, {x} and {y}, like https://tile.openstreetmap.org/{z}/{x}/{y}.png", tiles)
	}
	return nil
}

// ServeHTTP serves the console's pages with headers that keep them from
// being framed, sniffed or cached.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", c.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// Handler serves the console and, under /v1/, /metrics and /healthz, the API.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api.IsAPIPath(r.URL.Path) {
			c.opts.API.ServeHTTP(w, r)
			return
		}
		c.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}
