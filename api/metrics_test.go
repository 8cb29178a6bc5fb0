package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/loa-commune/loa/api"
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
	if m["max_rss_bytes"] < m["rss_bytes"] {
		t.Errorf("peak RSS %d below RSS %d", m["max_rss_bytes"], m["rss_bytes"])
	}
}

// scrape reads GET /metrics with token as Prometheus would
// (authorization: credentials: token) and parses it with Prometheus' own
// text parser.
func scrape(t *testing.T, url, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, families
}

// TestPrometheusMetrics: GET /metrics wants a viewer token and serves the
// process's and Go's figures and the controller's parts' metrics in the
// Prometheus text format.
func TestPrometheusMetrics(t *testing.T) {
	part := prometheus.NewCounter(prometheus.CounterOpts{Name: "loa_part_total", Help: "A part's counter."})
	part.Add(3)
	e := newEnvWith(t, api.Options{Collectors: []prometheus.Collector{part}})
	ctx := context.Background()
	viewer, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "prometheus", Role: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	trigger, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "feed", Role: "trigger"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "not-a-token", http.StatusUnauthorized},
		{"trigger token", trigger.Secret, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			if status, _ := scrape(t, e.srv.URL, c.token); status != c.want {
				t.Errorf("status %d, want %d", status, c.want)
			}
		})
	}

	status, families := scrape(t, e.srv.URL, viewer.Secret)
	if status != http.StatusOK {
		t.Fatalf("viewer token: status %d", status)
	}
	for name, typ := range map[string]dto.MetricType{
		"loa_part_total":                         dto.MetricType_COUNTER,
		"process_cpu_seconds_total":              dto.MetricType_COUNTER,
		"process_resident_memory_bytes":          dto.MetricType_GAUGE,
		"loa_process_peak_resident_memory_bytes": dto.MetricType_GAUGE,
		"go_goroutines":                          dto.MetricType_GAUGE,
		"go_memstats_heap_alloc_bytes":           dto.MetricType_GAUGE,
	} {
		f := families[name]
		if f == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	if v := families["loa_part_total"].GetMetric()[0].GetCounter().GetValue(); v != 3 {
		t.Errorf("loa_part_total = %v, want 3", v)
	}
	if v := families["process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue(); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}
}
