package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// BuildPath is where boxes fetch a build from the controller.
func BuildPath(sha string) string { return "/v1/agent/builds/" + sha }

// Box statuses in a rollout besides protocol's Update* ones.
const (
	// StatusOffered: offered, and the box has not said anything of it yet.
	StatusOffered = "offered"
	// StatusUpdated: the box runs the rollout's version or a newer one.
	StatusUpdated = "updated"
	// StatusNotOffered: a target box not yet offered (a later step).
	StatusNotOffered = "not-offered"
	// StatusNoBuild: a target box of an architecture the rollout has no
	// build for: it is left out.
	StatusNoBuild = "no-build"
)

// Box is one target box's part in a rollout.
type Box struct {
	Device  string `json:"device"`
	Step    int    `json:"step"` // 0: not offered
	Online  bool   `json:"online"`
	Arch    string `json:"arch,omitempty"`
	Version string `json:"version,omitempty"` // what it runs
	Status  string `json:"status"`
	Detail  string `json:"detail,omitempty"`
}

// Status is a rollout with each target box's part.
type Status struct {
	store.Rollout
	Step  int   `json:"step"` // the latest step offered
	Boxes []Box `json:"boxes"`
}

// Engine runs the rollouts. Its methods are safe for concurrent use (the
// store serialises them); Run is its one goroutine.
type Engine struct {
	st      *store.Store
	publish func(ctx context.Context, ids ...string) error // republish those boxes' configs
	now     func() time.Time
	log     *slog.Logger
}

// New makes an engine; publish republishes boxes' configs (with Offer).
func New(st *store.Store, publish func(ctx context.Context, ids ...string) error, now func() time.Time, log *slog.Logger) *Engine {
	return &Engine{st: st, publish: publish, now: now, log: log}
}

// Run moves the active rollout on every interval until ctx ends.
func (e *Engine) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("rollout", "err", err)
			}
		}
	}
}

// Start begins rollout r (Builds, Version, Targets, Percent, CreatedBy set)
// and offers its first step.
func (e *Engine) Start(ctx context.Context, r store.Rollout) error {
	r.CreatedAt = e.now().UTC()
	if err := e.st.AddRollout(ctx, r); err != nil {
		return err
	}
	return e.Tick(ctx)
}

// Offers reads the rollout under way once and returns the update offered
// to each box (nil for none), for a publish of many boxes' configs: the
// boxes offered the rollout under way (active or paused) keep their offer
// until it ends.
func (e *Engine) Offers(ctx context.Context) (func(id string) *protocol.UpdateOffer, error) {
	none := func(string) *protocol.UpdateOffer { return nil }
	r, err := e.st.CurrentRollout(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return none, nil
	} else if err != nil {
		return nil, err
	}
	boxes, err := e.st.RolloutBoxes(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	o, err := e.offer(ctx, r)
	if err != nil {
		return nil, err
	}
	return func(id string) *protocol.UpdateOffer {
		if _, ok := boxes[id]; ok {
			return o
		}
		return nil
	}, nil
}

// Offer is the update offered to box id, nil if none (see Offers).
func (e *Engine) Offer(ctx context.Context, id string) (*protocol.UpdateOffer, error) {
	offers, err := e.Offers(ctx)
	if err != nil {
		return nil, err
	}
	return offers(id), nil
}

func (e *Engine) offer(ctx context.Context, r store.Rollout) (*protocol.UpdateOffer, error) {
	o := &protocol.UpdateOffer{Rollout: r.ID, Version: r.Version}
	for _, sha := range r.Builds {
		b, err := e.st.AgentBuild(ctx, sha)
		if err != nil {
			return nil, err
		}
		o.Builds = append(o.Builds, protocol.UpdateBuild{Arch: b.Arch, SHA256: sha, Size: b.Size, Path: BuildPath(sha)})
	}
	return o, nil
}

// Status reads the current rollout, or else the latest one.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	r, err := e.st.CurrentRollout(ctx)
	if errors.Is(err, store.ErrNotFound) {
		all, err := e.st.Rollouts(ctx)
		if err != nil {
			return Status{}, err
		}
		if len(all) == 0 {
			return Status{}, fmt.Errorf("no rollout yet (`loa agent publish` starts one): %w", store.ErrNotFound)
		}
		r = all[0]
	} else if err != nil {
		return Status{}, err
	}
	return e.status(ctx, r)
}

