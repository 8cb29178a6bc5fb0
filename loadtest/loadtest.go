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

// Kinds of round Run measures.
const (
	KindEmergency    = "emergency"    // a tone-only emergency for all: boxes play it at once
	KindAnnouncement = "announcement" // a "now" announcement for all: boxes get it ahead of its start
)

// Options say how big a test to run.
type Options struct {
	Boxes  int
	Groups int    // boxes are spread over this many groups
	Rounds int    // emergencies or announcements sent, one after the other
	Kind   string // KindEmergency (default) or KindAnnouncement
	// Brokers are the URLs boxes connect to. Box i tries them in turn from
	// Brokers[i % len(Brokers)], so the boxes spread over a cluster's
	// nodes and each can fail over to the others.
	Brokers []string
	Site    string
	Timeout time.Duration // per round
	// ConnectRate paces the boxes' first connections, boxes per second (0:
	// 50 at a time, as fast as the broker takes them). Boxes of a province
	// come online over minutes, not all in the same second; a NATS cluster
	// creates a JetStream consumer per subscription and falls behind when
	// 1,000 sessions open at once on two cores.
	ConnectRate float64
	// Schedules are cron schedules added before the rounds, spread over
	// the groups (a site's daily bulletins), so the rounds and changes run
	// against a controller that has them.
	Schedules int
	// Heartbeats each box sends after the rounds, all at once, to measure
	// how fast the controller stores them.
	Heartbeats int
	// Changes measures a new schedule for one group and for every group.
	Changes bool
	// Floor measures the raw broker the same way, when set.
	Floor *FloorOptions
	// Connections counts the broker's client connections, for a broker
	// whose count the controller does not know (external); nil: unknown.
	Connections func(ctx context.Context) (int64, error)
	// Keep leaves the simulated boxes registered (a throwaway controller);
	// otherwise they and the schedules are removed at the end.
	Keep bool
}

