package broadcaster

import (
	"sync/atomic"
	"time"
)

// counters are what the Service has done since it started, for Metrics.
type counters struct {
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

// replanDone records one recomputation.
func (c *counters) replanDone(took time.Duration, targets, recomputed, changed int) {
	c.replanNS.Store(int64(took))
	c.replanTargets.Store(int64(targets))
	c.replanRecomputed.Store(int64(recomputed))
	c.replanChanged.Store(int64(changed))
	c.replans.Add(1)
}
