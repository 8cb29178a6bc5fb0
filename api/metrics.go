package api

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// metrics answers GET /v1/metrics: the broadcaster's counters (plans,
// replans, heartbeats and events ingested, broker clients) and this
// process's cost (CPU time, resident and peak memory, goroutines), for
// `loa bench` and for whoever watches a large site. All values are integers.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) error {
	m := s.bc.Metrics()
	if m == nil {
		m = map[string]int64{}
	}
	for k, v := range processMetrics() {
		m[k] = v
	}
	return writeJSON(w, http.StatusOK, m)
}

// processMetrics measures this process: cpu_ns (user+system), max_rss_bytes,
// rss_bytes (Linux), goroutines and heap_bytes.
func processMetrics() map[string]int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := map[string]int64{
		"goroutines": int64(runtime.NumGoroutine()),
		"heap_bytes": int64(ms.HeapAlloc),
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m["cpu_ns"] = int64(time.Duration(ru.Utime.Nano() + ru.Stime.Nano()))
		m["max_rss_bytes"] = ru.Maxrss << 10 // kB on Linux
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil { // size resident ... in pages
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m["rss_bytes"] = pages * int64(os.Getpagesize())
			}
		}
	}
	return m
}

// Metrics reads GET /v1/metrics.
func (c *Client) Metrics(ctx context.Context) (map[string]int64, error) {
	var out map[string]int64
	return out, c.doJSON(ctx, http.MethodGet, "/v1/metrics", nil, &out)
}
