package broadcaster_test

import (
	"context"
	"testing"
	"time"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// TestPlansCarryRecurringRules: a village's plan carries its schedule as a
// rule beside the schedule's items, with how long boxes may expand it; a
// one-off announcement is not a rule; pausing the schedule publishes the
// rule paused, without items; a box from before rules reads the same plan.
func TestPlansCarryRecurringRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, r := range []store.Rule{
		{ID: "s-news", Kind: store.KindCron, Cron: "0 6 * * *", Targets: store.Targets{Groups: []string{"thon-2"}}, Text: "bản tin sáng"},
		{ID: "a-once", Kind: store.KindOnce, Start: e.now.Add(time.Hour).UTC(), Targets: store.Targets{Groups: []string{"thon-2"}}},
	} {
		r.Media, r.Priority, r.Repeat, r.Validity, r.CreatedAt = e.media.SHA256, protocol.Normal, 1, 20*time.Minute, e.now
		if err := e.store.AddRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.Replan()
	c := e.box(t, "loa-2")
	var b inbox
	topic := topics.PlanGroup("thon-2")
	subscribe(t, c, &b, topic)
	subscribe(t, c, &b, topics.PlanAll())
	eventually(t, "the village's plan", func() bool { p, _ := lastPlan(t, &b, topic); return len(p.Items) == 3 })
	p, _ := lastPlan(t, &b, topic)
	want := protocol.PlanRule{ID: "s-news", Cron: "0 6 * * *", Zone: "Asia/Ho_Chi_Minh", NotBefore: e.now.UTC(),
		ValidityMS: (20 * time.Minute).Milliseconds(), Priority: protocol.Normal,
		Media:  protocol.Media{SHA256: e.media.SHA256, Size: e.media.Size, DurationMS: 1000},
		Repeat: 1, OnPreempt: protocol.OnPreemptRestart, Text: "bản tin sáng", Status: protocol.StatusLive}
	if len(p.Rules) != 1 || !ruleEqual(p.Rules[0], want) {
		t.Fatalf("rules %+v\nwant [%+v]", p.Rules, want)
	}
	// 30 days after 03:00 of the plan's day in the site's zone (it is 05:30 there).
	if day := time.Date(2026, 3, 1, 3, 0, 0, 0, e.now.Location()); !p.RulesUntil.Equal(day.Add(broadcaster.DefaultOfflineFor)) {
		t.Errorf("rules until %v, want 30 days after %v", p.RulesUntil, day)
	}
	eventually(t, "plan/all", func() bool { _, ok := lastPlan(t, &b, topics.PlanAll()); return ok })
	if all, _ := lastPlan(t, &b, topics.PlanAll()); len(all.Rules) != 0 || !all.RulesUntil.IsZero() {
		t.Errorf("plan/all without rules carries %+v until %v", all.Rules, all.RulesUntil)
	}

	// A box from before rules: its plan type has no such fields.
	var old struct {
		Target    string              `json:"target"`
		Generated time.Time           `json:"generated"`
		Items     []protocol.PlanItem `json:"items"`
	}
	msgs := b.on(topic)
	if _, err := protocol.Decode(msgs[len(msgs)-1].Payload(), site, protocol.KindPlan, &old); err != nil || len(old.Items) == 0 {
		t.Fatalf("an old box reads the plan: %v, %d items", err, len(old.Items))
	}

	if err := e.store.SetPaused(ctx, "s-news", true); err != nil {
		t.Fatal(err)
	}
	e.svc.Replan()
	eventually(t, "the plan with the rule paused", func() bool {
		p, _ := lastPlan(t, &b, topic)
		return len(p.Rules) == 1 && p.Rules[0].Paused && len(p.Items) == 1
	})
}

func ruleEqual(a, b protocol.PlanRule) bool {
	return a.ID == b.ID && a.Cron == b.Cron && a.Zone == b.Zone && a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter) &&
		a.Paused == b.Paused && a.ValidityMS == b.ValidityMS && a.Priority == b.Priority && a.Media == b.Media &&
		a.Repeat == b.Repeat && a.GapMS == b.GapMS && a.Volume == b.Volume && a.Chime == b.Chime && a.Tone == b.Tone &&
		a.OnPreempt == b.OnPreempt && a.Text == b.Text && a.Status == b.Status
}
