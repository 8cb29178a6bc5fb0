package broadcaster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// outcomes are the answers counted by type in loa_items_total: an item's
// final answers, and preempted.
var outcomes = []protocol.EventType{
	protocol.EventPlayed, protocol.EventFailed, protocol.EventMissed, protocol.EventExpired,
	protocol.EventCancelled, protocol.EventPreempted,
}

// Reasons ingest drops a message a box sent, as loa_ingest_rejected_total
// labels them.
const (
	rejectUnknownTopic = "unknown_topic"
	rejectBadState     = "malformed_state"
	rejectBadEvents    = "malformed_events"
	rejectBadTimeReq   = "malformed_time_request"
)

var rejectReasons = []string{rejectUnknownTopic, rejectBadState, rejectBadEvents, rejectBadTimeReq}

// counters are what the Service has done since it started, for Metrics
// and Collector.
type counters struct {
	// byOutcome and rejected are filled in New and only read after: their
	// values are atomic.
	byOutcome     map[protocol.EventType]*atomic.Int64
	rejected      map[string]*atomic.Int64
	boxRejections atomic.Int64 // messages boxes refused as not from this controller

	replans, replanNS, replanTargets atomic.Int64
	replanRecomputed, replanChanged  atomic.Int64
	plansPublished, planBytes        atomic.Int64
	firstPublishUS                   atomic.Int64 // wall clock of the last replan's first publish
	configsPublished                 atomic.Int64
	states, stateBatches             atomic.Int64
	events, eventBatches             atomic.Int64
	streamPackets, streamBytes       atomic.Int64
	streamFailed                     atomic.Int64
}

// Metrics reports the Service's work so far, for `loa bench` and for staff
// who watch a large site: how long the last plan recomputation took and how
// many of its targets were recomputed and changed, what was published, and what the boxes sent
// and how it was batched into SQLite. broker_clients is the embedded
// broker's connected clients (the controller included), or -1 with an
// external broker.
func (s *Service) Metrics() map[string]int64 {
	c := &s.count
	clients := int64(-1)
	if s.broker != nil {
		clients = int64(s.broker.server.Clients.Len()) - 1 // not the inline client (subscribeInline)
	}
	return map[string]int64{
		"broker_clients":          clients,
		"replans":                 c.replans.Load(),
		"last_replan_ns":          c.replanNS.Load(),
		"last_replan_targets":     c.replanTargets.Load(),
		"last_replan_recomputed":  c.replanRecomputed.Load(),
		"last_replan_published":   c.replanChanged.Load(),
		"plans_published":         c.plansPublished.Load(),
		"last_publish_unix_us":    c.firstPublishUS.Load(),
		"plan_bytes_published":    c.planBytes.Load(),
		"configs_published":       c.configsPublished.Load(),
		"states_ingested":         c.states.Load(),
		"state_batches":           c.stateBatches.Load(),
		"events_ingested":         c.events.Load(),
		"event_batches":           c.eventBatches.Load(),
		"pending_state_and_event": int64(len(s.states) + len(s.events)),
		"stream_packets":          c.streamPackets.Load(),
		"stream_bytes":            c.streamBytes.Load(),
		"stream_publish_failed":   c.streamFailed.Load(),
	}
}

// init makes the counters by label; call it before the Service runs.
func (c *counters) init() {
	c.byOutcome, c.rejected = map[protocol.EventType]*atomic.Int64{}, map[string]*atomic.Int64{}
	for _, o := range outcomes {
		c.byOutcome[o] = new(atomic.Int64)
	}
	for _, r := range rejectReasons {
		c.rejected[r] = new(atomic.Int64)
	}
}

// reject counts a message from a box that ingest dropped.
func (c *counters) reject(reason string) { c.rejected[reason].Add(1) }

// answered counts the answers of a batch by outcome.
func (c *counters) answered(evs []store.DeviceEvent) {
	for _, ev := range evs {
		if n := c.byOutcome[ev.Event.Type]; n != nil {
			n.Add(1)
		}
	}
}

// reasonCounts count events by a fixed set of reasons; made with its
// reasons, it is safe for concurrent use.
type reasonCounts struct {
	reasons []string
	n       map[string]*atomic.Int64
}

func newReasonCounts(reasons ...string) reasonCounts {
	r := reasonCounts{reasons: reasons, n: map[string]*atomic.Int64{}}
	for _, x := range reasons {
		r.n[x] = new(atomic.Int64)
	}
	return r
}

func (r reasonCounts) add(reason string) {
	if n := r.n[reason]; n != nil {
		n.Add(1)
	}
}

// boxes is the last state each box sent, for loa_boxes_online: an online
// box whose heartbeats stopped without its will message (lost across a
// broker restart) counts as offline after staleAfter, as `loa status`
// shows it.
type boxes struct {
	mu   sync.Mutex
	last map[string]boxSeen
}

type boxSeen struct {
	online bool
	at     time.Time
}

