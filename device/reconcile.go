package device

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// applyInbox applies every message waiting in the inbox.
func (a *Agent) applyInbox() {
	for _, m := range a.inbox.take() {
		if m.rejection != "" {
			a.reportRejection(strings.TrimPrefix(m.topic, rejectPrefix), m.rejection)
			continue
		}
		if m.config != nil {
			a.trialConfig = true // signed, even if not newer than the one held
			a.applyConfig(m)
		} else {
			a.applyPlan(m)
		}
	}
}

// applyConfig takes a new device config: groups (and so plan
// subscriptions), volumes and the media URL.
func (a *Agent) applyConfig(m inMsg) {
	if !a.config.olderThan(m.env.Issued, m.env.Seq) {
		a.log.Debug("ignoring device config not newer than the one held", "issued", m.env.Issued, "seq", m.env.Seq)
		return
	}
	a.setConfig(&heldConfig{Issued: m.env.Issued, Seq: m.env.Seq, Config: *m.config})
	a.dirty = true
	if len(m.config.ControllerKeys) > 0 {
		// Validate checked them; a rotation adds the next key, then drops the
		// old. The heartbeat at once tells the controller this box has them.
		keys, _ := protocol.NewKeyring(m.config.ControllerKeys...)
		if a.trust.setKeys(keys) {
			a.log.Info("controller keys changed", "keys", m.config.ControllerKeys)
			defer a.publishState(a.clock.Now())
		}
	}
	for target := range a.plans {
		if g, ok := strings.CutPrefix(target, "group/"); ok && !slices.Contains(m.config.Groups, g) {
			a.log.Info("left group; dropping its plan", "group", g)
			delete(a.plans, target)
		}
	}
	a.log.Info("device config", "groups", m.config.Groups, "volume", m.config.Volume, "emergency_volume", m.config.EmergencyVolume, "quiet_hours", a.quiet.String())
	if u := m.config.MediaURL; u != "" && !usableMediaURL(u) {
		a.log.Warn("ignoring unusable media_url from the device config; using the configured server", keyURL, u)
	}
	a.syncSubs()
	a.reconcile()
}

// setConfig holds c (nil: none yet) and reads its quiet hours.
func (a *Agent) setConfig(c *heldConfig) {
	a.config = c
	a.quiet = quietHours{}
	a.answerSpread.Store(0)
	if c == nil {
		return
	}
	a.answerSpread.Store(int64(c.Config.AnswerSpreadMS))
	q, err := parseQuietHours(c.Config.QuietHours, c.Config.Timezone)
	if err != nil {
		a.log.Warn("device config", keyErr, err)
	}
	a.quiet = q
}

// applyPlan takes the plan of one target if it is newer than the one held.
func (a *Agent) applyPlan(m inMsg) {
	target := m.plan.Target
	if m.kind == protocol.TopicPlanGroup && !a.inGroup(m.arg) {
		a.log.Info("ignoring plan of a group this box is not in", keyTarget, target)
		return
	}
	held := a.plans[target]
	if !held.olderThan(m.plan.Generated, m.env.Seq) {
		a.log.Debug("ignoring plan not newer than the one held", keyTarget, target, "generated", m.plan.Generated, "seq", m.env.Seq)
		return
	}
	a.plans[target] = &heldPlan{Issued: m.env.Issued, Seq: m.env.Seq, Plan: *m.plan}
	a.dirty = true
	a.log.Info("plan", keyTarget, target, "items", len(m.plan.Items), "generated", m.plan.Generated)
	a.reconcile()
}

func (a *Agent) inGroup(g string) bool {
	return a.config != nil && slices.Contains(a.config.Config.Groups, g)
}

// targetRank orders targets from the least to the most specific; a more
// specific target's version of an item wins in the merged plan.
func targetRank(t string) int {
	switch {
	case t == "all":
		return 0
	case strings.HasPrefix(t, "group/"):
		return 1
	}
	return 2
}

