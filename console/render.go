package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

//go:embed templates
var templateFS embed.FS

// view is what every page template gets: the person, the language, the
// emergency banner, and the page's own Data.
type view struct {
	Lang, Path, Title string
	Site, User, Role  string
	// CSRF goes into every form (and htmx's requests as X-CSRF-Token).
	CSRF string
	// Events is the page's live stream (/events?…); empty: none.
	Events   string
	Error    string
	Notice   string
	Operator bool // may announce, start and cancel emergencies
	Admin    bool
	// Emergencies are the active ones: the banner on every page.
	Emergencies []api.Announcement
	Data        any
	loc         *time.Location
}

// T is the text of key in the page's language (messages holds every
// string, Vietnamese and English).
func (v *view) T(key string, args ...any) string {
	return messages.In(v.Lang, messages.Key(key), args...)
}

// Time shows t in the commune's time zone, day first as Vietnam writes it.
func (v *view) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.location()).Format("02/01/2006 15:04:05")
}

// Clock shows t's time of day in the commune's time zone.
func (v *view) Clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(v.location()).Format("15:04")
}

func (v *view) location() *time.Location {
	if v.loc == nil {
		return time.Local
	}
	return v.loc
}

// Where names targets as staff say them (see targetWords).
func (v *view) Where(t store.Targets) string { return targetWords(v.Lang, t) }

// Status is a delivery's or a box's status in words.
func (v *view) Status(s string) string {
	if k := messages.Key("console.status." + s); messages.Has(v.Lang, k) || messages.Has("en", k) {
		return messages.In(v.Lang, k)
	}
	return s
}

// view starts the page data for q's person.
func (q *request) view(title string) *view {
	v := &view{Lang: q.lang, Path: q.r.URL.Path, Title: title, Site: q.sess.site, User: q.sess.name, Role: q.sess.role,
		CSRF: q.sess.csrf, Operator: q.can(auth.RoleOperator), Admin: q.can(auth.RoleAdmin)}
	if loc, err := time.LoadLocation(q.sess.timezone); err == nil {
		v.loc = loc
	}
	if em, err := q.api.Emergencies(q.r.Context()); err == nil {
		v.Emergencies = em
	}
	return v
}

// pages are the parsed templates: each page with the layout and the shared
// parts, so a page may also be rendered a part at a time (live updates).
type pages struct {
	byName map[string]*template.Template
}

func parsePages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"join": strings.Join,
		"has":  slices.Contains[[]string],
		"ms": func(ms int64) string {
			return (time.Duration(ms) * time.Millisecond).Round(100 * time.Millisecond).String()
		},
		"pct": func(n, of int) int {
			if of == 0 {
				return 0
			}
			return 100 * n / of
		},
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", f)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// render writes page name in its layout.
func (c *Console) render(w http.ResponseWriter, status int, name string, v *view) {
	var b bytes.Buffer
	if err := c.pages.execute(&b, name, "layout", v); err != nil {
		c.log.Error("console render", "page", name, "err", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// execute writes the part part of page name.
func (p *pages) execute(b *bytes.Buffer, name, part string, v *view) error {
	t := p.byName[name]
	if t == nil {
		return fmt.Errorf("no page %q", name)
	}
	return t.ExecuteTemplate(b, part, v)
}

// page renders page name for q with data.
func (c *Console) page(q *request, name, title string, data any) error {
	v := q.view(title)
	v.Data = data
	c.render(q.w, http.StatusOK, name, v)
	return nil
}
