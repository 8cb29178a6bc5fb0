package onair

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes the sessions on air to Prometheus (GET /metrics):
// loa_live_sessions_active, live speeches and relays started and not yet
// ended, read at each scrape.
func (m *Manager) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "loa_live_sessions_active",
		Help: "Live sessions and relays started and not yet ended.",
	}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		on := map[*session]bool{}
		for _, s := range m.running {
			on[s] = true
		}
		return float64(len(on))
	})
}
