package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// PlanRule is r as a plan carries it to the boxes, with its cron spec in
// the zone loc. ok is false for a rule a box must not expand itself: a
// one-off rule (its item is in the plan), a live session or relay (its sound
// comes from the controller as it happens), an "@every" spec (its times
// depend on the moment it is asked, so a box's and the controller's would
// differ), a zone without a name the box can load, and a text longer than
// boxes take (protocol.MaxRuleText).
func PlanRule(r Rule, loc *time.Location) (pr protocol.PlanRule, ok bool) {
	zone := loc.String()
	if r.Cron == "" || r.Item.Stream != nil || strings.HasPrefix(strings.TrimSpace(r.Cron), "@every") ||
		zone == "" || zone == "Local" || len(r.Item.Text) > protocol.MaxRuleText {
		return protocol.PlanRule{}, false
	}
	it := r.Item
	return protocol.PlanRule{
		ID: r.ID, Cron: r.Cron, Zone: zone, NotBefore: r.NotBefore.UTC(), NotAfter: r.NotAfter.UTC(),
		Paused: r.Paused, ValidityMS: r.validity().Milliseconds(),
		Priority: it.Priority, Media: it.Media, Repeat: it.Repeat, GapMS: it.GapMS, Volume: it.Volume,
		Chime: it.Chime, Tone: it.Tone, OnPreempt: it.OnPreempt, Text: it.Text, Status: it.Status,
	}, true
}

// FromPlanRule is the rule a box expands for pr, and its zone. It fails
// for a zone the box does not know or a spec the parser refuses.
func FromPlanRule(pr protocol.PlanRule) (Rule, *time.Location, error) {
	loc, err := time.LoadLocation(pr.Zone)
	if err != nil {
		return Rule{}, nil, fmt.Errorf("rule %s: time zone %q: %w", pr.ID, pr.Zone, err)
	}
	r := Rule{
		ID: pr.ID, Cron: pr.Cron, Paused: pr.Paused, Validity: time.Duration(pr.ValidityMS) * time.Millisecond,
		Item: pr.Item(),
	}
	if !pr.NotBefore.IsZero() {
		r.NotBefore = pr.NotBefore
	}
	if !pr.NotAfter.IsZero() {
		r.NotAfter = pr.NotAfter
	}
	if !r.Paused {
		if _, err := ParseCron(r.Cron, loc); err != nil {
			return Rule{}, nil, fmt.Errorf("rule %s: %w", pr.ID, err)
		}
	}
	return r, loc, nil
}
