package console

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// routeAnnounce registers the announce pages: the form, and one
// announcement's page that follows each box's answer.
func (c *Console) routeAnnounce() {
	c.route("GET /announce", auth.RoleOperator, c.announcePage)
	c.route("POST /announce", auth.RoleOperator, c.announce)
	c.route("GET /announcements/{id}", auth.RoleViewer, c.announcementPage)
	c.route("POST /announcements/{id}/cancel", auth.RoleOperator, c.cancelAnnouncement)
}

// When an announcement plays: the form's "when" values.
const (
	whenNow    = "now"
	whenAt     = "at"
	whenRepeat = "repeat"
)

// cronPreset is a repeating rule offered in plain words.
type cronPreset struct {
	Spec string // five cron fields, read in the commune's time zone
	Key  string // its words (messages)
}

// cronPresets are the rules a commune uses most; anything else goes in the
// cron field.
var cronPresets = []cronPreset{
	{"0 6 * * *", "console.announce.preset.daily_6"},
	{"0 17 * * *", "console.announce.preset.daily_17"},
	{"0 6 * * 1-5", "console.announce.preset.weekdays_6"},
	{"0 7 * * 1", "console.announce.preset.monday_7"},
	{"0 6 1 * *", "console.announce.preset.monthly_6"},
}

// announcePriorities are the priorities the form offers; an emergency has
// its own page, with its typed confirmation.
var announcePriorities = []string{protocol.Normal.String(), protocol.High.String()}

// maxUploadName bounds the name a file upload gives its media.
const maxUploadName = 200

// announceForm is the announce page: the choices, and what was chosen
// (kept when the form comes back with a problem).
type announceForm struct {
	Villages   []string
	Boxes      []store.Device
	Media      []api.MediaInfo
	Presets    []cronPreset
	Priorities []string
	// Zone is the commune's time zone, in which the date-time and the
	// cron rule are read.
	Zone string

	All             bool
	Groups, Devices []string
	MediaID, Text   string
	When, At        string
	Preset, Cron    string
	Name, Priority  string
	Repeat          int
}

func (c *Console) announcePage(q *request) error {
	f, err := c.announceChoices(q)
	if err != nil {
		return err
	}
	// Links from elsewhere (a recording in the library, a village) may
	// fill in the form.
	f.MediaID = q.r.FormValue("media")
	f.Groups = q.r.Form["group"]
	f.Devices = q.r.Form["device"]
	f.When, f.Priority, f.Repeat = whenNow, protocol.Normal.String(), 1
	return c.announceAgain(q, f, http.StatusOK, "")
}

// announceChoices reads what the form offers through the API.
func (c *Console) announceChoices(q *request) (*announceForm, error) {
	ctx := q.r.Context()
	groups, err := q.api.Groups(ctx)
	if err != nil {
		return nil, err
	}
	boxes, err := q.api.Devices(ctx)
	if err != nil {
		return nil, err
	}
	media, err := q.api.Media(ctx)
	if err != nil {
		return nil, err
	}
	f := &announceForm{Boxes: boxes, Media: media, Presets: cronPresets, Priorities: announcePriorities}
	for _, g := range groups {
		f.Villages = append(f.Villages, g.Name)
	}
	f.Zone = communeZone(q).String()
	return f, nil
}

// announceAgain draws the form with f's choices and, if msg is set, what
// is wrong with them.
func (c *Console) announceAgain(q *request, f *announceForm, status int, msg string) error {
	v := q.view("console.announce.title")
	v.Data, v.Error = f, msg
	// The page follows the emergency banner: nobody should announce the
	// market into a flood warning without seeing it.
	v.Events = "/events?view=announce"
	c.render(q.w, status, "announce", v)
	return nil
}

// communeZone is the commune's time zone, as q's session knows it.
func communeZone(q *request) *time.Location {
	if loc, err := time.LoadLocation(q.sess.timezone); err == nil && q.sess.timezone != "" {
		return loc
	}
	return time.Local
}

