package protocol

import (
	"strings"
	"testing"
	"time"
)

func TestPlanRuleValidate(t *testing.T) {
	good := func() PlanRule {
		return PlanRule{ID: "s-1", Cron: "0 6 * * *", Zone: "Asia/Ho_Chi_Minh", ValidityMS: 900_000, Priority: Normal,
			Media: Media{SHA256: strings.Repeat("a", 64), Size: 10, DurationMS: 1000}, Repeat: 1, Status: StatusLive}
	}
	for _, tc := range []struct {
		name   string
		change func(r *PlanRule)
		ok     bool
	}{
		{"good", func(*PlanRule) {}, true},
		{"tone only", func(r *PlanRule) { r.Media, r.Tone = Media{}, ToneSiren }, true},
		{"paused", func(r *PlanRule) { r.Paused = true }, true},
		{"bad id", func(r *PlanRule) { r.ID = "s 1" }, false},
		{"no spec", func(r *PlanRule) { r.Cron = "" }, false},
		{"long spec", func(r *PlanRule) { r.Cron = strings.Repeat("*", 200) }, false},
		{"no zone", func(r *PlanRule) { r.Zone = "" }, false},
		{"no validity", func(r *PlanRule) { r.ValidityMS = 0 }, false},
		{"validity of a month", func(r *PlanRule) { r.ValidityMS = (30 * 24 * time.Hour).Milliseconds() }, false},
		{"no media", func(r *PlanRule) { r.Media = Media{} }, false},
		{"bad priority", func(r *PlanRule) { r.Priority = 9 }, false},
		{"no repeat", func(r *PlanRule) { r.Repeat = 0 }, false},
		{"unknown status", func(r *PlanRule) { r.Status = "maybe" }, false},
		{"long text", func(r *PlanRule) { r.Text = strings.Repeat("x", MaxRuleText+1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.change(&r)
			p := Plan{Target: "all", Items: []PlanItem{}, Rules: []PlanRule{r}}
			if err := p.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
	p := Plan{Target: "all", Rules: []PlanRule{good(), good()}}
	if err := p.Validate(); err == nil {
		t.Error("a rule twice was accepted")
	}
	p.Rules = make([]PlanRule, MaxPlanRules+1)
	for i := range p.Rules {
		p.Rules[i] = good()
	}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "rules") {
		t.Errorf("too many rules: %v", err)
	}
}
