package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/timesource"
)

// srcTime keeps the problem time-unknown (problems.go).
const srcTime = "time"

// timeStatus is what the time sources said last. The time-source goroutine
// and Run's start replace it whole; anyone reads it (timeState).
type timeStatus struct {
	// source is the source whose time the clock keeps while the
	// controller has not answered: rtc, nitz, gps, system, or the one a
	// same-boot saved time came from; saved or none when no exact source
	// answered.
	source string
	// exact: source placed the clock.
	exact bool
	// lower is the saved time after a reboot (a lower bound), zero if none.
	lower timesource.Reading
	// readSaved: the saved time was read (once a run).
	readSaved bool
	// overController: the controller has not answered for controllerStale
	// and source's time replaced its old estimate.
	overController bool
}

// timeKeeping is the time-source goroutine's own state (mu guards errs,
// which logSourceOnce may also use from Run's start).
type timeKeeping struct {
	every      time.Duration // timeSourceEvery; tests shorten it
	staleAfter time.Duration // controllerStale; tests shorten it
	lastSave   time.Time
	lastRTCSet time.Time
	lastSample timeSample // the controller's newest answer seen
	lastAnswer time.Time  // when it was seen
	mu         sync.Mutex
	errs       map[string]string // source → last error logged
}

func newTimeKeeping() timeKeeping {
	return timeKeeping{every: timeSourceEvery, staleAfter: controllerStale}
}

// timeState returns the last time status.
func (a *Agent) timeState() *timeStatus {
	if st := a.timeStat.Load(); st != nil {
		return st
	}
	return &timeStatus{source: timesource.None}
}

// timeSourceName is the source reported in the heartbeat.
func (a *Agent) timeSourceName() string {
	st := a.timeState()
	if a.clock.Synced() && !st.overController {
		return timesource.Controller
	}
	return st.source
}

// plausible reports whether the wall clock can be trusted to schedule: it
// is past the build date and, unless the controller or an exact source set
// it, no saved time says the box was rebooted without learning the time (a
// Raspberry Pi's fake-hwclock restores a plausible but old time).
func (a *Agent) plausible(now time.Time) bool {
	if now.Before(a.cfg.minValidTime()) {
		return false
	}
	if a.clock.Synced() {
		return true
	}
	st := a.timeState()
	return st.exact || st.lower.Time.IsZero()
}

// readTimeSources reads the sources in order and keeps the first plausible
// exact time as the clock's offset, unless the controller's time sync has
// an estimate. Without one, the saved time (read once per run) is the
// status. It reports whether the status or the offset changed. It may run
// on any goroutine.
func (a *Agent) readTimeSources(ctx context.Context) bool {
	if a.tsrc == nil {
		return false
	}
	old := a.timeState()
	if a.clock.Synced() {
		return a.replaceStaleController(ctx, old)
	}
	for _, r := range a.tsrc.exact {
		rd, err := r.Read(ctx)
		switch {
		case errors.Is(err, timesource.ErrAbsent):
			continue
		case err != nil:
			a.logSourceOnce(sourceName(r), "time source gave no time", err)
			continue
		case !rd.Exact:
			continue
		case rd.Now().Before(a.cfg.minValidTime()):
			a.logSourceOnce(sourceName(r), "time source is before the build date", fmt.Errorf("%s reads %v", rd.Source, rd.Now().UTC()))
			continue
		}
		return a.useReading(rd, old)
	}
	if old.exact {
		// A source placed the clock earlier in this run (a GPS that lost
		// its fix since): the offset it gave still holds.
		return false
	}
	st := &timeStatus{source: timesource.None, lower: old.lower}
	if !old.readSaved && a.tsrc.saved != nil {
		st.readSaved = true
		rd, err := a.tsrc.saved.Read(ctx)
		switch {
		case err == nil && rd.Exact && !rd.Now().Before(a.cfg.minValidTime()):
			// The agent restarted within the boot: the kernel's boot clock
			// carried the time.
			return a.useReading(rd, old)
		case err == nil:
			st.lower = rd
		case !errors.Is(err, timesource.ErrAbsent):
			a.log.Warn("saved time", keyErr, err)
		}
	} else {
		st.readSaved = old.readSaved
	}
	if !st.lower.Time.IsZero() {
		st.source = timesource.Saved
		// The box's clock is at least the lower bound: events and
		// heartbeats say so rather than 1970.
		a.setSourceOffset(st.lower.Now(), true)
	}
	a.timeStat.Store(st)
	return st.source != old.source
}