// announce sends what the form says: it uploads the file (chosen or
// recorded) if there is one, then asks the API for the announcement, or
// the schedule if it repeats, and shows it. A problem, the API's or the
// form's, brings the form back with what was typed; an uploaded file is
// then chosen from the library, so it need not be sent again.
func (c *Console) announce(q *request) error {
	f, err := c.announceChoices(q)
	if err != nil {
		return err
	}
	r := q.r
	form := r.PostForm
	f.All = form.Get("all") != ""
	f.Groups, f.Devices = form["group"], form["device"]
	f.MediaID, f.Text = strings.TrimSpace(form.Get("media")), strings.TrimSpace(form.Get("text"))
	f.When, f.At = form.Get("when"), strings.TrimSpace(form.Get("at"))
	f.Preset, f.Cron = form.Get("preset"), strings.TrimSpace(form.Get("cron"))
	f.Name, f.Priority = strings.TrimSpace(form.Get("name")), form.Get("priority")
	f.Repeat = 1
	if s := strings.TrimSpace(form.Get("repeat")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > protocol.MaxRepeat {
			return c.announceAgain(q, f, http.StatusBadRequest, messages.In(q.lang, messages.BadRepeat, protocol.MaxRepeat))
		}
		f.Repeat = n
	}
	if f.Priority == "" {
		f.Priority = protocol.Normal.String()
	}
	if !slices.Contains(announcePriorities, f.Priority) {
		return c.announceAgain(q, f, http.StatusBadRequest, messages.In(q.lang, messages.ConsoleAnnouncePriority, f.Priority))
	}
	if f.When == "" {
		f.When = whenNow
	}

	file, header, err := r.FormFile("file")
	switch {
	case errors.Is(err, http.ErrMissingFile):
		file = nil
	case err != nil:
		return c.announceAgain(q, f, http.StatusBadRequest, messages.In(q.lang, messages.BadRequest, err.Error()))
	default:
		defer file.Close()
		if header.Size == 0 {
			file = nil
		}
	}

	targets := store.Targets{All: f.All}
	if !f.All { // the whole commune already has every village and box
		targets.Groups, targets.Devices = f.Groups, f.Devices
	}
	req := api.AnnounceRequest{Targets: targets, Media: f.MediaID, Text: f.Text, Name: f.Name, Priority: f.Priority, Repeat: f.Repeat}
	problem := func(key messages.Key, args ...any) error {
		return c.announceAgain(q, f, http.StatusBadRequest, messages.In(q.lang, key, args...))
	}
	switch {
	case !targets.All && len(targets.Groups) == 0 && len(targets.Devices) == 0:
		return problem(messages.ConsoleAnnounceNoTarget)
	case file != nil && f.MediaID != "":
		return problem(messages.ConsoleAnnounceFileAndMedia)
	case file == nil && f.MediaID == "" && f.Text == "":
		return problem(messages.ConsoleAnnounceNoSound)
	}
	switch f.When {
	case whenNow:
	case whenAt:
		if f.At == "" {
			return problem(messages.ConsoleAnnounceNoTime)
		}
		req.At = atInZone(f.At, communeZone(q))
	case whenRepeat:
		if f.Cron == "" {
			f.Cron = f.Preset
		}
		if f.Cron == "" {
			return problem(messages.ConsoleAnnounceNoRule)
		}
		req.Cron = f.Cron
	default:
		return problem(messages.ConsoleAnnounceNoWhen)
	}

	// The API's refusals of what was asked come back on the form; an
	// outage or a revoked token goes the usual way.
	again := func(err error) error {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
			return c.announceAgain(q, f, ae.Status, ae.Message)
		}
		return err
	}
	ctx := r.Context()
	if file != nil {
		m, err := q.api.AddMedia(ctx, uploadName(header), file)
		if err != nil {
			return again(err)
		}
		f.MediaID, req.Media = m.ID, m.ID
		if !slices.ContainsFunc(f.Media, func(x api.MediaInfo) bool { return x.ID == m.ID }) {
			f.Media = append(f.Media, m)
		}
	}
	if f.When == whenRepeat {
		a, err := q.api.AddSchedule(ctx, req)
		if err != nil {
			return again(err)
		}
		c.log.Info("console: schedule added", "id", a.ID, "token", q.sess.name, "cron", a.Cron, "targets", targets.String())
		// The schedules page names the rule done with, as after a pause.
		http.Redirect(q.w, r, "/schedules?done=added&rule="+url.QueryEscape(a.ID), http.StatusSeeOther)
		return nil
	}
	a, err := q.api.Announce(ctx, req)
	if err != nil {
		return again(err)
	}
	c.log.Info("console: announcement sent", "id", a.ID, "token", q.sess.name, "targets", targets.String(), "start", a.Start)
	http.Redirect(q.w, r, "/announcements/"+url.PathEscape(a.ID), http.StatusSeeOther)
	return nil
}

// atInZone is the picker's date-time (2006-01-02T15:04) as a time in the
// commune's zone, in RFC 3339 so the API reads the same instant; anything
// else goes to the API as typed, which reads it or says why not.
func atInZone(at string, loc *time.Location) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, at, loc); err == nil {
			return t.Format(time.RFC3339)
		}
	}
	return at
}