// Latency summarises delays from one moment to each box.
type Latency struct {
	N       int           `json:"n"`
	Missing int           `json:"missing"` // box-rounds that never arrived
	P50     time.Duration `json:"p50_ns"`
	P95     time.Duration `json:"p95_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

func latencyOf(ds []time.Duration, missing int) Latency {
	l := Latency{N: len(ds), Missing: missing}
	slices.Sort(ds)
	if n := len(ds); n > 0 {
		l.P50, l.P95, l.P99, l.Max = ds[n*50/100], ds[n*95/100], ds[n*99/100], ds[n-1]
	}
	return l
}

// Change is what one schedule change cost: from the request until every
// box it targets holds it, and the controller's replan.
type Change struct {
	Boxes      int           `json:"boxes"`
	AllHave    time.Duration `json:"all_have_ns"`
	Replan     time.Duration `json:"replan_ns"` // recompute and publish, at the controller
	Targets    int64         `json:"targets"`
	Recomputed int64         `json:"recomputed"`
	Published  int64         `json:"published"`
}

// Controller is what the controller process used.
type Controller struct {
	CPUPercent  float64 `json:"cpu_percent"` // of one core, over the rounds
	RSSBytes    int64   `json:"rss_bytes"`   // at the end
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	// RSSPerThousand is the resident memory the boxes added, per 1,000:
	// (RSS at the end - RSS before registering) / boxes × 1,000.
	RSSPerThousand int64 `json:"rss_per_1000_boxes"`
}

// Result is what a run measured.
type Result struct {
	Boxes        int           `json:"boxes"`
	Groups       int           `json:"groups"`
	Schedules    int           `json:"schedules"`
	Rounds       int           `json:"rounds"`
	Kind         string        `json:"kind"`
	RegisterTime time.Duration `json:"register_ns"`
	ConnectTime  time.Duration `json:"connect_ns"`
	// FanOut is from just before each request to each box's receipt of the
	// plan that holds it; for an emergency that is when the box plays.
	FanOut Latency `json:"fan_out"`
	// Publish is the median time the controller took to recompute and
	// publish the plans of a round.
	Publish time.Duration `json:"publish_ns"`
	// ControllerPath is from just before each request until the controller
	// handed the plan to the broker (HTTP, store, replan, signing): Loa's
	// own share of the fan-out.
	ControllerPath Latency `json:"controller_path"`
	// Floor is the same broker's raw publish → receive latency to as many
	// subscribers; FloorRatio is FanOut over it (p50 and p99).
	Floor      *Latency   `json:"floor,omitempty"`
	FloorError string     `json:"floor_error,omitempty"` // why the floor could not be measured
	FloorRatio [2]float64 `json:"floor_ratio_p50_p99,omitzero"`
	Controller Controller `json:"controller"`
	// BrokerConnections is the broker's count of clients with every box
	// connected; -1 when unknown.
	BrokerConnections int64 `json:"broker_connections"`
	// BytesInPerBox and BytesOutPerBox are MQTT topic+payload bytes per box
	// over the rounds (received: plans; sent: answers).
	BytesInPerBox  float64 `json:"bytes_in_per_box"`
	BytesOutPerBox float64 `json:"bytes_out_per_box"`
	PlanBytesMean  float64 `json:"plan_bytes_mean"`
	// EventsPerSec is how fast the controller stored the boxes' answers
	// over the rounds (each round waits until it has them all).
	EventsPerSec float64 `json:"events_per_sec"`
	// HeartbeatsPerSec is how fast the controller stored the heartbeats
	// every box sent at once.
	Heartbeats       int     `json:"heartbeats"`
	HeartbeatsPerSec float64 `json:"heartbeats_per_sec"`
	OneGroup         *Change `json:"change_one_group,omitempty"`
	AllGroups        *Change `json:"change_all_groups,omitempty"`
}

// Run registers the boxes with the controller behind c, connects them, and
// measures what Options ask. It closes every session and, unless Keep,
// removes what it registered before it returns.
func Run(ctx context.Context, c *api.Client, o Options, log *slog.Logger) (Result, error) {
	if o.Boxes <= 0 || o.Rounds <= 0 {
		return Result{}, errors.New("boxes and rounds must be positive")
	}
	if len(o.Brokers) == 0 {
		return Result{}, errors.New("no broker for the boxes")
	}
	o.Groups = max(o.Groups, 1)
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Kind == "" {
		o.Kind = KindEmergency
	}
	if o.Kind != KindEmergency && o.Kind != KindAnnouncement {
		return Result{}, fmt.Errorf("unknown kind %q: use %s or %s", o.Kind, KindEmergency, KindAnnouncement)
	}
	res := Result{Boxes: o.Boxes, Groups: o.Groups, Schedules: o.Schedules, Rounds: o.Rounds, Kind: o.Kind, BrokerConnections: -1}
	m0, err := c.Metrics(ctx)
	if err != nil {
		return res, fmt.Errorf("read the controller's metrics: %w", err)
	}

	t0 := time.Now()
	boxes, run, err := register(ctx, c, o.Boxes, o.Groups, o.Site, device.DefaultReconnectPolicy())
	if !o.Keep {
		defer unregister(c, boxes)
	}
	if err != nil {
		return res, err
	}
	res.RegisterTime = time.Since(t0)
	log.Info("registered", "boxes", o.Boxes, "took", res.RegisterTime)
	var media string
	if o.Schedules > 0 || o.Changes || o.Kind == KindAnnouncement {
		if media, err = uploadChime(ctx, c); err != nil {
			return res, err
		}
	}
	var rules []string
	if !o.Keep {
		defer func() { removeSchedules(c, rules) }()
	}
	for i := range o.Schedules {
		a, err := c.AddSchedule(ctx, api.AnnounceRequest{Media: media, Cron: fmt.Sprintf("%d %d * * *", i%60, 5+i/60%14),
			Targets: store.Targets{Groups: []string{run.group(i % o.Groups)}}, Name: fmt.Sprintf("bench-%05d", i)})
		if err != nil {
			return res, fmt.Errorf("add schedule %d: %w", i, err)
		}
		rules = append(rules, a.ID)
	}

	t0 = time.Now()
	defer closeAll(boxes)
	if err := connectAll(ctx, boxes, o.Brokers, o.ConnectRate, o.Timeout); err != nil {
		return res, err
	}
	res.ConnectTime = time.Since(t0)
	log.Info("connected", "boxes", o.Boxes, "took", res.ConnectTime)
	if o.Connections != nil {
		if n, err := o.Connections(ctx); err == nil {
			res.BrokerConnections = n
		} else {
			log.Warn("count the broker's connections", "err", err)
		}
	}

	if err := rounds(ctx, c, boxes, o, media, &res, log); err != nil {
		return res, err
	}
	if o.Changes {
		one := store.Targets{Groups: []string{run.group(0)}}
		if res.OneGroup, err = change(ctx, c, boxes, one, media, &rules, o.Timeout); err != nil {
			return res, err
		}
		all := store.Targets{}
		for g := range o.Groups {
			all.Groups = append(all.Groups, run.group(g))
		}
		if res.AllGroups, err = change(ctx, c, boxes, all, media, &rules, o.Timeout); err != nil {
			return res, err
		}
	}
	if o.Heartbeats > 0 {
		if res.HeartbeatsPerSec, err = heartbeats(ctx, c, boxes, o.Heartbeats, o.Timeout); err != nil {
			return res, err
		}
		res.Heartbeats = o.Heartbeats * len(boxes)
	}
	m1, err := c.Metrics(ctx)
	if err != nil {
		return res, err
	}
	res.Controller.RSSBytes, res.Controller.MaxRSSBytes = m1["rss_bytes"], m1["max_rss_bytes"]
	res.Controller.RSSPerThousand = (m1["rss_bytes"] - m0["rss_bytes"]) * 1000 / int64(o.Boxes)
	if res.BrokerConnections < 0 && m1["broker_clients"] >= 0 {
		res.BrokerConnections = m1["broker_clients"]
	}

	if o.Floor != nil {
		closeAll(boxes) // the floor runs with as many connections, not twice as many
		size := max(int(res.PlanBytesMean), 64)
		fl, err := Floor(ctx, *o.Floor, o.Boxes, o.Rounds, size, o.Timeout)
		switch {
		case ctx.Err() != nil:
			return res, ctx.Err()
		case err != nil:
			// The rounds' figures stand; say why there is nothing to
			// compare them with (a broker may fail the plain clients too).
			res.FloorError = err.Error()
			log.Warn("raw broker floor failed; the figures above have nothing to compare with", "err", err)
		default:
			res.Floor = &fl
		}
		if fl.P50 > 0 && fl.P99 > 0 && err == nil {
			res.FloorRatio = [2]float64{float64(res.FanOut.P50) / float64(fl.P50), float64(res.FanOut.P99) / float64(fl.P99)}
		}
	}
	return res, nil
}

// rounds sends the emergencies or announcements one after the other and
// measures each box's receipt, the controller's publish time and CPU, and
// the bytes per box.
func rounds(ctx context.Context, c *api.Client, boxes []*box, o Options, media string, res *Result, log *slog.Logger) error {
	before, err := c.Metrics(ctx)
	if err != nil {
		return err
	}
	in0, out0, events0 := totals(boxes)
	tStart := time.Now()
	var lat, publish, path []time.Duration
	missing := 0
	for round := 0; round < o.Rounds; round++ {
		replans, err := c.Metrics(ctx)
		if err != nil {
			return err
		}
		start := time.Now()
		var a api.Announcement
		if o.Kind == KindEmergency {
			a, err = c.StartEmergency(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}, Tone: protocol.ToneSiren})
		} else {
			a, err = c.Announce(ctx, api.AnnounceRequest{Targets: store.Targets{All: true}, Media: media})
		}
		if err != nil {
			return err
		}
		err = waitAll(ctx, boxes, o.Timeout, func(b *box) bool { _, ok := b.arrival(a.ID); return ok })
		for _, b := range boxes {
			if at, ok := b.arrival(a.ID); ok {
				lat = append(lat, at.Sub(start))
			} else {
				missing++
			}
		}
		if err != nil {
			log.Warn("round timed out", "round", round, "err", err)
		}
		m, err := replanned(ctx, c, replans["replans"])
		if err != nil {
			return err
		}
		publish = append(publish, time.Duration(m["last_replan_ns"]))
		if us := m["last_publish_unix_us"]; us > 0 {
			path = append(path, time.UnixMicro(us).Sub(start))
		}
		if o.Kind == KindEmergency {
			_, err = c.CancelEmergency(ctx, a.ID)
		} else {
			err = c.CancelAnnouncement(ctx, a.ID)
		}
		if err != nil {
			return err
		}
		// Each round starts from a quiet controller: not behind the
		// replan of the cancel, nor behind the answers of this round.
		if _, err := replanned(ctx, c, m["replans"]); err != nil {
			return err
		}
		// Boxes hold their answers for up to the config's answer spread.
		if err := waitAll(ctx, boxes, o.Timeout, func(b *box) bool { return b.holding.Load() == 0 }); err != nil {
			return fmt.Errorf("boxes still hold their answers: %w", err)
		}
		_, _, sent := totals(boxes)
		if err := caughtUp(ctx, c, "events_ingested", before["events_ingested"]+sent-events0, o.Timeout); err != nil {
			return err
		}
	}
	took := time.Since(tStart)
	after, err := c.Metrics(ctx)
	if err != nil {
		return err
	}
	res.Controller.CPUPercent = 100 * float64(after["cpu_ns"]-before["cpu_ns"]) / float64(took)
	in1, out1, _ := totals(boxes)
	res.BytesInPerBox = float64(in1-in0) / float64(len(boxes))
	res.BytesOutPerBox = float64(out1-out0) / float64(len(boxes))
	res.EventsPerSec = float64(after["events_ingested"]-before["events_ingested"]) / took.Seconds()
	var planBytes, plans int64
	for _, b := range boxes {
		planBytes += b.planBytes.Load()
		plans += b.plans.Load()
	}
	if plans > 0 {
		res.PlanBytesMean = float64(planBytes) / float64(plans)
	}
	res.FanOut = latencyOf(lat, missing)
	res.ControllerPath = latencyOf(path, o.Rounds-len(path))
	if len(publish) > 0 {
		slices.Sort(publish)
		res.Publish = publish[len(publish)/2]
	}
	return nil
}

// change adds a schedule for targets and measures until every box it
// reaches holds it.
func change(ctx context.Context, c *api.Client, boxes []*box, targets store.Targets, media string, rules *[]string, timeout time.Duration) (*Change, error) {
	in := map[string]bool{}
	for _, g := range targets.Groups {
		in[g] = true
	}
	var reached []*box
	for _, b := range boxes {
		if in[b.group] {
			reached = append(reached, b)
		}
	}
	before, err := c.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	a, err := c.AddSchedule(ctx, api.AnnounceRequest{Media: media, Cron: "45 21 * * *", Targets: targets, Name: "bench-change"})
	if err != nil {
		return nil, fmt.Errorf("add a schedule: %w", err)
	}
	*rules = append(*rules, a.ID)
	if err := waitAll(ctx, reached, timeout, func(b *box) bool { _, ok := b.arrival(a.ID); return ok }); err != nil {
		return nil, fmt.Errorf("the new schedule did not reach every box: %w", err)
	}
	ch := &Change{Boxes: len(reached)}
	for _, b := range reached {
		at, _ := b.arrival(a.ID)
		ch.AllHave = max(ch.AllHave, at.Sub(start))
	}
	if m, err := replanned(ctx, c, before["replans"]); err == nil {
		ch.Replan = time.Duration(m["last_replan_ns"])
		ch.Targets, ch.Recomputed, ch.Published = m["last_replan_targets"], m["last_replan_recomputed"], m["last_replan_published"]
	}
	return ch, nil
}

// replanned waits until the controller has finished a replan after the
// count was replans (boxes get their plans before the controller has written
// the report rows that end a replan) and returns its metrics then.
func replanned(ctx context.Context, c *api.Client, replans int64) (map[string]int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := c.Metrics(ctx)
		if err != nil || m["replans"] > replans {
			return m, err
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no replan in 30 s")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// heartbeats has every box send n heartbeats at once and returns how many
// the controller stored per second, until the last was stored.
func heartbeats(ctx context.Context, c *api.Client, boxes []*box, n int, timeout time.Duration) (float64, error) {
	before, err := c.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	want := before["states_ingested"] + int64(n*len(boxes))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 8 { // a few senders: the boxes' own goroutines are paho's
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(boxes); j += 8 {
				for k := range n {
					boxes[j].heartbeat(int64(k))
				}
			}
		}()
	}
	wg.Wait()
	if err := caughtUp(ctx, c, "states_ingested", want, timeout); err != nil {
		return 0, err
	}
	return float64(n*len(boxes)) / time.Since(start).Seconds(), nil
}

// caughtUp waits until the controller's metric counter reaches want.
func caughtUp(ctx context.Context, c *api.Client, counter string, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.Metrics(ctx)
		if err != nil {
			return err
		}
		if m[counter] >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the controller's %s is %d after %s, want %d", counter, m[counter], timeout, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// names are the ids of a run's boxes and groups; a random run id keeps the
// runs against one controller apart.
type names string

func newNames() names { return names(fmt.Sprintf("%04x", randomBytes(2))) }

func (n names) box(i int) string   { return fmt.Sprintf("sim-%s-%05d", n, i) }
func (n names) group(i int) string { return fmt.Sprintf("simg-%s-%03d", n, i) }

// register adds n simulated boxes to the controller behind c, spread over
// groups, each following policy when it reconnects. Eight requests run at
// once.
func register(ctx context.Context, c *api.Client, n, groups int, site string, policy device.ReconnectPolicy) ([]*box, names, error) {
	run := newNames()
	plans := newPlanCache(site)
	boxes := make([]*box, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range boxes {
		id, group := run.box(i), run.group(i%groups)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := c.AddDevice(ctx, api.AddDeviceRequest{ID: id, Groups: []string{group}})
			if err != nil {
				errs[i] = fmt.Errorf("register %s: %w", id, err)
				return
			}
			boxes[i] = &box{id: id, group: group, token: r.Token, topics: protocol.NewTopics(site), site: site, policy: policy, decoder: plans,
				seen: map[string]bool{}, firstOf: map[string]time.Time{}, lastOf: map[string]time.Time{}}
		}()
	}
	wg.Wait()
	registered := slices.DeleteFunc(slices.Clone(boxes), func(b *box) bool { return b == nil })
	if err := errors.Join(errs...); err != nil {
		return registered, run, err
	}
	return boxes, run, nil
}

// unregister removes the simulated boxes from the controller.
func unregister(c *api.Client, boxes []*box) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	forEach(boxes, 8, func(b *box) { c.RemoveDevice(ctx, b.id) })
}

func removeSchedules(c *api.Client, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range ids {
		c.RemoveSchedule(ctx, id)
	}
}

// forEach runs fn on every box, n at a time.
func forEach(boxes []*box, n int, fn func(*box)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, b := range boxes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(b)
		}()
	}
	wg.Wait()
}

// connectAll connects the boxes, 50 at a time and at most rate a second
// (0: no bound), box i to brokers from i % len(brokers) on, and waits until
// every one has its config and plans.
func connectAll(ctx context.Context, boxes []*box, brokers []string, rate float64, timeout time.Duration) error {
	var connectErr error
	var mu sync.Mutex
	index := map[*box]int{}
	for i, b := range boxes {
		index[b] = i
	}
	start := time.Now()
	forEach(boxes, 50, func(b *box) { // do not stampede the broker
		if rate > 0 {
			due := start.Add(time.Duration(float64(index[b]) / rate * float64(time.Second)))
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(due)):
			}
		}
		if err := b.connect(rotate(brokers, index[b])); err != nil {
			mu.Lock()
			connectErr = errors.Join(connectErr, err)
			mu.Unlock()
		}
	})
	if connectErr != nil {
		return connectErr
	}
	if err := waitAll(ctx, boxes, timeout, func(b *box) bool { return b.ready.Load() }); err != nil {
		return fmt.Errorf("boxes did not get their config and plans: %w", err)
	}
	return nil
}

// rotate is urls starting from urls[i % len(urls)].
func rotate(urls []string, i int) []string {
	k := i % len(urls)
	return append(slices.Clone(urls[k:]), urls[:k]...)
}

// closeAll closes every box, 50 at a time (each waits for its answers in
// flight). A closed box can be closed again.
func closeAll(boxes []*box) { forEach(boxes, 50, (*box).close) }

// totals sums the boxes' bytes received and sent and events sent.
func totals(boxes []*box) (in, out, events int64) {
	for _, b := range boxes {
		in += b.bytesIn.Load()
		out += b.bytesOut.Load()
		events += b.events.Load()
	}
	return in, out, events
}

func waitAll(ctx context.Context, boxes []*box, timeout time.Duration, done func(*box) bool) error {
	deadline := time.Now().Add(timeout)
	// A box found done is not checked again: each poll starts at the
	// first box not done yet, so the wait takes little CPU from the broker
	// and the boxes it measures (a scan of every box every 5 ms took most
	// of a core at 5,000 boxes).
	first := 0
	for {
		for first < len(boxes) && done(boxes[first]) {
			first++
		}
		if first == len(boxes) {
			return nil
		}
		if time.Now().After(deadline) {
			missing := 0
			for _, b := range boxes[first:] {
				if !done(b) {
					missing++
				}
			}
			return fmt.Errorf("%d of %d boxes not done after %s", missing, len(boxes), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
