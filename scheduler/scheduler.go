package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/loa-commune/loa/protocol"
)

// Defaults.
const (
	DefaultHorizon  = 48 * time.Hour
	DefaultValidity = 15 * time.Minute
	// Keep is how long an item stays in plans after it may no longer start,
	// so a box that was offline learns it expired rather than that it was
	// cancelled.
	Keep = 6 * time.Hour
	// maxItemsPerRule bounds what one rule can put in a plan (an "@every 1m"
	// schedule would otherwise make 2,880 items over 48 h).
	maxItemsPerRule = 500
)

// Rule is an announcement (At set) or a schedule (Cron set) with the item
// template every occurrence copies.
type Rule struct {
	ID        string
	At        time.Time // one start, for announcements
	Cron      string    // for schedules, in the scheduler's zone
	Paused    bool
	NotBefore time.Time     // a schedule makes no item starting before this
	NotAfter  time.Time     // nor one starting at or after this; zero: no end
	Validity  time.Duration // an item may start until start+Validity
	Item      protocol.PlanItem
}

func (r Rule) validity() time.Duration {
	if r.Validity <= 0 {
		return DefaultValidity
	}
	return r.Validity
}

// Scheduler expands rules into plan items.
type Scheduler struct {
	loc     *time.Location
	horizon time.Duration
	// parsed caches ParseCron's results by spec: a province's controller
	// expands thousands of cron rules on every replan.
	parsed sync.Map
}

// New returns a scheduler for a site in loc.
func New(loc *time.Location, horizon time.Duration) *Scheduler {
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	return &Scheduler{loc: loc, horizon: horizon}
}

// Location is the site's zone.
func (s *Scheduler) Location() *time.Location { return s.loc }

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron checks a spec and returns its schedule in the site's zone.
// A spec with its own CRON_TZ/TZ prefix is refused: the site's zone rules.
func (s *Scheduler) ParseCron(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if c, ok := s.parsed.Load(spec); ok {
		return c.(cron.Schedule), nil
	}
	sched, err := ParseCron(spec, s.loc)
	if err != nil {
		return nil, err
	}
	s.parsed.Store(spec, sched)
	return sched, nil
}

// ParseCron checks a spec and returns its schedule in loc. A spec with its
// own CRON_TZ/TZ prefix is refused: loc rules.
func ParseCron(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("cron rule is empty")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("cron rule %q: leave out the time zone, the site's zone (%s) is used", spec, loc)
	}
	sched, err := parser.Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("cron rule %q: %v (use 5 fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * *\" for 6:00 every day)", spec, err)
	}
	if sched.Next(time.Now()).IsZero() && sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, loc)).IsZero() {
		return nil, fmt.Errorf("cron rule %q never fires", spec)
	}
	return sched, nil
}

// ItemID is the stable id of the occurrence of rule starting at start.
func ItemID(rule string, start time.Time) string {
	return rule + "-" + strconv.FormatInt(start.Unix(), 10)
}

// Items returns the items of rules that are still of interest at now: those
// that start before now+horizon and have not been expired for longer than
// Keep. Sorted by start, then id.
func (s *Scheduler) Items(rules []Rule, now time.Time) ([]protocol.PlanItem, error) {
	lo, hi := now.Add(-Keep), now.Add(s.horizon)
	var out []protocol.PlanItem
	for _, r := range rules {
		var sched cron.Schedule
		if r.Cron != "" && !r.Paused {
			var err error
			if sched, err = s.ParseCron(r.Cron); err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.ID, err)
			}
		}
		out = append(out, expand(r, sched, lo, hi)...)
	}
	SortItems(out)
	return out, nil
}

// SortItems orders items by start, then id, as plans list them.
func SortItems(items []protocol.PlanItem) {
	sort.Slice(items, func(i, j int) bool {
		if !items[i].Start.Equal(items[j].Start) {
			return items[i].Start.Before(items[j].Start)
		}
		return items[i].ID < items[j].ID
	})
}