// replaceStaleController: a box cut off from its controller for
// controllerStale keeps time by an exact source rather than by the
// controller's last estimate on its own clock (a Pi's crystal drifts tens of
// ppm; a DS3231 2 ppm). The controller's next answer wins again.
func (a *Agent) replaceStaleController(ctx context.Context, old *timeStatus) bool {
	if !a.controllerStale() {
		if old.overController {
			a.timeStat.Store(&timeStatus{source: old.source, exact: old.exact, lower: old.lower, readSaved: old.readSaved})
			a.log.Info("time from the controller again")
			return true
		}
		return false
	}
	for _, r := range a.tsrc.exact {
		rd, err := r.Read(ctx)
		if err != nil || !rd.Exact || rd.Now().Before(a.cfg.minValidTime()) {
			continue
		}
		a.sync.mu.Lock()
		off := rd.Now().Sub(a.clock.base.Now())
		d := off - a.clock.Offset()
		a.clock.offset.Store(int64(off))
		a.sync.mu.Unlock()
		a.timeStat.Store(&timeStatus{source: rd.Source, exact: true, lower: old.lower, readSaved: old.readSaved, overController: true})
		if !old.overController || old.source != rd.Source || d > syncLogStep || d < -syncLogStep {
			a.log.Info("the controller has not answered for a while: time from "+rd.Source, "moved", d)
			return true
		}
		return false
	}
	return false
}

// controllerStale reports whether the controller's time sync has had no
// answer for staleAfter (an answer adds a sample). It runs on the
// time-source goroutine, which owns lastAnswer and lastSample.
func (a *Agent) controllerStale() bool {
	a.sync.mu.Lock()
	var last timeSample
	if n := len(a.sync.samples); n > 0 {
		last = a.sync.samples[n-1]
	}
	a.sync.mu.Unlock()
	if last != a.tk.lastSample || a.tk.lastAnswer.IsZero() {
		a.tk.lastSample, a.tk.lastAnswer = last, time.Now()
	}
	return time.Since(a.tk.lastAnswer) > a.tk.staleAfter
}

// useReading sets the clock's offset from an exact reading.
func (a *Agent) useReading(rd timesource.Reading, old *timeStatus) bool {
	moved := a.setSourceOffset(rd.Now(), false)
	st := &timeStatus{source: rd.Source, exact: true, lower: old.lower, readSaved: old.readSaved}
	a.timeStat.Store(st)
	if st.source != old.source || moved {
		a.log.Info("time from "+rd.Source, "now", rd.Now().UTC(), "offset", a.clock.Offset())
		return true
	}
	return false
}

// setSourceOffset makes the clock read t now (only forward if atLeast),
// unless the controller's time sync has an estimate: its answers set the
// offset under the same lock. It reports whether the offset moved by more
// than syncLogStep.
func (a *Agent) setSourceOffset(t time.Time, atLeast bool) bool {
	a.sync.mu.Lock()
	defer a.sync.mu.Unlock()
	if a.clock.Synced() {
		return false
	}
	old := a.clock.Offset()
	off := t.Sub(a.clock.base.Now())
	if atLeast && off < old {
		return false
	}
	a.clock.offset.Store(int64(off))
	d := off - old
	return d > syncLogStep || d < -syncLogStep
}

// logSourceOnce logs a source's failure when it differs from the last one.
func (a *Agent) logSourceOnce(src, msg string, err error) {
	a.tk.mu.Lock()
	defer a.tk.mu.Unlock()
	if a.tk.errs == nil {
		a.tk.errs = map[string]string{}
	}
	if a.tk.errs[src] == err.Error() {
		return
	}
	a.tk.errs[src] = err.Error()
	a.log.Warn(msg, "source", src, keyErr, err)
}

// runTimeSources reads the sources every timeSourceEvery until the
// controller answers; then it keeps the time: saves it and sets the RTC.
func (a *Agent) runTimeSources(ctx context.Context) {
	t := time.NewTimer(a.tk.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.readTimeSources(ctx) {
			signal(a.timeChanged)
		}
		if a.clock.Synced() {
			a.keepTime(ctx)
		}
		t.Reset(a.tk.every)
	}
}

