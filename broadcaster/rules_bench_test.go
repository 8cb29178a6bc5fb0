package broadcaster_test

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// communeSchedules is a commune's 20 schedules: morning and evening
// bulletins, weekday and weekly programmes, monthly notices.
func communeSchedules(created time.Time) ([]store.Rule, store.Media) {
	m := store.Media{SHA256: strings.Repeat("cd", 32), Size: 1 << 20, Duration: 5 * time.Minute, CreatedAt: created}
	specs := []string{
		"0 6 * * *", "30 17 * * *", "0 11 * * 1-5", "0 19 * * 1-5", "30 6 * * 6", "0 8 * * 0",
		"0 7 1 * *", "0 7 15 * *", "15 6 * * 1", "15 6 * * 3", "15 6 * * 5", "0 18 * * 6",
		"0 20 * * 0", "45 5 * * *", "0 12 * * *", "30 16 * * 2,4", "0 9 10 * *", "0 9 20 * *",
		"0 21 * * 5", "30 7 * * 0",
	}
	var rules []store.Rule
	for i, spec := range specs {
		rules = append(rules, store.Rule{ID: fmt.Sprintf("s-%02d", i+1), Kind: store.KindCron, Cron: spec, Media: m.SHA256,
			Priority: protocol.Normal, Repeat: 2, Gap: 5 * time.Second, Validity: 15 * time.Minute,
			Text: "Bản tin phát thanh của xã", Status: protocol.StatusLive, CreatedAt: created})
	}
	return rules, m
}

// BenchmarkPlanSizeWithRules measures the signed plan a box receives for a
// commune with 20 schedules: today's 48 h of items, the same with the rules
// that let it go on alone, and the 30 days of items it would take without
// rules. Run: go test -run '^$' -bench PlanSize ./broadcaster
func BenchmarkPlanSizeWithRules(b *testing.B) {
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	stored, m := communeSchedules(now.Add(-time.Hour))
	var rules []scheduler.Rule
	for _, r := range stored {
		rules = append(rules, broadcaster.SchedulerRule(r, m))
	}
	var wire []protocol.PlanRule
	for _, r := range rules {
		pr, ok := scheduler.PlanRule(r, loc)
		if !ok {
			b.Fatalf("rule %s does not travel", r.ID)
		}
		wire = append(wire, pr)
	}
	signer := protocol.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	topic := protocol.NewTopics("xa-an-binh").PlanGroup("thon-1")
	size := func(p protocol.Plan) int {
		payload, err := protocol.EncodeSigned(topic, protocol.KindPlan, "xa-an-binh", 1, now, p, signer)
		if err != nil {
			b.Fatal(err)
		}
		return len(payload)
	}
	items := func(horizon time.Duration) []protocol.PlanItem {
		it, err := scheduler.New(loc, horizon).Items(rules, now)
		if err != nil {
			b.Fatal(err)
		}
		return it
	}
	for _, tc := range []struct {
		name string
		plan func() protocol.Plan
	}{
		{"items-48h", func() protocol.Plan {
			return protocol.Plan{Target: "group/thon-1", Generated: now, Items: items(48 * time.Hour)}
		}},
		{"items-48h+rules", func() protocol.Plan {
			return protocol.Plan{Target: "group/thon-1", Generated: now, Items: items(48 * time.Hour), Rules: wire, RulesUntil: now.Add(broadcaster.DefaultOfflineFor)}
		}},
		{"items-30d", func() protocol.Plan {
			return protocol.Plan{Target: "group/thon-1", Generated: now, Items: items(broadcaster.DefaultOfflineFor)}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.plan()
			n := 0
			for b.Loop() {
				n = size(p)
			}
			b.ReportMetric(float64(n), "bytes/plan")
			b.ReportMetric(float64(len(p.Items)), "items")
			b.ReportMetric(float64(len(p.Rules)), "rules")
		})
	}
}
