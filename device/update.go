package device

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/selfupdate"
)

// Over-the-air updates of the agent itself (selfupdate keeps the builds and
// decides at start which one runs). The loop owns all of it:
//
//   - a signed config's Update offer is judged here: refused when it is not
//     newer than this build, has no build for this box's arch, or its
//     download is not what it signed; rolled-back when its version failed a
//     trial before; waiting while the box plays or an emergency is on or due
//     within a minute;
//   - one download at a time runs on its own goroutine (updateRes);
//   - a verified build is installed as the trial and the agent restarts
//     into the launcher (Run returns ErrRestart; main exits ExitRestart or
//     execs the launcher), which supervises it;
//   - a trial build (selfupdate.EnvTrial) confirms once it has connected,
//     received a signed config and the broker acknowledged its state.
//
// The status is kept in <cache>/agent/state.json, so it is reported across
// restarts and rollbacks (State.Update), with the box's arch (State.Arch).

// ErrRestart is what Run returns after it installed a new build, or when
// its sound card stopped (restartOutput): the caller starts again through
// the launcher (selfupdate.Restart).
var ErrRestart = errors.New("device: the agent must start again (a new build, or a sound card to open afresh); restart through the launcher")

const (
	srcUpdate = "update" // downloads of agent builds
	// updateEmergencyLead: an emergency due this soon holds an update.
	updateEmergencyLead = time.Minute
	updatesDirName      = "agent"
)

// updateJob is the loop's view of the offer it works on.
type updateJob struct {
	key      string // rollout, version and build: a new offer starts afresh
	running  bool   // the download goroutine is out
	cancel   context.CancelFunc
	attempts int
	nextTry  time.Time
	verified string // a verified download waiting to be installed
	final    bool   // installed or refused: nothing more to do for it
}

type updateResult struct {
	key        string
	path       string
	err        error
	progressed bool
}

// openUpdates opens the build store and reads the last status.
func (a *Agent) openUpdates() error {
	s, err := selfupdate.Open(filepath.Join(a.cfg.Cache, updatesDirName))
	if err != nil {
		return err
	}
	a.updates = s
	st, err := s.Load()
	if err != nil {
		a.log.Error("agent update state", keyErr, err)
	}
	a.updStatus = st.Status
	return nil
}

// checkUpdate drives the offer of the held config and a trial's
// confirmation; tick calls it.
func (a *Agent) checkUpdate(now time.Time) {
	a.checkTrial(now)
	if a.trialRollout != "" && !a.trialConfirmed {
		return // a build on trial acts on no offer
	}
	var offer *protocol.UpdateOffer
	if a.config != nil {
		offer = a.config.Config.Update
	}
	if offer == nil {
		a.dropUpdate()
		return
	}
	build, hasBuild := pickBuild(offer, a.arch)
	key := offer.Rollout + "|" + offer.Version + "|" + build.SHA256
	if a.upd.key != key {
		a.dropUpdate()
		a.upd.key = key
	}
	if a.upd.final || a.upd.running {
		return
	}
	status := func(s, detail string) {
		a.setUpdateStatus(protocol.UpdateStatus{Rollout: offer.Rollout, Version: offer.Version, Status: s, Detail: clip(detail)})
	}
	own := ownRelease(a.version)
	ov, _ := protocol.ParseVersion(offer.Version) // Validate checked it
	if s := a.updStatus; s != nil && s.Version == offer.Version && (s.Status == protocol.UpdateHealthy || s.Status == protocol.UpdateTrial) && ov.Compare(own) == 0 {
		a.upd.final = true // this very build, running
		return
	}
	if ov.Compare(own) <= 0 {
		status(protocol.UpdateRefused, fmt.Sprintf("%s is not newer than %s", offer.Version, a.version))
		a.upd.final = true
		return
	}
	if st, err := a.updates.Load(); err == nil && st.HasFailed(offer.Version) {
		if s := a.updStatus; s == nil || s.Version != offer.Version || s.Status != protocol.UpdateRolledBack {
			status(protocol.UpdateRolledBack, offer.Version+" failed its trial on this box before; it is not tried again")
		}
		a.upd.final = true
		return
	}
	if !hasBuild {
		var archs []string
		for _, b := range offer.Builds {
			archs = append(archs, b.Arch)
		}
		status(protocol.UpdateRefused, fmt.Sprintf("no build for %s (the offer has %s)", a.arch, strings.Join(archs, ", ")))
		a.upd.final = true
		return
	}
	if why := a.updateBusy(now); why != "" {
		status(protocol.UpdateWaiting, why)
		return
	}
	if a.upd.verified != "" {
		a.installUpdate(offer, build, now)
		return
	}
	if a.upd.nextTry.After(now) {
		return
	}
	need := build.Size - a.updates.Have(build.SHA256) + roomReserve
	if free, err := a.freeSpace(a.cfg.Cache); err == nil && free < need {
		df := a.diskProblem(srcUpdate, &diskFullError{dir: a.cfg.Cache, free: free, need: need}, now)
		a.updateFailed(now, "not enough space: "+df.Error(), false)
		return
	}
	status(protocol.UpdateDownloading, "")
	ctx, cancel := context.WithCancel(a.runCtx)
	a.upd.running, a.upd.cancel = true, cancel
	f := selfupdate.Fetch{Client: a.http, URL: strings.TrimRight(a.cfg.Server, "/") + build.Path,
		User: a.cfg.ID, Password: a.cfg.Token, SHA256: build.SHA256, Size: build.Size}
	before := a.updates.Have(build.SHA256)
	a.log.Info("downloading a new agent build", "version", offer.Version, "rollout", offer.Rollout, keyURL, f.URL, keyBytes, build.Size, "have", before)
	a.updWG.Go(func() {
		defer cancel()
		path, err := a.updates.Download(ctx, f)
		r := updateResult{key: key, path: path, err: err, progressed: a.updates.Have(build.SHA256) > before}
		select {
		case a.updateRes <- r:
		case <-a.runCtx.Done():
		}
	})
}