func (b *boxes) seen(id string, online bool, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last = map[string]boxSeen{}
	}
	b.last[id] = boxSeen{online, at}
}

func (b *boxes) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.last, id)
}

// online counts the boxes online at now; staleAfter 0 never goes stale.
func (b *boxes) online(now time.Time, staleAfter time.Duration) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.last {
		if s.online && (staleAfter <= 0 || now.Sub(s.at) <= staleAfter) {
			n++
		}
	}
	return n
}

// staleAfter is how long a box may stay silent before it counts as
// offline: 3 heartbeats and 10 s, as the API's status says.
func (s *Service) staleAfter() time.Duration {
	if s.opts.HeartbeatSec <= 0 {
		return 0
	}
	return time.Duration(3*s.opts.HeartbeatSec+10) * time.Second
}

// Collector exposes the Service's work to Prometheus (GET /metrics): boxes
// online, answers by outcome, fan-out, ingestion and its rejects. It reads
// the same counters as Metrics, at each scrape.
func (s *Service) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Service }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("loa_"+name, help, labels, nil)
}

var (
	descBoxesOnline   = desc("boxes_online", "Boxes whose last heartbeat said online, within 3 heartbeats and 10 s.")
	descBrokerClients = desc("broker_clients", "Clients connected to the embedded broker (the controller's included); absent with an external broker.")
	descItems         = desc("items_total", "Answers from boxes about items, by outcome (a resent answer counts again).", "outcome")
	descEvents        = desc("events_total", "Answer-back events written to the store.")
	descEventBatches  = desc("event_batches_total", "Transactions the events were written in.")
	descHeartbeats    = desc("heartbeats_total", "State messages (heartbeats) written to the store.")
	descRejected      = desc("ingest_rejected_total", "Messages from boxes the controller dropped, by reason.", "reason")
	descBoxRejections = desc("box_rejections_total", "Messages boxes refused as not signed by this controller (rejected answers).")
	descBrokerDropped = desc("broker_dropped_total", "Messages from boxes and sensors the embedded broker dropped (over their limits, malformed), by reason.", "reason")
	descBrokerRefused = desc("broker_refused_total", "Logins the embedded broker refused, by reason.", "reason")
	descQueued        = desc("ingest_queued", "States and events waiting to be written.")
	descReplans       = desc("replans_total", "Plan recomputations.")
	descReplanSeconds = desc("last_replan_duration_seconds", "How long the last recomputation and its publishing took.")
	descPlans         = desc("plans_published_total", "Retained plans published (one per changed target).")
	descPlanBytes     = desc("plan_bytes_published_total", "Bytes of the plans published.")
	descConfigs       = desc("configs_published_total", "Box configs published.")
	descStreamPackets = desc("stream_packets_total", "Live session packets published.")
	descStreamFailed  = desc("stream_publish_failed_total", "Live session packets the broker did not take.")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBoxesOnline, descBrokerClients, descItems, descEvents, descEventBatches, descHeartbeats,
		descRejected, descBoxRejections, descBrokerDropped, descBrokerRefused, descQueued, descReplans, descReplanSeconds, descPlans, descPlanBytes, descConfigs,
		descStreamPackets, descStreamFailed} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s, n := c.s, &c.s.count
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descBoxesOnline, float64(s.boxes.online(s.opts.Now(), s.staleAfter())))
	if b := s.broker; b != nil {
		gauge(descBrokerClients, float64(b.server.Clients.Len()-1)) // not the inline client
		for _, r := range []struct {
			d *prometheus.Desc
			c reasonCounts
		}{{descBrokerDropped, b.limits.dropped}, {descBrokerRefused, b.access.refusedN}} {
			for _, x := range r.c.reasons {
				counter(r.d, r.c.n[x].Load(), x)
			}
		}
	}
	for _, o := range outcomes {
		counter(descItems, n.byOutcome[o].Load(), string(o))
	}
	counter(descEvents, n.events.Load())
	counter(descEventBatches, n.eventBatches.Load())
	counter(descHeartbeats, n.states.Load())
	for _, r := range rejectReasons {
		counter(descRejected, n.rejected[r].Load(), r)
	}
	counter(descBoxRejections, n.boxRejections.Load())
	gauge(descQueued, float64(len(s.states)+len(s.events)))
	counter(descReplans, n.replans.Load())
	gauge(descReplanSeconds, time.Duration(n.replanNS.Load()).Seconds())
	counter(descPlans, n.plansPublished.Load())
	counter(descPlanBytes, n.planBytes.Load())
	counter(descConfigs, n.configsPublished.Load())
	counter(descStreamPackets, n.streamPackets.Load())
	counter(descStreamFailed, n.streamFailed.Load())
}

// replanDone records one recomputation.
func (c *counters) replanDone(took time.Duration, targets, recomputed, changed int) {
	c.replanNS.Store(int64(took))
	c.replanTargets.Store(int64(targets))
	c.replanRecomputed.Store(int64(recomputed))
	c.replanChanged.Store(int64(changed))
	c.replans.Add(1)
}
