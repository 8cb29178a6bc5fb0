package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/store"
)

// RolloutOptions say how to measure an agent update rolled out to many
// simulated boxes.
type RolloutOptions struct {
	Boxes   int
	Groups  int
	Brokers []string
	Site    string
	// Server is the controller's base URL the boxes fetch builds from
	// (default: the media_url in their config, as the agent's server).
	Server string
	// Build is the agent build published (an ELF program for a box's
	// architecture carrying Version); the boxes report its architecture.
	Build   string
	Version string
	// Percent of the boxes offered the build per step (default 10).
	Percent int
	// BoxVersion is what the boxes run before (default "0.13.0").
	BoxVersion string
	// Timeout bounds connecting the boxes (default 30 s); Deadline the
	// rollout from its start to done (default 15 minutes).
	Timeout, Deadline time.Duration
	ConnectRate       float64
	// Keep leaves the simulated boxes registered (a throwaway controller).
	Keep bool
}

// RolloutStep is one step of a rollout as the boxes saw it. Times are from
// the start request.
type RolloutStep struct {
	Step  int `json:"step"`
	Boxes int `json:"boxes"`
	// Offered: the first box of the step got the offer; Healthy: the last
	// one reported healthy; Next: the next step's first offer (for the last
	// step, the rollout done).
	Offered time.Duration `json:"offered_ns"`
	Healthy time.Duration `json:"healthy_ns"`
	Next    time.Duration `json:"next_ns"`
}

// Work is the boxes' part of a step: the offer out, every download and
// report in. Wait is the rest, until the engine's next tick moved on.
func (s RolloutStep) Work() time.Duration { return s.Healthy - s.Offered }
func (s RolloutStep) Wait() time.Duration { return s.Next - s.Healthy }
func (s RolloutStep) Took() time.Duration { return s.Next - s.Offered }

// RolloutResult is what one rollout to the boxes measured.
type RolloutResult struct {
	Boxes      int    `json:"boxes"`
	Percent    int    `json:"percent"`
	Version    string `json:"version"`
	Arch       string `json:"arch"`
	BuildBytes int64  `json:"build_bytes"`
	// State is the rollout's at the end (done when it finished).
	State        string        `json:"state"`
	Reason       string        `json:"reason,omitempty"`
	RegisterTime time.Duration `json:"register_ns"`
	ConnectTime  time.Duration `json:"connect_ns"`
	// Total is from just before the start request to the rollout done
	// (its last state change on the controller).
	Total time.Duration `json:"total_ns"`
	Steps []RolloutStep `json:"steps"`
	// StepMedian is the median of the steps' Took; WorkMedian of their
	// Work. TickWait sums the steps' Wait: the time the boxes of a step
	// were all done and the engine had not looked yet (it looks every second).
	StepMedian  time.Duration `json:"step_median_ns"`
	WorkMedian  time.Duration `json:"work_median_ns"`
	TickWait    time.Duration `json:"tick_wait_ns"`
	TickPercent float64       `json:"tick_percent"` // of Total
	// Downloaded is the build bytes the boxes received over HTTP, in
	// Fetches requests; DownloadMedian and DownloadMax the boxes' times
	// for their build.
	Downloaded     int64         `json:"downloaded_bytes"`
	Fetches        int           `json:"fetches"`
	DownloadMedian time.Duration `json:"download_median_ns"`
	DownloadMax    time.Duration `json:"download_max_ns"`
	// ConfigsPerBox and ConfigBytesPerBox are the config messages (MQTT
	// topic and payload) a box received from the start to the end;
	// StateBytesPerBox what it sent (its state reports).
	ConfigsPerBox     float64 `json:"configs_per_box"`
	ConfigBytesPerBox float64 `json:"config_bytes_per_box"`
	StateBytesPerBox  float64 `json:"state_bytes_per_box"`
	// Controller is the controller's process over the rollout: CPU from the
	// start to done, RSS before it, its peak sampled every 500 ms, and the
	// process's own peak (since it started).
	ControllerCPU     float64 `json:"controller_cpu_percent"`
	ControllerRSS     int64   `json:"controller_rss_before_bytes"`
	ControllerRSSPeak int64   `json:"controller_rss_peak_bytes"`
	ControllerMaxRSS  int64   `json:"controller_max_rss_bytes"`
	BoxesCPU          float64 `json:"boxes_cpu_percent"` // this process
	// NotFinished are the boxes that do not run the version at the end
	// (Unfinished names up to 10 with their status).
	NotFinished int      `json:"not_finished"`
	Unfinished  []string `json:"unfinished,omitempty"`
}