// onUpdateFetched takes the download goroutine's result.
func (a *Agent) onUpdateFetched(r updateResult) {
	if r.key != a.upd.key {
		return // the offer changed meanwhile
	}
	a.upd.running, a.upd.cancel = false, nil
	now := a.clock.Now()
	switch {
	case r.err == nil:
		a.diskProblem(srcUpdate, nil, now)
		a.upd.verified, a.upd.attempts = r.path, 0
		a.log.Info("new agent build downloaded and verified", "build", r.path)
	case errors.Is(r.err, selfupdate.ErrTampered):
		a.log.Error("refusing a new agent build", keyErr, r.err)
		a.setUpdateStatus(a.offerStatus(protocol.UpdateRefused, selfupdate.ErrTampered.Error()))
		a.upd.final = true
	case errors.Is(r.err, context.Canceled):
	default:
		err := a.diskProblem(srcUpdate, r.err, now)
		detail := err.Error()
		if isDiskFull(err) {
			detail = "not enough space: " + detail
		}
		a.updateFailed(now, detail, r.progressed)
	}
}

// installUpdate installs the verified build as the trial and restarts.
func (a *Agent) installUpdate(offer *protocol.UpdateOffer, build protocol.UpdateBuild, now time.Time) {
	path, err := a.updates.Install(a.upd.verified, offer.Version, build.SHA256, offer.Rollout)
	a.upd.verified = "" // on failure: downloaded (or found whole) and verified again
	if err != nil {
		err = a.diskProblem(srcUpdate, err, now)
		a.updateFailed(now, "install: "+err.Error(), false)
		return
	}
	a.upd.final = true
	a.reloadUpdateStatus()
	a.log.Info("new agent build installed; restarting to try it", "version", offer.Version, "build", path)
	a.restart()
}

// updateFailed records a failed attempt; it is tried again after a backoff.
func (a *Agent) updateFailed(now time.Time, detail string, progressed bool) {
	a.upd.attempts++
	if progressed {
		a.upd.attempts = 1
	}
	a.upd.nextTry = now.Add(backoff(a.upd.attempts))
	a.log.Warn("agent update failed; will retry", keyTry, a.upd.attempts, "retry_at", a.upd.nextTry, keyErr, detail)
	a.setUpdateStatus(a.offerStatus(protocol.UpdateFailed, detail))
}

