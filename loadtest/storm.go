package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// StormOptions say how to measure a reconnect storm.
type StormOptions struct {
	Boxes  int
	Groups int    // boxes are spread over this many groups
	Broker string // tcp://host:port the boxes connect to
	Site   string
	// Reconnect is the boxes' policy; a zero Spread means
	// device.DefaultReconnectPolicy(), the agent's.
	Reconnect device.ReconnectPolicy
	// Timeout bounds each wait: all boxes connected, all back after the
	// restart, all holding the emergency sent after it.
	Timeout time.Duration
	// Restart stops the broker the boxes are connected to, so every
	// session drops, and starts it again at the same address (for the
	// embedded broker: the whole controller, on the same data). It returns
	// once the controller behind the api.Client answers again.
	Restart func(ctx context.Context) error
}

// StormResult is what a reconnect storm measured. Times are from the moment
// Restart was called.
type StormResult struct {
	Boxes  int           `json:"boxes"`
	Spread time.Duration `json:"spread_ns"` // the boxes' reconnect policy
	Cap    time.Duration `json:"cap_ns"`
	// RestartTime is how long Restart took (broker down and up again, the
	// controller republishing every config and plan).
	RestartTime time.Duration `json:"restart_ns"`
	// PerSecond counts the boxes whose new session began in each second;
	// PeakPerSecond is the largest count.
	PerSecond     []int `json:"connects_per_second"`
	PeakPerSecond int   `json:"peak_connects_per_second"`
	// AllBack is when the last box had a session again.
	AllBack time.Duration `json:"all_back_ns"`
	// Delays are each box's time from losing its session to having a new
	// one.
	Delays []time.Duration `json:"-"`
	P50    time.Duration   `json:"p50_ns"`
	P99    time.Duration   `json:"p99_ns"`
	Max    time.Duration   `json:"max_ns"`
	// Attempts counts the boxes' reconnect attempts (the first included);
	// more than Boxes means some found the broker still down.
	Attempts int64 `json:"attempts"`
	NotBack  int   `json:"not_back"` // boxes without a session at the end
	// LostPlan counts boxes that did not get their plan again (holding the
	// emergency started before the restart).
	LostPlan int `json:"lost_plan"`
	// Missed counts boxes that did not get an emergency started once all
	// were back; EmergencyP99 is how long the others took.
	Missed       int           `json:"missed"`
	EmergencyP99 time.Duration `json:"emergency_p99_ns"`
}

// Storm registers the boxes with the controller behind c and connects
// them; starts an emergency for all and waits until every box holds it;
// calls Restart and records when each box loses its session and when it has
// a new one; checks that every box gets its plan (with that emergency)
// again; then starts a second emergency and checks that every box gets it.
// It closes every session it opened before it returns.
func Storm(ctx context.Context, c *api.Client, o StormOptions, log *slog.Logger) (StormResult, error) {
	if o.Boxes <= 0 {
		return StormResult{}, errors.New("boxes must be positive")
	}
	if o.Restart == nil {
		return StormResult{}, errors.New("storm: no way to restart the broker")
	}
	o.Groups = max(o.Groups, 1)
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Reconnect.Spread <= 0 {
		o.Reconnect = device.DefaultReconnectPolicy()
	}
	res := StormResult{Boxes: o.Boxes, Spread: o.Reconnect.Spread, Cap: max(o.Reconnect.Cap, o.Reconnect.Spread)}
	boxes, _, err := register(ctx, c, o.Boxes, o.Groups, o.Site, o.Reconnect)
	if err != nil {
		return res, err
	}
	defer closeAll(boxes)
	if err := connectAll(ctx, boxes, []string{o.Broker}, 0, o.Timeout); err != nil {
		return res, err
	}
	before, err := c.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}, Tone: protocol.ToneSiren})
	if err != nil {
		return res, fmt.Errorf("start the emergency before the restart: %w", err)
	}
	if err := waitAll(ctx, boxes, o.Timeout, func(b *box) bool { _, ok := b.arrival(before.ID); return ok }); err != nil {
		return res, fmt.Errorf("emergency before the restart: %w", err)
	}
	log.Info("connected; restarting the broker", "boxes", o.Boxes)

	t0 := time.Now()
	if err := o.Restart(ctx); err != nil {
		return res, fmt.Errorf("restart the broker: %w", err)
	}
	res.RestartTime = time.Since(t0)
	log.Info("broker restarted", "took", res.RestartTime)
	back := func(b *box) bool { _, at := b.reconnect(); return at.After(t0) }
	if err := waitAll(ctx, boxes, o.Timeout, back); err != nil {
		log.Warn("not every box came back", "err", err)
	}
	// The plan normally comes with the new session; allow a little more
	// for the last box's.
	replanned := func(b *box) bool { return b.planHad(before.ID, t0) }
	if err := waitAll(ctx, boxes, 10*time.Second, replanned); err != nil {
		log.Warn("not every box got its plan again", "err", err)
	}
	for _, b := range boxes {
		lost, at := b.reconnect()
		if !at.After(t0) {
			res.NotBack++
		} else {
			res.Delays = append(res.Delays, at.Sub(lost))
			sec := int(at.Sub(t0) / time.Second)
			for len(res.PerSecond) <= sec {
				res.PerSecond = append(res.PerSecond, 0)
			}
			res.PerSecond[sec]++
			res.AllBack = max(res.AllBack, at.Sub(t0))
		}
		if !replanned(b) {
			res.LostPlan++
		}
		res.Attempts += b.attempts.Load()
	}
	if len(res.PerSecond) > 0 {
		res.PeakPerSecond = slices.Max(res.PerSecond)
	}
	slices.Sort(res.Delays)
	if n := len(res.Delays); n > 0 {
		res.P50, res.P99, res.Max = res.Delays[n*50/100], res.Delays[n*99/100], res.Delays[n-1]
	}
	log.Info("boxes back", "not_back", res.NotBack, "all_back", res.AllBack, "peak_per_second", res.PeakPerSecond)

	start := time.Now()
	after, err := c.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}, Tone: protocol.ToneSiren})
	if err != nil {
		return res, fmt.Errorf("start the emergency after the restart: %w", err)
	}
	if err := waitAll(ctx, boxes, o.Timeout, func(b *box) bool { _, ok := b.arrival(after.ID); return ok }); err != nil {
		log.Warn("not every box got the emergency after the restart", "err", err)
	}
	var got []time.Duration
	for _, b := range boxes {
		if at, ok := b.arrival(after.ID); ok {
			got = append(got, at.Sub(start))
		} else {
			res.Missed++
		}
	}
	slices.Sort(got)
	if n := len(got); n > 0 {
		res.EmergencyP99 = got[n*99/100]
	}
	for _, id := range []string{after.ID, before.ID} {
		if _, err := c.CancelEmergency(ctx, id); err != nil {
			return res, fmt.Errorf("cancel emergency %s: %w", id, err)
		}
	}
	return res, nil
}
