package api_test

import (
	"context"
	"testing"
)

func TestMetricsJoinBroadcasterAndProcess(t *testing.T) {
	e := newEnv(t)
	e.bc.Replan()
	m, err := e.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m["replans"] != 1 {
		t.Errorf("replans = %d, want the broadcaster's 1", m["replans"])
	}
	for _, k := range []string{"cpu_ns", "max_rss_bytes", "rss_bytes", "goroutines", "heap_bytes"} {
		if m[k] <= 0 {
			t.Errorf("%s = %d, want > 0 (all: %v)", k, m[k], m)
		}
	}
}