// keepTime saves the controller's time every timeSaveEvery and sets the
// RTC from it every rtcSetEvery, while the controller answers (connected).
func (a *Agent) keepTime(ctx context.Context) {
	if !a.client.IsConnectionOpen() || a.timeState().overController {
		return // the offset may be old: do not carry it into the RTC
	}
	if a.tk.lastSave.IsZero() || time.Since(a.tk.lastSave) >= timeSaveEvery {
		a.saveTime()
	}
	if a.tsrc != nil && a.tsrc.rtc != nil && (a.tk.lastRTCSet.IsZero() || time.Since(a.tk.lastRTCSet) >= rtcSetEvery) {
		a.tk.lastRTCSet = time.Now()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.tsrc.rtc.Set(sctx, a.clock.Now())
		cancel()
		switch {
		case errors.Is(err, timesource.ErrAbsent):
		case err != nil:
			a.logSourceOnce("rtc-set", "cannot set the RTC", err)
		default:
			a.log.Debug("RTC set from the controller's time")
		}
	}
}

// saveTime writes the time now if a trusted source placed it (not a lower
// bound, not a clock that only looks plausible).
func (a *Agent) saveTime() {
	if a.tsrc == nil || a.tsrc.saved == nil {
		return
	}
	src := a.timeSourceName()
	if !a.clock.Synced() && !a.timeState().exact {
		return
	}
	a.tk.lastSave = time.Now()
	if err := a.tsrc.saved.Save(a.clock.Now(), src); err != nil {
		a.logSourceOnce("saved", "cannot save the time", err)
	}
}

// onTimeSource runs on the loop when a source placed or moved the clock.
func (a *Agent) onTimeSource() {
	a.publishState(a.clock.Now())
}

// unplacedTick runs on every tick: while the clock is not placed it
// reports why, and plays the emergencies that arrive (they are "now": they
// need no clock). now is the clock's time, whatever it is worth.
func (a *Agent) unplacedTick(now time.Time, placed bool) {
	if a.bootItems == nil {
		a.bootItems = make(map[string]bool, len(a.items))
		for id := range a.items {
			a.bootItems[id] = true
		}
	}
	if placed {
		a.clearProblem(srcTime)
		return
	}
	a.setProblem(srcTime, protocol.Problem{Code: protocol.ProblemTimeUnknown, Level: protocol.LevelError,
		Detail: a.unplacedReason(), Subject: a.timeState().source}, now)

	vnow, waiting := a.arrivedEmergencies()
	if len(waiting) == 0 {
		return
	}
	// The queue decides at the newest emergency's start: the controller's
	// time when it was sent, near enough for what is due now.
	d := a.queue.decide(vnow, cueLead, waiting, a.quiet)
	if d.start != nil {
		a.log.Warn("playing an emergency without knowing the time", keyItem, d.start.item.ID)
	}
	a.apply(d, vnow)
}

// arrivedEmergencies are the emergencies the box may play without a placed
// clock: they arrived in this run, start no later than their plan was made
// (plus emergencySlack: they were due when sent), and have not expired
// before the earliest time the box can be at. vnow is the newest one's
// start.
func (a *Agent) arrivedEmergencies() (vnow time.Time, waiting []candidate) {
	lower := a.cfg.minValidTime()
	if st := a.timeState(); !st.lower.Time.IsZero() && st.lower.Now().After(lower) {
		lower = st.lower.Now()
	}
	made := map[string]time.Time{} // item → the newest plan that carries it
	for _, hp := range a.plans {
		for _, it := range hp.Plan.Items {
			if hp.Plan.Generated.After(made[it.ID]) {
				made[it.ID] = hp.Plan.Generated
			}
		}
	}
	for id, it := range a.live {
		rec := a.items[id]
		if it.Priority != protocol.Emergency || rec == nil || rec.Status.Final() || a.queue.onOutput(id) || a.bootItems[id] {
			continue
		}
		if g, ok := made[id]; !ok || it.Start.After(g.Add(emergencySlack)) || !it.Expires.After(lower) {
			continue // a drill for later, or long over
		}
		a.updateReadiness(it, rec)
		if rec.Status.Final() {
			continue
		}
		waiting = append(waiting, a.candidate(it, rec))
		if it.Start.After(vnow) {
			vnow = it.Start
		}
	}
	return vnow, waiting
}

// unplacedReason says, for the problem, why the box does not know the time.
func (a *Agent) unplacedReason() string {
	st := a.timeState()
	if !st.lower.Time.IsZero() {
		return fmt.Sprintf("no time source answered since the restart: the time saved before it (%s) is only a lower bound; timed items wait for the controller, an RTC, the modem or GPS",
			st.lower.Time.Format(time.DateTime+" MST"))
	}
	return fmt.Sprintf("the clock is before the agent's build date (%s) and no time source answered; timed items wait for the controller, an RTC, the modem or GPS",
		a.cfg.minValidTime().Format(time.DateOnly))
}