// uploadName is the name an uploaded file keeps in the library: its base
// name, bounded; a recording from the browser without one is "recording".
func uploadName(h *multipart.FileHeader) string {
	name := strings.TrimSpace(path.Base(strings.ReplaceAll(h.Filename, `\`, "/")))
	if name == "" || name == "." || name == "/" {
		name = "recording"
	}
	if len(name) > maxUploadName {
		name = strings.ToValidUTF8(name[:maxUploadName], "")
	}
	return name
}

// announcementData is one announcement's page.
type announcementData struct {
	A api.Announcement
	// MediaName and MediaLength describe its recording, if it has one in
	// the library.
	MediaName   string
	MediaLength int64
	Rows        []deliveryRow
	Counts      []statusCount
	Total       int
	Final       int
	Done        bool
	// Emergency: cancelled from the emergency page's way (with its
	// all-clear), not as an announcement.
	Emergency bool
	CanCancel bool
}

// deliveryRow is one box's answer as the page shows it.
type deliveryRow struct {
	store.Delivery
	RowID  string // the row's element id, delivery-<box>
	Final  bool
	Reason string // in the page's language
}

// statusCount is how many boxes are in one status.
type statusCount struct {
	Status string
	N      int
}

// statusOrder is the order of the summary's counts: done first, then the
// ones still on their way.
var statusOrder = []string{"played", "failed", "missed", "expired", "cancelled", "skipped", "interrupted",
	"playing", "ready", "received", "preempted", store.StatusPending}

// final says whether a delivery's status is its last: no further answer
// is expected from the box.
func final(status string) bool {
	switch status {
	case "skipped", "interrupted":
		return true
	}
	return protocol.EventType(status).Final()
}

func (c *Console) announcementPage(q *request) error {
	d, err := c.announcementData(q, q.r.PathValue("id"))
	if err != nil {
		return err
	}
	if d.A.Media != "" {
		if media, err := q.api.Media(q.r.Context()); err == nil {
			for _, m := range media {
				if m.ID == d.A.Media {
					d.MediaName, d.MediaLength = m.Name, m.DurationMS
				}
			}
		}
	}
	v := q.view("console.announcement.title")
	v.Data = d
	if q.r.FormValue("cancelled") != "" {
		v.Notice = messages.In(q.lang, messages.ConsoleAnnouncementCancelled, d.A.ID)
	}
	v.Events = "/events?view=announcement&id=" + url.QueryEscape(d.A.ID)
	c.render(q.w, http.StatusOK, "announcement", v)
	return nil
}

// announcementData reads announcement id and its boxes' answers through
// the API: every box it targets has a row, pending until it answers.
func (c *Console) announcementData(q *request, id string) (*announcementData, error) {
	a, err := q.api.Announcement(q.r.Context(), id)
	if err != nil {
		return nil, err
	}
	d := &announcementData{A: a, Emergency: a.Priority == protocol.Emergency.String()}
	seen := map[string]int{}
	for _, x := range a.Deliveries {
		d.Rows = append(d.Rows, c.deliveryRow(q, x, seen))
	}
	for _, box := range a.Devices {
		if seen[box] == 0 {
			d.Rows = append(d.Rows, c.deliveryRow(q, store.Delivery{Announcement: a.ID, Device: box, Status: store.StatusPending, ScheduledAt: a.Start}, seen))
		}
	}
	counts := map[string]int{}
	for _, r := range d.Rows {
		counts[r.Status]++
		if r.Final {
			d.Final++
		}
	}
	d.Total = len(d.Rows)
	for _, s := range statusOrder {
		if counts[s] > 0 {
			d.Counts = append(d.Counts, statusCount{s, counts[s]})
			delete(counts, s)
		}
	}
	for s, n := range counts { // a status this page does not know yet
		d.Counts = append(d.Counts, statusCount{s, n})
	}
	// A schedule plays again at its next time: it is never done.
	d.Done = a.Kind != store.KindCron && d.Final == d.Total
	d.CanCancel = q.can(auth.RoleOperator) && !a.Cancelled && !d.Done && a.Kind != store.KindCron
	return d, nil
}

// deliveryRow makes the row of x; seen counts each box's rows so far, so
// that a schedule's several plays on one box keep distinct element ids.
func (c *Console) deliveryRow(q *request, x store.Delivery, seen map[string]int) deliveryRow {
	seen[x.Device]++
	r := deliveryRow{Delivery: x, RowID: "delivery-" + x.Device, Final: final(x.Status), Reason: messages.Reason(q.lang, x.Why, x.Reason)}
	if n := seen[x.Device]; n > 1 {
		r.RowID += "-" + strconv.Itoa(n)
	}
	return r
}

// announcementFragments draws an announcement's answers as they change;
// done once every box has given its final answer.
func (c *Console) announcementFragments(q *request, v *view) ([]fragment, bool, error) {
	d, err := c.announcementData(q, q.r.FormValue("id"))
	if err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, true, nil // nothing to follow
		}
		return nil, false, err
	}
	v.Data = d
	var b bytes.Buffer
	if err := c.pages.execute(&b, "announcement", "answers", v); err != nil {
		return nil, false, err
	}
	return []fragment{{ID: "answers", HTML: b.String()}}, d.Done, nil
}

// cancelAnnouncement cancels an announcement before its boxes have played
// it; boxes playing it stop.
func (c *Console) cancelAnnouncement(q *request) error {
	id := q.r.PathValue("id")
	if err := q.api.CancelAnnouncement(q.r.Context(), id); err != nil {
		return err
	}
	c.log.Info("console: announcement cancelled", "id", id, "token", q.sess.name)
	http.Redirect(q.w, q.r, "/announcements/"+url.PathEscape(id)+"?cancelled=1", http.StatusSeeOther)
	return nil
}
