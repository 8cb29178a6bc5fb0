package device

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
)

// Recurring rules on the box. A plan carries, beside its items, the
// recurring rules of its target (protocol.Plan.Rules). The box turns them
// into items itself with scheduler.Expand, the controller's own function,
// over a rolling window: items that started up to scheduler.Keep ago and
// items starting within ruleLookahead, until the plan's RulesUntil. Online,
// those are items the plan has too (same ids: the plan's version wins, and
// nothing plays twice); cut off for weeks, the box keeps its daily
// programme. A newer plan replaces its target's rules at once: a rule
// paused or deleted meanwhile stops then.

// ruleLookahead is how far ahead the box makes items of its rules. It is
// within the controller's horizon, so an online box makes no item its plan
// does not have yet.
const ruleLookahead = 24 * time.Hour

// defaultRulesFor is how long after its plan was generated a box expands
// rules whose plan does not say (RulesUntil zero).
const defaultRulesFor = 30 * 24 * time.Hour

// ruleState is the agent's view of its rules, owned by the loop.
type ruleState struct {
	at     time.Time // the clock when the rules were last expanded
	next   time.Time // when their items next change (zero: never)
	stale  bool      // not expanded since the clock became plausible
	any    bool      // the held plans have rules to expand
	scheds map[string]*scheduler.Scheduler
	bad    map[string]string // rule id → why it cannot be expanded, logged once
}

// heldRule is a rule of a held plan, ready to expand.
type heldRule struct {
	rule  scheduler.Rule
	loc   *time.Location
	until time.Time // no item starts at or after it
	media protocol.Media
	prio  protocol.Priority
}

// heldRules lists the rules of the held plans by id, a more specific
// target's version winning as in merge. Rules the box cannot expand (a zone
// it does not know, a spec its parser refuses) are left out, and logged
// once.
func (a *Agent) heldRules() map[string]heldRule {
	targets := make([]string, 0, len(a.plans))
	for t, hp := range a.plans {
		if len(hp.Plan.Rules) > 0 {
			targets = append(targets, t)
		}
	}
	slices.SortFunc(targets, func(x, y string) int {
		return cmp.Or(cmp.Compare(targetRank(x), targetRank(y)), strings.Compare(x, y))
	})
	out := map[string]heldRule{}
	for _, t := range targets {
		p := a.plans[t].Plan
		until := p.RulesUntil
		if until.IsZero() {
			until = p.Generated.Add(defaultRulesFor)
		}
		for _, pr := range p.Rules {
			r, loc, err := scheduler.FromPlanRule(pr)
			if err != nil {
				if a.rules.bad == nil {
					a.rules.bad = map[string]string{}
				}
				if a.rules.bad[pr.ID] != err.Error() {
					a.rules.bad[pr.ID] = err.Error()
					a.log.Warn("cannot expand a recurring rule; its plan items still play", keyTarget, t, "rule", pr.ID, keyErr, err)
				}
				delete(out, pr.ID)
				continue
			}
			out[pr.ID] = heldRule{rule: r, loc: loc, until: until, media: pr.Media, prio: pr.Priority}
		}
	}
	return out
}

// addRuleItems adds to merged the items of the held rules of interest at
// now that the plans do not have, and notes when they next change. While
// the clock cannot be trusted it adds none (see keepRuleItem).
func (a *Agent) addRuleItems(merged map[string]protocol.PlanItem, now time.Time, plausible bool) {
	held := a.heldRules()
	a.rules.at, a.rules.next = now, time.Time{}
	a.rules.stale, a.rules.any = !plausible, len(held) > 0
	if !plausible {
		return
	}
	byZone := map[*time.Location][]scheduler.Rule{}
	for _, h := range held {
		if !now.Before(h.until) {
			continue // the controller's word on it is too old
		}
		to := now.Add(ruleLookahead)
		if h.until.Before(to) {
			to = h.until
		}
		items, err := scheduler.Expand(h.rule, h.loc, now.Add(-scheduler.Keep), to)
		if err != nil { // FromPlanRule parsed it: cannot happen
			a.log.Warn("expand a recurring rule", "rule", h.rule.ID, keyErr, err)
			continue
		}
		for _, it := range items {
			if _, ok := merged[it.ID]; !ok {
				merged[it.ID] = it
			}
		}
		byZone[h.loc] = append(byZone[h.loc], h.rule)
		if a.rules.next.IsZero() || h.until.Before(a.rules.next) {
			a.rules.next = h.until
		}
	}
	for loc, rules := range byZone {
		if a.rules.scheds == nil {
			a.rules.scheds = map[string]*scheduler.Scheduler{}
		}
		s := a.rules.scheds[loc.String()]
		if s == nil {
			s = scheduler.New(loc, ruleLookahead)
			a.rules.scheds[loc.String()] = s
		}
		// From just before now: an occurrence exactly a lookahead away is
		// not in the window at now but is a moment later (rulesDue).
		if t := s.NextChange(rules, now.Add(-time.Nanosecond)); !t.IsZero() && (a.rules.next.IsZero() || t.Before(a.rules.next)) {
			a.rules.next = t
		}
	}
}

// rulesDue reports whether the rules' items must be made again at now: the
// window passed their next change, the clock went back by more than a
// minute, or they were last left alone for want of a plausible clock.
// Nothing is urgent: an occurrence enters the window a lookahead before its
// start.
func (a *Agent) rulesDue(now time.Time) bool {
	if !a.rules.any {
		return false
	}
	return a.rules.stale || now.Before(a.rules.at.Add(-time.Minute)) || (!a.rules.next.IsZero() && now.After(a.rules.next))
}

// keepRuleItem reports whether the item id, absent from the merged plan,
// must stay as it is: while the clock cannot be trusted the box makes no
// items of its rules, and an item it made of one before is not cancelled.
func (a *Agent) keepRuleItem(id string, plausible bool) bool {
	if plausible {
		return false
	}
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return false
	}
	if _, err := strconv.ParseInt(id[i+1:], 10, 64); err != nil {
		return false
	}
	for _, hp := range a.plans {
		for _, r := range hp.Plan.Rules {
			if r.ID == id[:i] && !r.Paused {
				return true
			}
		}
	}
	return false
}

// ruleMedia is the media of the held rules that are not paused: it stays
// in the cache (evictCache) and is fetched ahead (dispatchFetches), even
// when the next occurrence is weeks away.
func (a *Agent) ruleMedia() []heldRule {
	var out []heldRule
	for _, hp := range a.plans {
		for _, r := range hp.Plan.Rules {
			if !r.Paused && r.Media != (protocol.Media{}) {
				out = append(out, heldRule{media: r.Media, prio: r.Priority})
			}
		}
	}
	return out
}