// offerStatus is a status about the held offer.
func (a *Agent) offerStatus(s, detail string) protocol.UpdateStatus {
	u := protocol.UpdateStatus{Status: s, Detail: clip(detail)}
	if a.config != nil && a.config.Config.Update != nil {
		u.Rollout, u.Version = a.config.Config.Update.Rollout, a.config.Config.Update.Version
	}
	return u
}

// dropUpdate forgets the offer worked on (withdrawn or replaced).
func (a *Agent) dropUpdate() {
	if a.upd.cancel != nil {
		a.upd.cancel()
	}
	a.upd = updateJob{}
	if _, ok := a.problems[srcUpdate]; ok {
		a.clearProblem(srcUpdate)
	}
}

// updateBusy says why the box cannot update now: it plays, an emergency is
// on or due within a minute, or an item is due and waits for its media.
func (a *Agent) updateBusy(now time.Time) string {
	if a.queue.state != queueIdle {
		return "the box is playing"
	}
	due := ""
	for id, it := range a.live {
		if rec := a.items[id]; rec == nil || rec.Status.Final() || !it.Expires.After(now) {
			continue
		}
		if it.Priority == protocol.Emergency && !it.Start.After(now.Add(updateEmergencyLead)) {
			return "an emergency is on or due within a minute"
		}
		if !it.Start.After(now) {
			due = "an announcement is due" // about to play once its media is in
		}
	}
	return due
}

// setUpdateStatus keeps s in state.json and reports it at once.
func (a *Agent) setUpdateStatus(s protocol.UpdateStatus) {
	if a.updStatus != nil && *a.updStatus == s {
		return
	}
	if err := a.updates.SetStatus(s); err != nil {
		a.log.Error("save agent update status", keyErr, err)
	}
	a.updStatus = &s
	a.log.Info("agent update", "rollout", s.Rollout, "version", s.Version, "status", s.Status, "detail", s.Detail)
	a.publishState(a.clock.Now())
}

// reloadUpdateStatus takes the status selfupdate wrote and reports it.
func (a *Agent) reloadUpdateStatus() {
	st, err := a.updates.Load()
	if err != nil || st.Status == nil {
		return
	}
	a.updStatus = st.Status
	a.publishState(a.clock.Now())
}

// checkTrial: a build on trial publishes its state once it is connected
// and has a signed config; the broker's acknowledgement confirms it.
func (a *Agent) checkTrial(now time.Time) {
	if a.trialRollout == "" || a.trialConfirmed || a.trialPushed || !a.trialConfig || !a.client.IsConnectionOpen() {
		return
	}
	st := a.currentState(now)
	a.published = st
	b, err := a.encodeState(st)
	if err != nil {
		a.log.Error("encode state", keyErr, err)
		return
	}
	a.trialPushed = true
	a.out.push(op{kind: opPublish, topics: []string{a.topics.DeviceState(a.cfg.ID)}, payload: b, retained: true, ack: a.trialAck})
}

// onTrialAck confirms the trial once the broker has the state.
func (a *Agent) onTrialAck(err error) {
	if err != nil {
		a.trialPushed = false // the next tick publishes again
		return
	}
	if err := a.updates.Confirm(a.trialRollout); err != nil {
		// Rolled back meanwhile: the supervisor stops this build.
		a.log.Error("cannot confirm the new agent build", keyErr, err)
		return
	}
	a.trialConfirmed = true
	a.log.Info("new agent build confirmed", "version", a.version, "rollout", a.trialRollout)
	a.reloadUpdateStatus()
}

// requestRestart is the default restart: Run stops cleanly and
// returns ErrRestart.
func (a *Agent) requestRestart() {
	a.restartWanted = true
	a.mu.Lock()
	cancel := a.cancel
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// pickBuild is the offer's build for arch.
func pickBuild(o *protocol.UpdateOffer, arch string) (protocol.UpdateBuild, bool) {
	for _, b := range o.Builds {
		if b.Arch == arch {
			return b, true
		}
	}
	return protocol.UpdateBuild{}, false
}

// ownRelease is v, or v0.0.0 when it is not a release (dev builds).
func ownRelease(v string) protocol.Release {
	r, err := protocol.ParseVersion(v)
	if err != nil {
		return protocol.Release{}
	}
	return r
}
