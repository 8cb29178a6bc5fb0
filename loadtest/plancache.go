package loadtest

import (
	"sync"

	"github.com/loa-commune/loa/protocol"
)

// planCache decodes each distinct plan payload once for all the simulated
// boxes of a run. A plan on plan/all reaches every box with the same bytes;
// real boxes decode it each on its own CPU, in parallel, but a thousand
// simulated boxes doing it on the bench machine's cores would take them
// from the broker and controller being measured. BenchmarkDecodePlan
// gives one box's cost.
type planCache struct {
	site  string // the run's: every box checks plans against it
	mu    sync.Mutex
	plans map[string]*protocol.Plan // payload → decoded; read-only once stored
}

// maxCachedPlans bounds the cache: a run has one plan per target.
const maxCachedPlans = 4096

func newPlanCache(site string) *planCache {
	return &planCache{site: site, plans: map[string]*protocol.Plan{}}
}

// decode returns payload's plan, checked for the site as protocol.Decode
// does. A payload that does not decode is not cached.
func (c *planCache) decode(payload []byte) (*protocol.Plan, error) {
	c.mu.Lock()
	p, ok := c.plans[string(payload)]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p = new(protocol.Plan)
	if _, err := protocol.Decode(payload, c.site, protocol.KindPlan, p); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.plans) >= maxCachedPlans {
		clear(c.plans)
	}
	c.plans[string(payload)] = p
	c.mu.Unlock()
	return p, nil
}