// status is each target box's part in r.
func (e *Engine) status(ctx context.Context, r store.Rollout) (Status, error) {
	want, err := protocol.ParseVersion(r.Version)
	if err != nil {
		return Status{}, err
	}
	targets, err := e.st.TargetDevices(ctx, r.Targets)
	if err != nil {
		return Status{}, err
	}
	offered, err := e.st.RolloutBoxes(ctx, r.ID)
	if err != nil {
		return Status{}, err
	}
	states, err := e.st.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	byID := map[string]store.DeviceStatus{}
	for _, s := range states {
		byID[s.ID] = s
	}
	arches := map[string]bool{}
	for _, sha := range r.Builds {
		if b, err := e.st.AgentBuild(ctx, sha); err == nil {
			arches[b.Arch] = true
		}
	}
	out := Status{Rollout: r}
	for _, id := range targets {
		ds := byID[id]
		b := Box{Device: id, Step: offered[id], Online: ds.Online, Arch: ds.Arch, Version: ds.Version}
		out.Step = max(out.Step, b.Step)
		v, verr := protocol.ParseVersion(ds.Version)
		switch {
		case verr == nil && v.Compare(want) >= 0:
			b.Status = StatusUpdated
		case b.Step == 0 && ds.Arch != "" && !arches[ds.Arch]:
			b.Status, b.Detail = StatusNoBuild, "no build for "+ds.Arch
		case b.Step == 0:
			b.Status = StatusNotOffered
		case ds.Update != nil && ds.Update.Rollout == r.ID:
			b.Status, b.Detail = ds.Update.Status, ds.Update.Detail
		default:
			b.Status = StatusOffered
		}
		out.Boxes = append(out.Boxes, b)
	}
	return out, nil
}

// Tick moves the active rollout on: it pauses it when an offered box
// rolled back or refused the build, finishes it when every target box runs
// the version, and offers the next step when every box offered so far
// does.
func (e *Engine) Tick(ctx context.Context) error {
	r, err := e.st.CurrentRollout(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if r.State != store.RolloutActive {
		return nil
	}
	st, err := e.status(ctx, r)
	if err != nil {
		return err
	}
	now := e.now().UTC()
	var waiting, next []Box
	for _, b := range st.Boxes {
		switch b.Status {
		case protocol.UpdateRolledBack, protocol.UpdateRefused:
			reason := fmt.Sprintf("box %s: %s", b.Device, b.Status)
			if b.Detail != "" {
				reason += ": " + b.Detail
			}
			e.log.Warn("rollout paused", "rollout", r.ID, "reason", reason)
			return e.st.SetRolloutState(ctx, r.ID, []string{store.RolloutActive}, store.RolloutPaused, reason, now)
		case StatusUpdated, protocol.UpdateHealthy, StatusNoBuild:
		case StatusNotOffered:
			next = append(next, b)
		default:
			waiting = append(waiting, b)
		}
	}
	if len(waiting) > 0 {
		return nil
	}
	if len(next) == 0 {
		e.log.Info("rollout done", "rollout", r.ID, "version", r.Version)
		if err := e.st.SetRolloutState(ctx, r.ID, []string{store.RolloutActive}, store.RolloutDone, "", now); err != nil {
			return err
		}
		return e.publish(ctx, offeredIDs(st)...) // their configs lose the offer
	}
	// Online boxes first, then by id: a step should not wait on a box
	// that is off while others could go.
	sort.SliceStable(next, func(i, j int) bool { return next[i].Online && !next[j].Online })
	n := max(1, (len(st.Boxes)*r.Percent+99)/100)
	var ids []string
	for _, b := range next[:min(n, len(next))] {
		ids = append(ids, b.Device)
	}
	slices.Sort(ids)
	if err := e.st.OfferRollout(ctx, r.ID, st.Step+1, ids, now); err != nil {
		return err
	}
	e.log.Info("rollout step", "rollout", r.ID, "step", st.Step+1, "boxes", len(ids))
	return e.publish(ctx, ids...)
}

func offeredIDs(st Status) []string {
	var ids []string
	for _, b := range st.Boxes {
		if b.Step > 0 {
			ids = append(ids, b.Device)
		}
	}
	return ids
}

// SetState pauses (paused), resumes (active) or aborts (aborted) the
// rollout under way; an abort withdraws its offer from the boxes' configs.
func (e *Engine) SetState(ctx context.Context, state, reason string) (store.Rollout, error) {
	r, err := e.st.CurrentRollout(ctx)
	if err != nil {
		return r, err
	}
	from := map[string][]string{
		store.RolloutPaused:  {store.RolloutActive},
		store.RolloutActive:  {store.RolloutPaused},
		store.RolloutAborted: {store.RolloutActive, store.RolloutPaused},
	}[state]
	if err := e.st.SetRolloutState(ctx, r.ID, from, state, reason, e.now().UTC()); err != nil {
		return r, err
	}
	r.State, r.Reason = state, reason
	switch state {
	case store.RolloutAborted:
		st, err := e.status(ctx, r)
		if err != nil {
			return r, err
		}
		return r, e.publish(ctx, offeredIDs(st)...)
	case store.RolloutActive:
		return r, e.Tick(ctx)
	}
	return r, nil
}
