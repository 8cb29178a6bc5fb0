package protocol

import (
	"errors"
	"fmt"
	"time"
)

// Bounds of Plan.Rules.
const (
	MaxPlanRules = 500
	maxCronSpec  = 128
	maxZoneName  = 64
	// MaxRuleValidity bounds PlanRule.ValidityMS: a schedule's occurrence
	// may start late, but not a week late.
	MaxRuleValidity = 7 * 24 * time.Hour
	MaxRuleText     = 16 << 10
)

// PlanRule is a recurring rule (a schedule) that a plan carries beside its
// items, so that a box cut off from the controller expands it itself past
// the plan's horizon, with the same function the controller uses
// (scheduler.Expand): the same items, ids included. The fields after
// ValidityMS are the template each occurrence copies, as in PlanItem.
type PlanRule struct {
	ID   string `json:"id"`   // the schedule's id; its items are <id>-<unix start>
	Cron string `json:"cron"` // 5 fields or a descriptor, in Zone
	Zone string `json:"zone"` // IANA time zone, such as Asia/Ho_Chi_Minh
	// NotBefore: no occurrence starts before it (the rule's creation);
	// NotAfter: none at or after it (zero: no end).
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	// Paused: the rule makes no items; it travels so that a box drops the
	// items it expanded before.
	Paused     bool     `json:"paused,omitempty"`
	ValidityMS int64    `json:"validity_ms"` // an occurrence may start until start+validity
	Priority   Priority `json:"priority"`
	Media      Media    `json:"media"` // zero for a tone-only rule
	Repeat     int      `json:"repeat"`
	GapMS      int64    `json:"gap_ms,omitempty"`
	Volume     *int     `json:"volume,omitempty"`
	Chime      bool     `json:"chime,omitempty"`
	Tone       string   `json:"tone,omitempty"`
	OnPreempt  string   `json:"on_preempt,omitempty"`
	Text       string   `json:"text,omitempty"`
	Status     string   `json:"status"`
}

// Validate checks a rule a box received. Whether the spec parses and the
// zone is known is for the box's scheduler to say: protocol knows no cron.
func (r *PlanRule) Validate() error {
	if err := ValidName(r.ID); err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	if r.Cron == "" || len(r.Cron) > maxCronSpec {
		return fmt.Errorf("rule %s: cron spec must be 1 to %d characters", r.ID, maxCronSpec)
	}
	if r.Zone == "" || len(r.Zone) > maxZoneName {
		return fmt.Errorf("rule %s: zone must be 1 to %d characters", r.ID, maxZoneName)
	}
	if r.ValidityMS <= 0 || r.ValidityMS > MaxRuleValidity.Milliseconds() {
		return fmt.Errorf("rule %s: validity %d ms is not within 1..%d", r.ID, r.ValidityMS, MaxRuleValidity.Milliseconds())
	}
	if len(r.Text) > MaxRuleText {
		return fmt.Errorf("rule %s: text longer than %d bytes", r.ID, MaxRuleText)
	}
	// An occurrence as the box would make it must be a valid item.
	it := r.Item()
	it.ID, it.Start = r.ID+"-0", time.Unix(1, 0)
	it.Expires = it.Start.Add(time.Duration(r.ValidityMS) * time.Millisecond)
	if err := it.Validate(); err != nil {
		return fmt.Errorf("rule %s: %w", r.ID, err)
	}
	return nil
}

// Item is the template every occurrence of r copies: no id, start or expiry.
func (r *PlanRule) Item() PlanItem {
	return PlanItem{
		Priority: r.Priority, Media: r.Media, Repeat: r.Repeat, GapMS: r.GapMS, Volume: r.Volume,
		Chime: r.Chime, Tone: r.Tone, OnPreempt: r.OnPreempt, Text: r.Text, Status: r.Status,
	}
}

// validateRules checks a plan's rules: their number, each, and that no id
// comes twice.
func validateRules(rules []PlanRule) error {
	if len(rules) > MaxPlanRules {
		return fmt.Errorf("plan has %d rules, more than %d", len(rules), MaxPlanRules)
	}
	seen := make(map[string]bool, len(rules))
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return err
		}
		if seen[rules[i].ID] {
			return errors.New("rule " + rules[i].ID + " appears twice")
		}
		seen[rules[i].ID] = true
	}
	return nil
}
