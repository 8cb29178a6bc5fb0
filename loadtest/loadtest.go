package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// Options say how big a test to run.
type Options struct {
	Boxes     int
	Groups    int    // boxes are spread over this many groups
	Rounds    int    // announcements sent, one after the other
	Emergency bool   // send emergencies (tone only) rather than normal announcements
	Broker    string // tcp://host:port the boxes connect to
	Site      string
	Timeout   time.Duration // per round
}

// Result is what a run measured.
type Result struct {
	Boxes         int             `json:"boxes"`
	Rounds        int             `json:"rounds"`
	Kind          string          `json:"kind"`
	RegisterTime  time.Duration   `json:"register_ns"`
	ConnectTime   time.Duration   `json:"connect_ns"`
	Latencies     []time.Duration `json:"-"`
	P50           time.Duration   `json:"p50_ns"`
	P95           time.Duration   `json:"p95_ns"`
	P99           time.Duration   `json:"p99_ns"`
	Max           time.Duration   `json:"max_ns"`
	Missing       int             `json:"missing"` // box-rounds that never got the item
	EventsPerSec  float64         `json:"events_per_sec"`
	PlanBytesMean float64         `json:"plan_bytes_mean"`
}

// Run registers the boxes with the controller behind c, connects them, and
// sends Rounds announcements to all of them, measuring from just before
// each request to each box's receipt of the plan that holds it.
func Run(ctx context.Context, c *api.Client, o Options, log *slog.Logger) (Result, error) {
	if o.Boxes <= 0 || o.Rounds <= 0 {
		return Result{}, errors.New("boxes and rounds must be positive")
	}
	o.Groups = max(o.Groups, 1)
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	res := Result{Boxes: o.Boxes, Rounds: o.Rounds, Kind: "announcement"}
	if o.Emergency {
		res.Kind = "emergency"
	}
	t0 := time.Now()
	boxes, err := register(ctx, c, o.Boxes, o.Groups, o.Site, device.DefaultReconnectPolicy())
	if err != nil {
		return res, err
	}
	res.RegisterTime = time.Since(t0)
	log.Info("registered", "boxes", o.Boxes, "took", res.RegisterTime)

	t0 = time.Now()
	defer closeAll(boxes)
	if err := connectAll(ctx, boxes, o.Broker, o.Timeout); err != nil {
		return res, err
	}
	res.ConnectTime = time.Since(t0)
	log.Info("connected", "boxes", o.Boxes, "took", res.ConnectTime)

	events0 := totalEvents(boxes)
	tEvents := time.Now()
	for round := 0; round < o.Rounds; round++ {
		start := time.Now()
		var id string
		if o.Emergency {
			a, err := c.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}, Tone: protocol.ToneSiren})
			if err != nil {
				return res, err
			}
			id = a.ID
		} else {
			return res, errors.New("only emergencies are measured so far: pass Emergency")
		}
		err := waitAll(ctx, boxes, o.Timeout, func(b *box) bool { _, ok := b.arrival(id); return ok })
		for _, b := range boxes {
			if at, ok := b.arrival(id); ok {
				res.Latencies = append(res.Latencies, at.Sub(start))
			} else {
				res.Missing++
			}
		}
		if err != nil {
			log.Warn("round timed out", "round", round, "err", err)
		}
		if o.Emergency {
			if _, err := c.CancelEmergency(ctx, id); err != nil {
				return res, err
			}
		}
	}
	if d := time.Since(tEvents).Seconds(); d > 0 {
		res.EventsPerSec = float64(totalEvents(boxes)-events0) / d
	}
	var planBytes, plans int64
	for _, b := range boxes {
		planBytes += b.planBytes.Load()
		plans += b.plans.Load()
	}
	if plans > 0 {
		res.PlanBytesMean = float64(planBytes) / float64(plans)
	}
	slices.Sort(res.Latencies)
	if n := len(res.Latencies); n > 0 {
		res.P50, res.P95, res.P99, res.Max = res.Latencies[n*50/100], res.Latencies[n*95/100], res.Latencies[n*99/100], res.Latencies[n-1]
	}
	return res, nil
}

// register adds n simulated boxes to the controller behind c, spread over
// groups, each following policy when it reconnects.
func register(ctx context.Context, c *api.Client, n, groups int, site string, policy device.ReconnectPolicy) ([]*box, error) {
	boxes := make([]*box, n)
	for i := range boxes {
		id := fmt.Sprintf("sim-%05d", i)
		group := fmt.Sprintf("simg-%03d", i%groups)
		r, err := c.AddDevice(ctx, api.AddDeviceRequest{ID: id, Groups: []string{group}})
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", id, err)
		}
		boxes[i] = &box{id: id, token: r.Token, topics: protocol.NewTopics(site), site: site, policy: policy,
			seen: map[string]time.Time{}, last: map[string]time.Time{}}
	}
	return boxes, nil
}

// connectAll connects the boxes, 50 at a time, and waits until every one
// has its config and plans.
func connectAll(ctx context.Context, boxes []*box, broker string, timeout time.Duration) error {
	var connectErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50) // do not stampede the broker
	for _, b := range boxes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.connect(broker); err != nil {
				mu.Lock()
				connectErr = errors.Join(connectErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if connectErr != nil {
		return connectErr
	}
	if err := waitAll(ctx, boxes, timeout, func(b *box) bool { return b.ready.Load() }); err != nil {
		return fmt.Errorf("boxes did not get their config and plans: %w", err)
	}
	return nil
}

// closeAll closes every box, 50 at a time (each waits for its answers in
// flight).
func closeAll(boxes []*box) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for _, b := range boxes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b.close()
		}()
	}
	wg.Wait()
}

func totalEvents(boxes []*box) int64 {
	var n int64
	for _, b := range boxes {
		n += b.events.Load()
	}
	return n
}

func waitAll(ctx context.Context, boxes []*box, timeout time.Duration, done func(*box) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, b := range boxes {
			if !done(b) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d boxes not done after %s", missing, len(boxes), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