// merge is the union by id of the held plans' items.
func (a *Agent) merge() map[string]protocol.PlanItem {
	targets := make([]string, 0, len(a.plans))
	for t := range a.plans {
		targets = append(targets, t)
	}
	slices.SortFunc(targets, func(x, y string) int {
		return cmp.Or(cmp.Compare(targetRank(x), targetRank(y)), strings.Compare(x, y))
	})
	out := map[string]protocol.PlanItem{}
	for _, t := range targets {
		for _, it := range a.plans[t].Plan.Items {
			out[it.ID] = it
		}
	}
	return out
}

// reconcile brings the item records in line with the merged plan: new items
// are received (and fetched), items that left it before finishing are
// cancelled, cancelled items that come back are received again. Re-applying
// the same plans raises no event.
func (a *Agent) reconcile() {
	now := a.clock.Now()
	plausible := a.plausible(now)
	merged := a.merge()
	a.addRuleItems(merged, now, plausible)

	fresh := make([]protocol.PlanItem, 0)
	for id, it := range merged {
		rec, known := a.items[id]
		prev, had := a.live[id]
		a.live[id] = it
		if known && rec.Status == protocol.EventCancelled && !rec.Until.IsZero() {
			// Removed earlier, wanted again (a schedule resumed, a group
			// rejoined): it is a new arrival. Items that played, failed,
			// missed or expired stay final, so nothing plays twice; so do
			// items the queue cancelled while in the plan (an emergency
			// replaced by a newer one, a preempted item dropped).
			delete(a.items, id)
			known = false
		}
		if !known {
			fresh = append(fresh, it)
			continue
		}
		if !rec.Until.IsZero() {
			rec.Until = time.Time{} // back in a plan
			a.dirty = true
		}
		if rec.Status.Final() {
			continue
		}
		if had && prev.Media.SHA256 != it.Media.SHA256 {
			if rec.Status == protocol.EventReady {
				rec.Status = protocol.EventReceived // new media: fetch it before playing
			}
			rec.Resume = 0 // a resume point in other media means nothing
			a.dirty = true
		}
		a.updateReadiness(it, rec)
	}
	// First come, first played: number new items by start, then id.
	slices.SortFunc(fresh, func(x, y protocol.PlanItem) int {
		return cmp.Or(x.Start.Compare(y.Start), strings.Compare(x.ID, y.ID))
	})
	for _, it := range fresh {
		a.arrival++
		rec := &itemRecord{Arrival: a.arrival}
		a.items[it.ID] = rec
		a.setStatus(it, rec, protocol.EventReceived, nil)
		if plausible && now.After(it.Expires) {
			a.setStatus(it, rec, protocol.EventExpired, because(protocol.WhyExpiredBefore))
			continue
		}
		a.updateReadiness(it, rec)
	}

	for id, rec := range a.items {
		if _, ok := merged[id]; ok || a.keepRuleItem(id, plausible) {
			continue
		}
		it, had := a.live[id]
		delete(a.live, id)
		if !had {
			it = protocol.PlanItem{ID: id}
		}
		if !rec.Status.Final() {
			if a.queue.onOutput(id) {
				a.cutCurrent(cutRemove, "")
			}
			a.setStatus(it, rec, protocol.EventCancelled, because(protocol.WhyRemoved))
		}
		if rec.Until.IsZero() {
			rec.Until = later(now, it.Expires).Add(tombstoneKeep)
			a.dirty = true
		}
	}
	a.evictCache(0)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pruneTombstones forgets finished items that left the plan long ago.
func (a *Agent) pruneTombstones(now time.Time) {
	for id, rec := range a.items {
		if !rec.Until.IsZero() && now.After(rec.Until) {
			delete(a.items, id)
			a.dirty = true
		}
	}
}

// updateReadiness moves a received item to ready when its media is decoded
// (or at once if it has none), or to failed when its media cannot be
// decoded; it starts nothing itself.
func (a *Agent) updateReadiness(it protocol.PlanItem, rec *itemRecord) {
	if rec.Status != protocol.EventReceived && rec.Status != protocol.EventReady {
		return
	}
	if !hasMedia(it) { // a tone-only item: the box makes its sound itself
		if rec.Status == protocol.EventReceived {
			a.setStatus(it, rec, protocol.EventReady, nil)
		}
		return
	}
	ms := a.mediaFor(it.Media.SHA256)
	switch {
	case ms.ready && rec.Status == protocol.EventReceived:
		a.setStatus(it, rec, protocol.EventReady, nil)
	case !ms.ready && rec.Status == protocol.EventReady:
		rec.Status = protocol.EventReceived // the decoded file went missing: fetch again
		a.dirty = true
	}
	// An emergency with broken media still sounds its alert tone, and
	// reports the media when it has played.
	if ms.broken && rec.Status == protocol.EventReceived && it.Priority != protocol.Emergency {
		a.setStatus(it, rec, protocol.EventFailed, because(protocol.WhyMediaUnplayable, ms.lastErr))
	}
}

// setStatus records and reports what happened to an item.
func (a *Agent) setStatus(it protocol.PlanItem, rec *itemRecord, t protocol.EventType, why reason) {
	a.setStatusAt(it, rec, t, why, a.clock.Now())
}

// setStatusAt is setStatus for an event that happens at now (a cued item
// starts playing at its start, a moment after the decision).
func (a *Agent) setStatusAt(it protocol.PlanItem, rec *itemRecord, t protocol.EventType, why reason, now time.Time) {
	live := it.Stream != nil || rec.HeardMS+rec.MissedMS > 0
	if live && t.Final() {
		why = streamReason(rec, t, why)
	}
	text := why.text()
	rec.Status, rec.Reason, rec.Updated = t, text, now.UTC()
	a.dirty = true
	log := a.log.With(keyItem, it.ID, keyEvent, string(t))
	if text != "" {
		log = log.With(keyReason, text)
	}
	switch t {
	case protocol.EventFailed, protocol.EventMissed:
		log.Warn("item " + string(t))
	default:
		log.Info("item " + string(t))
	}
	ev := protocol.Event{Item: it.ID, Announcement: it.Announcement, Type: t, At: now.UTC(), Reason: text, Why: why}
	switch {
	case t == protocol.EventPlaying && rec.StartedAt.IsZero():
		rec.StartedAt = ev.At
	case t.Final():
		ev.Started = rec.StartedAt
		if live {
			ev.HeardMS, ev.MissedMS = rec.HeardMS, rec.MissedMS
		}
	}
	a.emit(ev)
}

// emit writes an answer-back event to the disk outbox, then queues it
// (QoS 1, not retained). If the disk fails it is sent from memory only.
func (a *Agent) emit(ev protocol.Event) {
	b, err := protocol.Encode(protocol.KindEvent, a.cfg.Site, a.nextSeq(), ev.At, ev)
	if err != nil {
		a.log.Error("encode event", keyItem, ev.Item, keyErr, err)
		return
	}
	id, err := a.events.add(b, ev.Type.Final())
	if err != nil {
		a.log.Error("cannot keep event on disk; sending it from memory", keyItem, ev.Item, keyErr, err)
		a.writeProblem(srcOutbox, err)
	} else {
		a.clearProblem(srcOutbox)
	}
	a.out.push(a.eventOp(b, id))
}

// sortTopics puts first at the front and sorts the rest, so the config is
// subscribed (and its retained message delivered) before the plans.
func sortTopics(ts []string, first string) {
	slices.SortFunc(ts, func(x, y string) int {
		switch {
		case x == first:
			return -1
		case y == first:
			return 1
		}
		return strings.Compare(x, y)
	})
}
