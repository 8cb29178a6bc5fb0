package api

import (
	"context"
	"math"
	"net/http"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// newMetricsRegistry is the registry GET /metrics serves and GET
// /v1/metrics reads this process's cost from: the client's process and Go
// collectors, the peak resident memory, and the controller's parts (the
// broadcaster, live sessions). Its own registry, not the global one: a
// library registering there does not end up in Loa's metrics.
func newMetricsRegistry(parts []prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		peakRSS,
	)
	for _, c := range parts {
		reg.MustRegister(c)
	}
	return reg
}

// peakRSS is the process's largest resident memory so far (getrusage), which
// the process collector does not give.
var peakRSS = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
	Name: "loa_process_peak_resident_memory_bytes",
	Help: "The largest resident memory this process has had, in bytes.",
}, func() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return math.NaN()
	}
	return float64(ru.Maxrss) * 1024 // kB on Linux
})

// prometheusMetrics answers GET /metrics (viewer): the registry in the
// Prometheus text format.
func prometheusMetrics(reg *prometheus.Registry) func(http.ResponseWriter, *http.Request) error {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// processKeys map the registry's process figures to the keys of GET
// /v1/metrics, which `loa bench` reads, with the factor to their unit.
var processKeys = map[string]struct {
	key   string
	scale float64
}{
	"process_cpu_seconds_total":              {"cpu_ns", 1e9}, // user+system, in clock ticks (10 ms)
	"process_resident_memory_bytes":          {"rss_bytes", 1},
	"loa_process_peak_resident_memory_bytes": {"max_rss_bytes", 1},
	"go_goroutines":                          {"goroutines", 1},
	"go_memstats_heap_alloc_bytes":           {"heap_bytes", 1},
}

// jsonMetrics answers GET /v1/metrics: the broadcaster's counters (plans,
// replans, heartbeats and events ingested, broker clients) and this
// process's cost (CPU time, resident and peak memory, goroutines, heap)
// as gathered from reg, for `loa bench` and for whoever watches a large
// site. All values are integers.
func (s *Server) jsonMetrics(reg prometheus.Gatherer) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, _ *http.Request) error {
		m := s.bc.Metrics()
		if m == nil {
			m = map[string]int64{}
		}
		families, err := reg.Gather()
		if err != nil && len(families) == 0 {
			return err
		}
		for _, f := range families {
			k, ok := processKeys[f.GetName()]
			if !ok || len(f.GetMetric()) != 1 {
				continue
			}
			if v := metricValue(f.GetMetric()[0]); !math.IsNaN(v) {
				m[k.key] = int64(math.Round(v * k.scale))
			}
		}
		return writeJSON(w, http.StatusOK, m)
	}
}

// metricValue is a gauge's, counter's or untyped metric's value, or NaN.
func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

// Metrics reads GET /v1/metrics.
func (c *Client) Metrics(ctx context.Context) (map[string]int64, error) {
	var out map[string]int64
	return out, c.doJSON(ctx, http.MethodGet, "/v1/metrics", nil, &out)
}
