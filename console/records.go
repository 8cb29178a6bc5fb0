package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// routeRecords registers the schedules, media, report and audit pages:
// every page for viewers, every change for operators.
func (c *Console) routeRecords() {
	c.route("GET /schedules", auth.RoleViewer, c.schedulesPage) // schedules.go
	c.route("POST /schedules/{id}/pause", auth.RoleOperator, c.pauseSchedule(true))
	c.route("POST /schedules/{id}/resume", auth.RoleOperator, c.pauseSchedule(false))
	c.route("POST /schedules/{id}/delete", auth.RoleOperator, c.deleteSchedule)
	c.route("GET /media", auth.RoleViewer, c.mediaPage) // media.go
	c.route("POST /media", auth.RoleOperator, c.uploadMedia)
	c.route("POST /media/{id}/delete", auth.RoleOperator, c.deleteMedia)
	c.route("GET /report", auth.RoleViewer, c.reportPage) // report.go
	c.route("GET /report.csv", auth.RoleViewer, c.reportCSV)
	c.route("GET /report/box/{id}", auth.RoleViewer, c.boxReportPage)
	c.route("GET /audit", auth.RoleViewer, c.auditPage) // audit.go
}

// dateLayout is how the record pages' date fields and links write a day
// (an <input type="date"> sends it so).
const dateLayout = "2006-01-02"

// siteZone is the commune's time zone, in which every record page shows
// and reads times.
func siteZone(q *request) *time.Location {
	if loc, err := time.LoadLocation(q.sess.timezone); err == nil {
		return loc
	}
	return time.Local
}

// dayStart is the start of t's day in loc.
func dayStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// dateSpan is the days a record page shows, in the commune's zone.
type dateSpan struct {
	Since, Until string // as the form shows them
	from, to     time.Time
}

// readSpan reads a page's since and until days (until included), by
// default the last days days to today. A day that cannot be read gives a
// problem to show and the default in its place.
func readSpan(q *request, loc *time.Location, now time.Time, days int) (dateSpan, string) {
	today := dayStart(now, loc)
	s := dateSpan{from: today.AddDate(0, 0, -(days - 1)), to: today.AddDate(0, 0, 1)}
	var problem string
	if v := strings.TrimSpace(q.r.FormValue("since")); v != "" {
		if t, err := time.ParseInLocation(dateLayout, v, loc); err == nil {
			s.from = t
		} else {
			problem = messages.In(q.lang, messages.ConsoleBadDate, v)
		}
	}
	if v := strings.TrimSpace(q.r.FormValue("until")); v != "" {
		if t, err := time.ParseInLocation(dateLayout, v, loc); err == nil {
			s.to = t.AddDate(0, 0, 1)
		} else {
			problem = messages.In(q.lang, messages.ConsoleBadDate, v)
		}
	}
	if !s.to.After(s.from) {
		problem = messages.In(q.lang, messages.ConsoleBadSpan)
		s.to = s.from.AddDate(0, 0, 1)
	}
	s.Since, s.Until = s.from.Format(dateLayout), s.to.AddDate(0, 0, -1).Format(dateLayout)
	return s, problem
}

// apiSince and apiUntil are the span as the API reads it: days in the
// site's zone, until excluded.
func (s dateSpan) apiSince() string { return s.from.Format(dateLayout) }
func (s dateSpan) apiUntil() string { return s.to.Format(dateLayout) }

// targetWords names targets as staff say them: the whole commune, these
// villages, these boxes.
func targetWords(lang string, t store.Targets) string {
	var parts []string
	if t.All {
		parts = append(parts, messages.In(lang, "console.targets.all"))
	}
	if len(t.Groups) > 0 {
		parts = append(parts, messages.In(lang, "console.targets.villages", strings.Join(t.Groups, ", ")))
	}
	if len(t.Devices) > 0 {
		parts = append(parts, messages.In(lang, "console.targets.boxes", strings.Join(t.Devices, ", ")))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, "; ")
}

// decimal writes f with digits after the point, as lang writes numbers
// (Vietnamese: a decimal comma).
func decimal(lang string, f float64, digits int) string {
	s := strconv.FormatFloat(f, 'f', digits, 64)
	if strings.HasPrefix(lang, "vi") {
		s = strings.Replace(s, ".", ",", 1)
	}
	return strings.Replace(s, "-", "−", 1)
}

// clockLength writes a duration as a clock does: 0:42, 12:05, 1:02:03.
func clockLength(d time.Duration) string {
	sec := int64(math.Round(d.Seconds()))
	h, m, s := sec/3600, sec/60%60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// byteSize writes n bytes in kB or MB, as lang writes numbers.
func byteSize(lang string, n int64) string {
	switch {
	case n >= 1<<20:
		return decimal(lang, float64(n)/(1<<20), 1) + " MB"
	case n >= 1<<10:
		return decimal(lang, float64(n)/(1<<10), 0) + " kB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// formProblem is the message of an API refusal the person can act on
// (a bad file, media in use, an unknown rule), which the page shows above
// the form; other errors go to the error page.
func formProblem(err error) (status int, msg string, ok bool) {
	var ae *api.APIError
	if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
		return ae.Status, ae.Message, true
	}
	return 0, "", false
}

// retryLimited calls fn again while the API says the person's token is
// over its rate (a long report or CSV reads many pages), for up to a
// minute.
func retryLimited(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
