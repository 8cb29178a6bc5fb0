package device

import (
	"time"

	"github.com/loa-commune/loa/protocol"
)

// schedule makes the decisions due at now: the queue rules on the waiting
// items (expired, missed, replaced, which starts, which is cut) and the
// loop applies what it decided.
func (a *Agent) schedule(now time.Time) {
	var waiting []candidate
	for id, it := range a.live {
		rec := a.items[id]
		if rec == nil || rec.Status.Final() || a.queue.onOutput(id) {
			continue
		}
		a.updateReadiness(it, rec)
		if rec.Status.Final() {
			continue
		}
		waiting = append(waiting, a.candidate(it, rec))
	}
	a.apply(a.queue.decide(now, cueLead, waiting, a.quiet), now)
}

// candidate is the queue's view of a waiting item.
func (a *Agent) candidate(it protocol.PlanItem, rec *itemRecord) candidate {
	c := candidate{
		item:      it,
		arrival:   rec.Arrival,
		started:   rec.Started,
		preempted: rec.Status == protocol.EventPreempted,
		resume:    rec.Resume,
	}
	switch {
	case !hasMedia(it):
		c.ready = true
	case rec.Status == protocol.EventPreempted:
		c.ready = a.mediaFor(it.Media.SHA256).ready
	default:
		c.ready = rec.Status == protocol.EventReady
	}
	if !c.ready {
		c.problem = a.mediaProblem(it.Media.SHA256)
	}
	if it.Stream != nil {
		c.until = a.streamUntil(it)
	}
	return c
}

// apply carries out the queue's decision at now: the items it ended, a cut
// of what plays, the item to start.
func (a *Agent) apply(d decision, now time.Time) {
	for _, v := range d.final {
		if it, ok := a.live[v.id]; ok {
			a.setStatus(it, a.items[v.id], v.event, v.why)
		}
	}
	if d.cut != cutNone {
		a.cutCurrent(d.cut, d.by)
	}
	if d.start != nil {
		a.startPlayback(*d.start, now)
	}
}