// Expand is the one expansion of a rule into plan items, shared by the
// controller (Items, for its plans) and the boxes (for the recurring rules
// their plans carry, past the plan's horizon): the same rule and window give
// the same items, ids included, on both sides. It returns the rule's items
// that start before to and expire after from (plans keep expired items:
// from is now-Keep), in start order; a cron rule's in the zone loc. A
// paused rule has none. It does no I/O and reads no clock.
func Expand(r Rule, loc *time.Location, from, to time.Time) ([]protocol.PlanItem, error) {
	var sched cron.Schedule
	if r.Cron != "" && !r.Paused {
		var err error
		if sched, err = ParseCron(r.Cron, loc); err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.ID, err)
		}
	}
	return expand(r, sched, from, to), nil
}

// expand is Expand with the rule's cron schedule parsed (nil for a one-off).
func expand(r Rule, sched cron.Schedule, from, to time.Time) []protocol.PlanItem {
	if r.Paused {
		return nil
	}
	validity := r.validity()
	var out []protocol.PlanItem
	for _, st := range starts(r, sched, from.Add(-validity), to) {
		it := r.Item
		it.ID = ItemID(r.ID, st)
		it.Announcement = r.ID
		it.Start = st.UTC()
		if it.Stream != nil && r.Cron == "" {
			// A session's sound starts at its origin, which is no
			// whole second, and a box places the session by its
			// item's start: when to cue it, whether it joins late,
			// what it heard and missed. The id keeps the second.
			it.Start = r.At.UTC()
		}
		it.Expires = it.Start.Add(validity).UTC()
		if it.Expires.Before(from) {
			continue
		}
		if it.Stream != nil {
			// A one-off session streams under its rule's id; each
			// occurrence of a relay schedule is a stream of its own.
			ref := *it.Stream
			ref.Session = r.ID
			if r.Cron != "" {
				ref.Session = it.ID
			}
			it.Stream = &ref
		}
		out = append(out, it)
	}
	return out
}

// starts lists the rule's start times in (from, to).
func starts(r Rule, sched cron.Schedule, from, to time.Time) []time.Time {
	if r.Cron == "" {
		if r.At.IsZero() || !r.At.After(from) || !r.At.Before(to) {
			return nil
		}
		return []time.Time{r.At.Truncate(time.Second)}
	}
	if from.Before(r.NotBefore) {
		from = r.NotBefore.Add(-time.Second) // Next is strictly after
	}
	if !r.NotAfter.IsZero() && r.NotAfter.Before(to) {
		to = r.NotAfter
	}
	var out []time.Time
	for t := sched.Next(from); !t.IsZero() && t.Before(to) && len(out) < maxItemsPerRule; t = sched.Next(t) {
		out = append(out, t)
	}
	return out
}

// NextChange is the earliest time after now at which Items would return
// something different for the same rules: a new occurrence entering the
// horizon, or an old one leaving. The controller re-publishes plans then.
func (s *Scheduler) NextChange(rules []Rule, now time.Time) time.Time {
	next := time.Time{}
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, r := range rules {
		if r.Paused {
			continue
		}
		validity := r.validity()
		if r.Cron == "" {
			consider(r.At.Add(-s.horizon))      // enters the horizon
			consider(r.At.Add(validity + Keep)) // leaves the plan
			continue
		}
		sched, err := s.ParseCron(r.Cron)
		if err != nil {
			continue
		}
		from := now.Add(s.horizon)
		if from.Before(r.NotBefore) {
			from = r.NotBefore.Add(-time.Second)
		}
		if t := sched.Next(from.Add(-time.Second)); !t.IsZero() {
			consider(t.Add(-s.horizon))
		}
		if t := sched.Next(now.Add(-Keep - validity - time.Second)); !t.IsZero() {
			consider(t.Add(validity + Keep))
		}
	}
	return next
}
