package console

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/scheduler"
)

// maxSlotsPerRuleDay bounds the times one rule shows in a day's column
// ("@every 10m" would fill it): past it the day says how many more.
const maxSlotsPerRuleDay = 8

// maxStartsPerRuleWeek bounds the work of expanding one rule over a week.
const maxStartsPerRuleWeek = 7 * 24 * 60

// weekPage is the schedules page: one week (Monday to Sunday, in the
// commune's zone) of the repeating rules' times, and the rules.
type weekPage struct {
	// Week, Prev and Next are Mondays, as ?week= takes them.
	Week, Prev, Next string
	IsThis           bool
	Label, Zone      string
	Days             []weekDay
	Rules            []scheduleRow
}

// weekDay is one column of the week.
type weekDay struct {
	Date, Name, Label string
	Today             bool
	Slots             []weekSlot
}

// weekSlot is one time a rule fires, or (More > 0) how many more times it
// fires that day.
type weekSlot struct {
	at            time.Time
	Clock, ISO    string
	Rule, Title   string
	What, Targets string
	Paused        bool
	More          int
}

// scheduleRow is a rule in the list under the week.
type scheduleRow struct {
	ID, Title, Cron, What, Targets, Next string
	Boxes                                int
	Paused                               bool
	Problem                              string
}

func (c *Console) schedulesPage(q *request) error {
	ctx := q.r.Context()
	loc := siteZone(q)
	now := c.opts.Now()
	v := q.view("console.schedules.title")

	thisWeek := monday(now, loc)
	week := thisWeek
	if w := strings.TrimSpace(q.r.FormValue("week")); w != "" {
		t, err := time.ParseInLocation(dateLayout, w, loc)
		if err != nil {
			v.Error = messages.In(q.lang, messages.ConsoleBadDate, w)
		} else {
			week = monday(t, loc)
		}
	}
	rules, err := q.api.Schedules(ctx)
	if err != nil {
		return err
	}
	media, err := q.api.Media(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, m := range media {
		names[m.ID] = m.Name
	}

	end := week.AddDate(0, 0, 7)
	d := &weekPage{Week: week.Format(dateLayout), Prev: week.AddDate(0, 0, -7).Format(dateLayout),
		Next: end.Format(dateLayout), IsThis: week.Equal(thisWeek), Zone: loc.String(),
		Label: week.Format("02/01/2006") + " – " + end.AddDate(0, 0, -1).Format("02/01/2006")}
	today := dayStart(now, loc)
	for i := range 7 {
		day := week.AddDate(0, 0, i)
		d.Days = append(d.Days, weekDay{Date: day.Format(dateLayout), Label: day.Format("02/01"),
			Name: v.T(weekdayKey(i)), Today: day.Equal(today)})
	}

	sched := scheduler.New(loc, 0) // the controller's own parser and zone
	for _, a := range rules {
		row := scheduleRow{ID: a.ID, Title: scheduleTitle(a), Cron: a.Cron, What: ruleWhat(q.lang, a, names),
			Targets: targetWords(q.lang, a.Targets), Boxes: len(a.Devices), Paused: a.Paused, Next: v.Time(a.Next)}
		spec, err := sched.ParseCron(a.Cron)
		if err != nil {
			row.Problem = err.Error()
			d.Rules = append(d.Rules, row)
			continue
		}
		d.Rules = append(d.Rules, row)
		perDay := map[int]int{}
		n := 0
		// A rule has no times before it was made.
		from := week
		if a.Created.After(from) {
			from = a.Created
		}
		for t := spec.Next(from.Add(-time.Second)); !t.IsZero() && t.Before(end) && n < maxStartsPerRuleWeek; t = spec.Next(t) {
			n++
			t = t.In(loc)
			i := int(dayStart(t, loc).Sub(week).Hours()+12) / 24 // whole days, whatever the zone's shifts
			if i < 0 || i > 6 {
				continue
			}
			perDay[i]++
			if perDay[i] > maxSlotsPerRuleDay {
				continue
			}
			d.Days[i].Slots = append(d.Days[i].Slots, weekSlot{at: t, Clock: t.Format("15:04"), ISO: t.Format(time.RFC3339),
				Rule: a.ID, Title: row.Title, What: row.What, Targets: row.Targets, Paused: a.Paused})
		}
		for i, k := range perDay {
			if k > maxSlotsPerRuleDay {
				d.Days[i].Slots = append(d.Days[i].Slots, weekSlot{at: end, Rule: a.ID, Title: row.Title,
					Paused: a.Paused, More: k - maxSlotsPerRuleDay})
			}
		}
	}
	for i := range d.Days {
		s := d.Days[i].Slots
		sort.SliceStable(s, func(a, b int) bool {
			if !s[a].at.Equal(s[b].at) {
				return s[a].at.Before(s[b].at)
			}
			return s[a].Title < s[b].Title
		})
	}
	sort.SliceStable(d.Rules, func(a, b int) bool { return d.Rules[a].Title < d.Rules[b].Title })

	if done, id := q.r.FormValue("done"), q.r.FormValue("rule"); done != "" && id != "" {
		title := id
		for _, r := range d.Rules {
			if r.ID == id {
				title = r.Title
			}
		}
		switch done {
		case "paused":
			v.Notice = messages.In(q.lang, messages.ConsoleSchedulePaused, title)
		case "resumed":
			v.Notice = messages.In(q.lang, messages.ConsoleScheduleResumed, title)
		case "deleted":
			v.Notice = messages.In(q.lang, messages.ConsoleScheduleDeleted, title)
		case "added":
			v.Notice = messages.In(q.lang, messages.ConsoleScheduleAdded, title)
		}
	}
	v.Data = d
	c.render(q.w, http.StatusOK, "schedules", v)
	return nil
}

// monday is the start of the Monday of t's week in loc.
func monday(t time.Time, loc *time.Location) time.Time {
	d := dayStart(t, loc)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}

// weekdayKey is the message key of the week's i-th day, Monday first.
func weekdayKey(i int) string { return "console.weekday." + string(rune('1'+i)) }

// scheduleTitle is what staff call a rule: its name, else its id.
func scheduleTitle(a api.Announcement) string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}

