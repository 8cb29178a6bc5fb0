package broadcaster_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
)

// scrapeText reads url as Prometheus does and parses it with Prometheus'
// own text parser.
func scrapeText(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return families
}

// value is the value of name's series with these labels (name=value
// pairs), or -1 when there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestCollectorCountsWhatBoxesSay: a box's heartbeat and its answers, a
// malformed message and a refused login show in the Prometheus exposition
// of the broadcaster's Collector, read through HTTP and Prometheus' text
// parser.
func TestCollectorCountsWhatBoxesSay(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.svc.Collector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	before := scrapeText(t, srv.URL)
	for name, want := range map[string]float64{
		"loa_boxes_online": 0, "loa_heartbeats_total": 0, "loa_events_total": 0,
		"loa_plans_published_total": 5, "loa_configs_published_total": 2, "loa_replans_total": 1,
	} {
		if got := value(before, name); got != want {
			t.Errorf("at the start %s = %v, want %v", name, got, want)
		}
	}
	if got := value(before, "loa_items_total", "outcome", "played"); got != 0 {
		t.Errorf("at the start played = %v, want 0 (every outcome is there from the start)", got)
	}

	c := e.box(t, "loa-1")
	item := scheduler.ItemID("a-1", e.now.Add(time.Minute))
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState,
		protocol.State{Online: true, State: protocol.StatePlaying, Playing: item, Volume: 65, At: e.now}))
	start := e.now.Add(time.Minute)
	publish(t, c, topics.DeviceEvents("loa-1"), false, encode(t, protocol.KindEvents, protocol.EventBatch{Events: []protocol.Event{
		{Item: item, Announcement: "a-1", Type: protocol.EventPlaying, At: start},
		{Item: item, Announcement: "a-1", Type: protocol.EventPlayed, At: start.Add(3 * time.Second)},
	}}))
	other := scheduler.ItemID("a-2", e.now.Add(2*time.Minute))
	publish(t, c, topics.DeviceEvents("loa-1"), false, encode(t, protocol.KindEvent,
		protocol.Event{Item: other, Announcement: "a-2", Type: protocol.EventMissed, At: e.now, Reason: "quiet hours"}))
	publish(t, c, topics.DeviceEvents("loa-1"), false, []byte("not json"))
	if _, err := e.dial("loa-2", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	eventually(t, "the answers counted", func() bool {
		return value(scrapeText(t, srv.URL), "loa_events_total") == 3
	})

	after := scrapeText(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"loa_boxes_online", nil, 1},
		{"loa_heartbeats_total", nil, 1},
		{"loa_events_total", nil, 3},
		{"loa_items_total", []string{"outcome", "played"}, 1},
		{"loa_items_total", []string{"outcome", "missed"}, 1},
		{"loa_items_total", []string{"outcome", "failed"}, 0},
		{"loa_broker_dropped_total", []string{"reason", "malformed"}, 1},
		{"loa_broker_clients", nil, 2}, // the controller and loa-1
	} {
		if got := value(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// (paho tries MQTT 3.1.1, then 3.1, so a wrong password is refused twice.)
	if got := value(after, "loa_broker_refused_total", "reason", "bad_credentials"); got < 1 {
		t.Errorf("refused logins %v, want at least 1", got)
	}
	if f := after["loa_items_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("loa_items_total is a %v", f.GetType())
	}

	// The box says it goes offline (its will message): no longer online.
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState, protocol.State{Online: false, State: protocol.StateOffline}))
	eventually(t, "loa-1 offline", func() bool { return value(scrapeText(t, srv.URL), "loa_boxes_online") == 0 })

	// /v1/metrics' counters and the exposition agree.
	m := e.svc.Metrics()
	if got := value(scrapeText(t, srv.URL), "loa_heartbeats_total"); got != float64(m["states_ingested"]) {
		t.Errorf("heartbeats %v, Metrics says %d", got, m["states_ingested"])
	}
}