// AgentRollout registers the boxes (which report o.BoxVersion and the
// build's architecture), publishes the build, rolls it out to all of them
// o.Percent at a time and measures until the rollout is done. The boxes
// take their offer as loa-agent does, without installing it.
func AgentRollout(ctx context.Context, c *api.Client, o RolloutOptions, log *slog.Logger) (RolloutResult, error) {
	if o.Boxes <= 0 {
		return RolloutResult{}, errors.New("boxes must be positive")
	}
	if len(o.Brokers) == 0 {
		return RolloutResult{}, errors.New("no broker for the boxes")
	}
	if o.Build == "" || o.Version == "" {
		return RolloutResult{}, errors.New("a rollout needs a build and its version")
	}
	o.Groups = max(o.Groups, 1)
	if o.Percent == 0 {
		o.Percent = 10
	}
	if o.BoxVersion == "" {
		o.BoxVersion = "0.13.0"
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Deadline <= 0 {
		o.Deadline = 15 * time.Minute
	}
	res := RolloutResult{Boxes: o.Boxes, Percent: o.Percent, Version: o.Version}

	f, err := os.Open(o.Build)
	if err != nil {
		return res, err
	}
	build, err := c.AddBuild(ctx, o.Version, f)
	f.Close()
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", o.Build, err)
	}
	res.Arch, res.BuildBytes = build.Arch, build.Size

	t0 := time.Now()
	boxes, _, err := register(ctx, c, o.Boxes, o.Groups, o.Site, device.DefaultReconnectPolicy())
	if !o.Keep {
		defer unregister(c, boxes)
	}
	if err != nil {
		return res, err
	}
	res.RegisterTime = time.Since(t0)
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	for _, b := range boxes {
		b.update = newUpdater(build.Arch, o.BoxVersion, o.Server, client)
	}
	t0 = time.Now()
	defer closeAll(boxes)
	if err := connectAll(ctx, boxes, o.Brokers, o.ConnectRate, o.Timeout); err != nil {
		return res, err
	}
	// Every box tells the controller its arch and version, as the agent's
	// first heartbeat does, before the rollout chooses.
	m, err := c.Metrics(ctx)
	if err != nil {
		return res, err
	}
	forEach(boxes, 8, func(b *box) { b.heartbeat(0) })
	if err := caughtUp(ctx, c, "states_ingested", m["states_ingested"]+int64(len(boxes)), o.Timeout); err != nil {
		return res, err
	}
	res.ConnectTime = time.Since(t0)
	log.Info("connected", "boxes", o.Boxes, "arch", build.Arch, "took", res.ConnectTime)

	before := map[*box][3]int64{}
	for _, b := range boxes {
		b.update.mu.Lock()
		before[b] = [3]int64{b.update.configs, b.update.configBytes, b.bytesOut.Load()}
		b.update.mu.Unlock()
	}
	ctrl := &probed{probe: metricsProbe(c.Metrics)}
	self := &probed{probe: metricsProbe(func(context.Context) (map[string]int64, error) { return selfMetrics(), nil })}
	_, res.ControllerRSS, _ = ctrl.probe(ctx)
	for _, p := range []*probed{ctrl, self} {
		p.cpu0, p.t0 = p.mark(ctx)
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			ctrl.sample(sampleCtx)
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	})

	start := time.Now()
	if _, err := c.StartRollout(ctx, api.RolloutRequest{Version: o.Version, Builds: []string{build.SHA256},
		Targets: store.Targets{All: true}, Percent: o.Percent}); err != nil {
		return res, fmt.Errorf("start the rollout: %w", err)
	}
	log.Info("rollout started", "boxes", o.Boxes, "percent", o.Percent)
	st, err := waitRollout(ctx, c, boxes, start.Add(o.Deadline), log)
	stopSampling()
	sampling.Wait()
	if err != nil {
		return res, err
	}
	for _, p := range []*probed{ctrl, self} {
		cpu, t := p.mark(ctx)
		p.cost.CPU = 100 * float64(cpu-p.cpu0) / float64(t.Sub(p.t0))
	}
	res.ControllerCPU, res.BoxesCPU, res.ControllerRSSPeak = ctrl.cost.CPU, self.cost.CPU, ctrl.cost.RSSPeak
	if m, err := c.Metrics(ctx); err == nil {
		res.ControllerMaxRSS = m["max_rss_bytes"]
	}
	res.State, res.Reason = st.State, st.Reason
	end := time.Now()
	if st.State == store.RolloutDone {
		end = st.UpdatedAt
	}
	res.Total = end.Sub(start)
	summariseRollout(&res, st, boxes, before, start, end)
	return res, nil
}

