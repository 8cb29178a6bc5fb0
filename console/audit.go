package console

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// maxAuditRows bounds the entries the audit page shows (newest first).
const maxAuditRows = 1000

// auditKinds are the audit page's kind filter: everything, what was
// started and cancelled (emergencies, alerts, sessions, refused messages),
// or every change made through the API (who sent which request).
var auditKinds = []string{"all", "actions", "requests"}

// auditData is the audit page.
type auditData struct {
	Span         dateSpan
	Kind         string
	Kinds        []string
	Rows         []auditRow
	Shown, Total int
}

// auditRow is one entry as the page shows it.
type auditRow struct {
	store.AuditEntry
	What    string // the action in words
	Refused bool   // a request the API refused
}

// auditRequests name the API's changes in words, by method and path
// ({} is any one segment); the console's own actions are among them.
var auditRequests = []struct{ method, path, key string }{
	{"POST", "/v1/announcements", "announce"},
	{"DELETE", "/v1/announcements/{}", "announce.cancel"},
	{"POST", "/v1/schedules", "schedule.add"},
	{"POST", "/v1/schedules/{}/pause", "schedule.pause"},
	{"POST", "/v1/schedules/{}/resume", "schedule.resume"},
	{"DELETE", "/v1/schedules/{}", "schedule.delete"},
	{"POST", "/v1/media", "media.add"},
	{"DELETE", "/v1/media/{}", "media.delete"},
	{"POST", "/v1/emergencies", "emergency"},
	{"POST", "/v1/emergencies/cancel", "emergency.cancel"},
	{"POST", "/v1/devices", "device.add"},
	{"DELETE", "/v1/devices/{}", "device.delete"},
	{"PUT", "/v1/devices/{}/volume", "device.volume"},
	{"PUT", "/v1/devices/{}/location", "device.location"},
	{"POST", "/v1/groups/{}/members", "group.add"},
	{"POST", "/v1/groups/{}/remove", "group.remove"},
	{"POST", "/v1/tokens", "token.add"},
	{"DELETE", "/v1/tokens/{}", "token.revoke"},
	{"POST", "/v1/sessions", "session"},
	{"DELETE", "/v1/sessions/{}", "session.stop"},
}

// auditRowOf says what an entry was: a known action or request in words,
// else its action as the log has it.
func auditRowOf(lang string, e store.AuditEntry) auditRow {
	r := auditRow{AuditEntry: e, What: e.Action}
	if k := messages.Key("console.audit.action." + e.Action); messages.Has(lang, k) {
		r.What = messages.In(lang, k)
	}
	if e.Action != store.AuditRequest {
		return r
	}
	// Details: "POST /v1/schedules/s-1/pause 200 role=operator".
	f := strings.Fields(e.Details)
	if len(f) < 3 {
		return r
	}
	if status, err := strconv.Atoi(f[2]); err == nil && status >= 400 {
		r.Refused = true
	}
	// The rule a request changed is in its path.
	if seg := strings.Split(f[1], "/"); r.Rule == "" && len(seg) > 3 && (seg[2] == "schedules" || seg[2] == "announcements") {
		r.Rule = seg[3]
	}
	for _, x := range auditRequests {
		if x.method == f[0] && pathMatches(x.path, f[1]) {
			r.What = messages.In(lang, messages.Key("console.audit.request."+x.key))
			break
		}
	}
	return r
}

// pathMatches says whether path has pattern's segments, {} matching any.
func pathMatches(pattern, path string) bool {
	a, b := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != "{}" && a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *Console) auditPage(q *request) error {
	ctx := q.r.Context()
	loc := siteZone(q)
	span, problem := readSpan(q, loc, c.opts.Now(), 7)
	d := &auditData{Span: span, Kind: q.r.FormValue("kind"), Kinds: auditKinds}
	if d.Kind != "actions" && d.Kind != "requests" {
		d.Kind = "all"
	}
	var entries []store.AuditEntry
	if d.Kind != "requests" {
		list, err := q.api.Audit(ctx, span.apiSince(), span.apiUntil())
		if err != nil {
			return err
		}
		entries = append(entries, list...)
	}
	if d.Kind != "actions" {
		list, err := q.api.AuditRequests(ctx, span.apiSince(), span.apiUntil())
		if err != nil {
			return err
		}
		entries = append(entries, list...)
	}
	sort.Slice(entries, func(i, j int) bool {
		if !entries[i].At.Equal(entries[j].At) {
			return entries[i].At.After(entries[j].At)
		}
		return entries[i].ID > entries[j].ID
	})
	d.Total = len(entries)
	if len(entries) > maxAuditRows {
		entries = entries[:maxAuditRows]
	}
	d.Shown = len(entries)
	for _, e := range entries {
		d.Rows = append(d.Rows, auditRowOf(q.lang, e))
	}
	v := q.view("console.audit.title")
	v.Error = problem
	v.Data = d
	c.render(q.w, http.StatusOK, "audit", v)
	return nil
}