// ruleWhat says what a rule plays: its tone, its recording's name, its
// text.
func ruleWhat(lang string, a api.Announcement, mediaNames map[string]string) string {
	var parts []string
	if a.Tone != "" {
		parts = append(parts, messages.In(lang, messages.Key("console.tone."+a.Tone)))
	}
	if a.Media != "" {
		name := mediaNames[a.Media]
		if name == "" {
			name = messages.Short(a.Media)
		}
		parts = append(parts, name)
	} else if a.Text != "" {
		parts = append(parts, "“"+messages.Short(a.Text)+"”")
	}
	if a.Exercise {
		parts = append(parts, messages.In(lang, "console.banner.exercise"))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " · ")
}

// pauseSchedule pauses or resumes a rule, then shows the same week.
func (c *Console) pauseSchedule(pause bool) func(*request) error {
	return func(q *request) error {
		id := q.r.PathValue("id")
		if _, err := q.api.PauseSchedule(q.r.Context(), id, pause); err != nil {
			return err
		}
		done := "resumed"
		if pause {
			done = "paused"
		}
		c.log.Info("console: schedule "+done, "rule", id, "token", q.sess.name)
		c.backToWeek(q, done, id)
		return nil
	}
}

func (c *Console) deleteSchedule(q *request) error {
	id := q.r.PathValue("id")
	if err := q.api.RemoveSchedule(q.r.Context(), id); err != nil {
		return err
	}
	c.log.Info("console: schedule deleted", "rule", id, "token", q.sess.name)
	c.backToWeek(q, "deleted", id)
	return nil
}

// backToWeek sends the person back to the week they were looking at, with
// what was done.
func (c *Console) backToWeek(q *request, done, id string) {
	v := url.Values{"done": {done}, "rule": {id}}
	if w := q.r.PostFormValue("week"); w != "" {
		if _, err := time.Parse(dateLayout, w); err == nil {
			v.Set("week", w)
		}
	}
	http.Redirect(q.w, q.r, "/schedules?"+v.Encode(), http.StatusSeeOther)
}