// waitRollout waits until every box saw the offer withdrawn (the rollout
// is done) or the rollout stopped (paused, aborted) or the deadline, and
// returns the rollout's status then.
func waitRollout(ctx context.Context, c *api.Client, boxes []*box, deadline time.Time, log *slog.Logger) (rollout.Status, error) {
	withdrawn := func() int {
		n := 0
		for _, b := range boxes {
			b.update.mu.Lock()
			if !b.update.withdrawnAt.IsZero() {
				n++
			}
			b.update.mu.Unlock()
		}
		return n
	}
	lastCheck := time.Now()
	for {
		n := withdrawn()
		// The engine's status reads every box: ask for it seldom, to see a
		// rollout that stopped rather than finished.
		if n == len(boxes) || time.Since(lastCheck) > 10*time.Second || time.Now().After(deadline) {
			lastCheck = time.Now()
			st, err := c.Rollout(ctx)
			if err != nil {
				return st, err
			}
			switch {
			case st.State == store.RolloutDone && n == len(boxes):
				return st, nil
			case st.State == store.RolloutPaused || st.State == store.RolloutAborted:
				log.Warn("the rollout stopped", "state", st.State, "reason", st.Reason)
				return st, nil
			case time.Now().After(deadline):
				log.Warn("the rollout did not finish in time", "state", st.State, "step", st.Step)
				return st, nil
			}
			log.Info("rolling out", "step", st.Step, "withdrawn", n)
		}
		select {
		case <-ctx.Done():
			return rollout.Status{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// summariseRollout folds the boxes' records and the rollout's status into
// res.
func summariseRollout(res *RolloutResult, st rollout.Status, boxes []*box, before map[*box][3]int64, start, end time.Time) {
	stepOf := map[string]int{}
	for _, b := range st.Boxes {
		stepOf[b.Device] = b.Step
		if b.Status != rollout.StatusUpdated {
			res.NotFinished++
			if len(res.Unfinished) < 10 {
				res.Unfinished = append(res.Unfinished, fmt.Sprintf("%s: %s %s", b.Device, b.Status, b.Detail))
			}
		}
	}
	steps := map[int]*RolloutStep{}
	var downloads []time.Duration
	var configs, configBytes, stateBytes int64
	for _, b := range boxes {
		u := b.update
		u.mu.Lock()
		res.Downloaded += u.downloaded
		res.Fetches += u.fetches
		if u.fetchTook > 0 {
			downloads = append(downloads, u.fetchTook)
		}
		configs += u.configs - before[b][0]
		configBytes += u.configBytes - before[b][1]
		offerAt, doneAt := u.offerAt, u.doneAt
		u.mu.Unlock()
		stateBytes += b.bytesOut.Load() - before[b][2]
		k := stepOf[b.id]
		if k == 0 || offerAt.IsZero() {
			continue
		}
		s := steps[k]
		if s == nil {
			s = &RolloutStep{Step: k, Offered: offerAt.Sub(start)}
			steps[k] = s
		}
		s.Boxes++
		s.Offered = min(s.Offered, offerAt.Sub(start))
		if doneAt.IsZero() {
			doneAt = end
		}
		s.Healthy = max(s.Healthy, doneAt.Sub(start))
	}
	for _, s := range steps {
		res.Steps = append(res.Steps, *s)
	}
	slices.SortFunc(res.Steps, func(a, b RolloutStep) int { return a.Step - b.Step })
	var took, work []time.Duration
	for i := range res.Steps {
		s := &res.Steps[i]
		s.Next = end.Sub(start)
		if i+1 < len(res.Steps) {
			s.Next = res.Steps[i+1].Offered
		}
		took = append(took, s.Took())
		work = append(work, s.Work())
		res.TickWait += max(s.Wait(), 0)
	}
	res.StepMedian, res.WorkMedian = median(took), median(work)
	if res.Total > 0 {
		res.TickPercent = 100 * float64(res.TickWait) / float64(res.Total)
	}
	if len(downloads) > 0 {
		res.DownloadMedian, res.DownloadMax = median(downloads), slices.Max(downloads)
	}
	if n := float64(len(boxes)); n > 0 {
		res.ConfigsPerBox, res.ConfigBytesPerBox, res.StateBytesPerBox = float64(configs)/n, float64(configBytes)/n, float64(stateBytes)/n
	}
}

// median of ds (sorts ds); 0 if empty.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
