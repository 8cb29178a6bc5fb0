package device

import (
	"fmt"
	"strings"
	"time"
)

// quietHours is a daily span of local time in which only emergencies play,
// such as "22:00-05:00". The zero value is no quiet hours.
type quietHours struct {
	set      bool
	from, to int // minutes after local midnight; the span may wrap
	loc      *time.Location
}

// parseQuietHours reads "HH:MM-HH:MM" in the time zone tz ("" means the
// box's local zone). An empty span is no quiet hours. A zone the box does
// not know is an error, and the span is then read in the local zone.
func parseQuietHours(span, tz string) (quietHours, error) {
	if span == "" {
		return quietHours{}, nil
	}
	a, b, ok := strings.Cut(span, "-")
	from, err1 := time.Parse("15:04", a)
	to, err2 := time.Parse("15:04", b)
	if !ok || err1 != nil || err2 != nil {
		return quietHours{}, fmt.Errorf("quiet hours %q: want HH:MM-HH:MM, such as 22:00-05:00", span)
	}
	q := quietHours{set: true, from: from.Hour()*60 + from.Minute(), to: to.Hour()*60 + to.Minute(), loc: time.Local}
	if q.from == q.to {
		return quietHours{}, fmt.Errorf("quiet hours %q: the span is empty", span)
	}
	if tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return q, fmt.Errorf("quiet hours: time zone %q: %w; using the box's local time", tz, err)
		}
		q.loc = loc
	}
	return q, nil
}

// contains reports whether t falls in the quiet hours.
func (q quietHours) contains(t time.Time) bool {
	if !q.set {
		return false
	}
	lt := t.In(q.loc)
	m := lt.Hour()*60 + lt.Minute()
	if q.from < q.to {
		return m >= q.from && m < q.to
	}
	return m >= q.from || m < q.to
}

func (q quietHours) String() string {
	if !q.set {
		return "none"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d %s", q.from/60, q.from%60, q.to/60, q.to%60, q.loc)
}
