package broadcaster

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// planLoop re-publishes when asked, when the scheduler says the plans change,
// and at least every minute (a safety net against a missed kick).
func (s *Service) planLoop() {
	defer s.wg.Done()
	for {
		wait := time.Minute
		s.mu.Lock()
		next := s.nextAt
		s.mu.Unlock()
		if !next.IsZero() {
			if d := next.Sub(s.opts.Now()) + time.Second; d < wait {
				wait = max(d, time.Second)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
		if err := s.replan(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("publish plans", "err", err)
		}
		s.markUnanswered()
	}
}

// answerGrace is how long after an item's window closes the controller
// waits for a box's answer before reporting that it did not sound.
const answerGrace = 2 * time.Minute

func (s *Service) markUnanswered() {
	n, err := s.store.MarkUnanswered(s.ctx, s.opts.Now().Add(-answerGrace))
	switch {
	case err != nil && s.ctx.Err() == nil:
		s.log.Error("mark unanswered deliveries", "err", err)
	case n > 0:
		s.log.Warn("items did not sound: no answer from their boxes", "deliveries", n)
	}
}

// schedulerRules reads the live rules and groups them by plan target
// ("all", "group/<g>", "device/<id>").
func (s *Service) schedulerRules(ctx context.Context) (map[string][]scheduler.Rule, error) {
	rules, err := s.store.Rules(ctx, "", false)
	if err != nil {
		return nil, err
	}
	media := map[string]store.Media{}
	out := map[string][]scheduler.Rule{}
	for _, r := range rules {
		m, ok := media[r.Media]
		if !ok && r.Media != "" { // a tone-only emergency has none
			if m, err = s.store.MediaByID(ctx, r.Media); err != nil {
				s.log.Error("rule uses missing media; skipped", "rule", r.ID, "err", err)
				continue
			}
			media[r.Media] = m
		}
		sr := SchedulerRule(r, m)
		for _, t := range targetsOf(r.Targets) {
			out[t] = append(out[t], sr)
		}
	}
	return out, nil
}

// SchedulerRule turns a stored rule and its media into the scheduler's form.
func SchedulerRule(r store.Rule, m store.Media) scheduler.Rule {
	sr := scheduler.Rule{
		ID: r.ID, Paused: r.Paused, Validity: r.Validity, NotBefore: r.CreatedAt,
		Item: protocol.PlanItem{
			Priority: r.Priority,
			Repeat:   max(r.Repeat, 1), GapMS: r.Gap.Milliseconds(), Text: r.Text, Tone: r.Tone,
			OnPreempt: protocol.OnPreemptRestart, Status: r.Status,
		},
	}
	if r.Media != "" {
		// Boxes get the rendition (normalised Opus) once it is made.
		sha, size := m.Delivered()
		sr.Item.Media = protocol.Media{SHA256: sha, Size: size, DurationMS: m.Duration.Milliseconds()}
	}
	if sr.Item.Status == "" {
		sr.Item.Status = protocol.StatusLive
	}
	if r.StreamChannels > 0 {
		// A live session: the scheduler names the stream after the item.
		sr.Item.Stream = &protocol.StreamRef{Channels: r.StreamChannels, Ends: r.StreamEnds.UTC()}
		sr.Item.Media, sr.Item.Repeat, sr.Item.GapMS, sr.Item.Tone = protocol.Media{}, 1, 0, ""
		// Live sound cannot be resumed or restarted: after a preemption the
		// box rejoins at the live point.
		sr.Item.OnPreempt = protocol.OnPreemptRestart
	}
	if r.Kind == store.KindCron {
		sr.Cron = r.Cron
	} else {
		sr.At = r.Start
	}
	return sr
}

func targetsOf(t store.Targets) []string {
	var out []string
	if t.All {
		out = append(out, "all")
	}
	for _, g := range t.Groups {
		out = append(out, "group/"+g)
	}
	for _, d := range t.Devices {
		out = append(out, "device/"+d)
	}
	return out
}

func (s *Service) planTopic(target string) string { return s.topics.Root() + "/plan/" + target }

// targetPlan is one target's computed plan. It stays valid while the
// target's rules are the same (key) and the clock is in [at, until): the
// scheduler's next change for those rules.
type targetPlan struct {
	key       [32]byte
	at, until time.Time
	items     []protocol.PlanItem
	rules     []protocol.PlanRule // the recurring rules boxes expand themselves
	scheduled []protocol.PlanItem // the items of schedules: the replan records their pending rows
	sum       [32]byte            // of the items and rules as published
}

// emptyPlan is the plan of a target without rules.
var emptyPlan = targetPlan{sum: planSum(nil, nil)}

func planSum(items []protocol.PlanItem, rules []protocol.PlanRule) [32]byte {
	if items == nil {
		items = []protocol.PlanItem{}
	}
	b, _ := json.Marshal(protocol.Plan{Items: items, Rules: rules}) // plain data: cannot fail
	return sha256.Sum256(b)
}

// DefaultOfflineFor is how long a box expands its plans' recurring rules
// after the plan's day when it hears nothing newer: a storm that cuts the
// mast for weeks leaves the daily programme playing.
const DefaultOfflineFor = 30 * 24 * time.Hour

// rulesDayHour is the hour, in the site's zone, at which plans' RulesUntil
// moves on: at night, when nothing is broadcast and the links are idle.
const rulesDayHour = 3

// rulesUntil is how far a plan published at now lets boxes expand its
// rules: OfflineFor after the last rulesDayHour. It moves once a day, so a
// plan with rules is published again once a day even when its items stay
// the same (a monthly rule's target).
func (s *Service) rulesUntil(now time.Time) time.Time {
	d := s.opts.OfflineFor
	if d <= 0 {
		d = DefaultOfflineFor
	}
	l := now.In(s.sched.Location())
	day := time.Date(l.Year(), l.Month(), l.Day(), rulesDayHour, 0, 0, 0, l.Location())
	if l.Before(day) {
		day = day.AddDate(0, 0, -1)
	}
	return day.Add(d).UTC()
}

// publishedSum identifies what a plan's topic carries: its items and rules,
// and, when it has rules, how long they last.
func (c targetPlan) publishedSum(until time.Time) [32]byte {
	if len(c.rules) == 0 {
		return c.sum
	}
	b, _ := until.MarshalBinary()
	return sha256.Sum256(append(c.sum[:], b...))
}

// planRules lists the rules of a target that its boxes expand themselves
// (see scheduler.PlanRule), in the rules' order. Over protocol.MaxPlanRules
// the plan carries none: boxes would refuse it, and items still play.
func (s *Service) planRules(target string, rules []scheduler.Rule) []protocol.PlanRule {
	var out []protocol.PlanRule
	for _, r := range rules {
		if pr, ok := scheduler.PlanRule(r, s.sched.Location()); ok {
			out = append(out, pr)
		}
	}
	if len(out) > protocol.MaxPlanRules {
		s.log.Warn("too many recurring rules for boxes to expand; the plan carries its items only", "target", target, "rules", len(out), "max", protocol.MaxPlanRules)
		return nil
	}
	return out
}

// replan brings every target's plan up to date and publishes those that
// changed. It is incremental: a target is recomputed only when its rules
// changed or the clock reached its next change, and published only when its
// items differ from what its topic holds. Targets that no longer have items
// get an empty plan, so boxes drop them.
func (s *Service) replan(ctx context.Context) error {
	started := time.Now()
	byTarget, err := s.schedulerRules(ctx)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	never := now.AddDate(100, 0, 0)
	s.mu.Lock()
	computed := s.computed
	s.mu.Unlock()
	// The first replan of a start also records the pending rows of one-off
	// rules' items (see ofSchedules).
	first := len(computed) == 0
	plans := map[string]targetPlan{"all": emptyPlan}
	var next time.Time
	recomputed := 0
	for target, rules := range byTarget {
		key, err := rulesKey(rules)
		if err != nil {
			return err
		}
		c, ok := computed[target]
		if !ok || c.key != key || now.Before(c.at) || !now.Before(c.until) {
			items, err := s.sched.Items(rules, now)
			if err != nil {
				return err
			}
			wire := s.planRules(target, rules)
			c = targetPlan{key: key, at: now, until: s.sched.NextChange(rules, now), items: items, rules: wire,
				scheduled: ofSchedules(items, rules), sum: planSum(items, wire)}
			if c.until.IsZero() {
				c.until = never
			}
			recomputed++
		}
		plans[target] = c
		if next.IsZero() || c.until.Before(next) {
			next = c.until
		}
	}
	groups, err := s.store.GroupNames(ctx)
	if err != nil {
		return err
	}
	ids, err := s.store.DeviceIDs(ctx)
	if err != nil {
		return err
	}
	// Every group and box has a retained plan, if only an empty one: the
	// broker then has the topic before a box subscribes, and a first plan
	// published while a box subscribes cannot slip past it (seen with
	// mochi when both create the topic at once).
	for _, target := range append(prefixed("group/", groups), prefixed("device/", ids)...) {
		if _, ok := plans[target]; !ok {
			plans[target] = emptyPlan
		}
	}
	s.mu.Lock()
	for topic := range s.published {
		target := topic[len(s.topics.Root())+len("/plan/"):]
		if _, ok := plans[target]; !ok {
			plans[target] = emptyPlan
		}
	}
	s.computed, s.nextAt = plans, next
	s.mu.Unlock()

	var errs []error
	pended := map[string]bool{} // only items still in plans, so the set stays small
	// Publish first: the boxes are waiting; the report rows can follow.
	changed, err := s.publishPlans(plans, now)
	if err != nil {
		errs = append(errs, err)
	}
	var rows []store.Pending
	for target, c := range plans {
		items := c.scheduled
		if first {
			items = c.items
		}
		r, err := s.pendingRows(ctx, target, items, ids, pended)
		if err != nil {
			errs = append(errs, err)
		}
		rows = append(rows, r...)
	}
	if err := s.store.AddPendingMany(ctx, rows); err != nil {
		errs = append(errs, err)
	} else {
		s.mu.Lock()
		s.pended = pended
		s.mu.Unlock()
	}
	s.count.replanDone(time.Since(started), len(plans), recomputed, changed)
	return errors.Join(errs...)
}

// ofSchedules keeps the items of schedules (cron rules), whose pending
// report rows the replan records. A one-off rule's (announcement, emergency,
// all-clear) are written by store.AddRule(Then) right after the rule, before
// the API answers: writing them again here cost as much as the first time
// (1,000 rows for an emergency at 1,000 boxes) for nothing. Only the first replan
// after a start writes them too (as INSERT OR IGNORE, like every pending
// row), for the items in plans: the controller may have died between a rule
// and its rows. A one-off rule's rows are the boxes its targets reached when
// it was made (or at that first replan); a box added to them later shows in
// the report once it answers.
func ofSchedules(items []protocol.PlanItem, rules []scheduler.Rule) []protocol.PlanItem {
	cron := map[string]bool{}
	for _, r := range rules {
		if r.Cron != "" {
			cron[r.ID] = true
		}
	}
	var out []protocol.PlanItem
	for _, it := range items {
		if cron[it.Announcement] {
			out = append(out, it)
		}
	}
	return out
}

// rulesKey identifies a target's rules as the scheduler sees them.
func rulesKey(rules []scheduler.Rule) ([32]byte, error) {
	b, err := json.Marshal(rules)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// publishPlans publishes the plans whose items differ from what was last
// published on their topic, and returns how many it published.
func (s *Service) publishPlans(plans map[string]targetPlan, now time.Time) (int, error) {
	changed := 0
	pub := s.newPipeline()
	until := s.rulesUntil(now)
	for target, c := range plans {
		topic := s.planTopic(target)
		sum := c.publishedSum(until)
		s.mu.Lock()
		same := s.published[topic] == sum
		s.mu.Unlock()
		if same {
			continue
		}
		items := c.items
		if items == nil {
			items = []protocol.PlanItem{}
		}
		plan := protocol.Plan{Target: target, Generated: now.UTC(), Items: items, Rules: c.rules}
		if len(c.rules) > 0 {
			plan.RulesUntil = until
		}
		payload, err := s.encode(topic, protocol.KindPlan, now, plan)
		if err != nil {
			return changed, fmt.Errorf("publish plan %s: %w", target, err)
		}
		if changed++; changed == 1 {
			s.count.firstPublishUS.Store(time.Now().UnixMicro())
		}
		pub.publish(topic, payload, func(err error) {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.published[topic] = sum
			s.mu.Unlock()
			s.count.plansPublished.Add(1)
			s.count.planBytes.Add(int64(len(payload)))
		})
	}
	err := pub.wait()
	if changed > 0 {
		s.log.Info("published plans", "changed", changed, "targets", len(plans))
	}
	return changed, err
}

// pendingRows lists a pending report row for each new item of a target
// and each box it reaches, so boxes that never answer show in the report.
// items are the target's items of schedules (targetPlan.scheduled); allIDs
// are every registered box's.
func (s *Service) pendingRows(ctx context.Context, target string, items []protocol.PlanItem, allIDs []string, pended map[string]bool) ([]store.Pending, error) {
	var rows []store.Pending
	var ids []string
	for _, it := range items {
		key := target + "|" + it.ID
		s.mu.Lock()
		done := s.pended[key]
		s.mu.Unlock()
		if done {
			pended[key] = true
			continue
		}
		if ids == nil {
			var err error
			if ids, err = s.targetDevices(ctx, target, allIDs); err != nil {
				return nil, err
			}
		}
		if len(ids) == 0 {
			continue // no box to wait for yet
		}
		rows = append(rows, store.Pending{Item: it.ID, Announcement: it.Announcement, Scheduled: it.Start, Devices: ids})
		pended[key] = true
	}
	return rows, nil
}

// targetDevices lists the boxes a plan target reaches.
func (s *Service) targetDevices(ctx context.Context, target string, allIDs []string) ([]string, error) {
	switch kind, name, _ := strings.Cut(target, "/"); kind {
	case "all":
		return allIDs, nil
	case "group":
		ids, err := s.store.GroupMembers(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return []string{}, nil
		}
		return ids, err
	default:
		if _, found := slices.BinarySearch(allIDs, name); found {
			return []string{name}, nil
		}
		return []string{}, nil
	}
}
