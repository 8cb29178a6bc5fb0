package broadcaster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// logRecords keeps what was logged: how many records of each message, and
// the sum of their "count" attribute (1 when they have none).
type logRecords struct {
	mu     sync.Mutex
	lines  map[string]int
	counts map[string]int64
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines, l.counts = map[string]int{}, map[string]int64{}
	}
	l.lines[r.Message]++
	n := int64(1)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "count" {
			n = a.Value.Int64()
		}
		return true
	})
	l.counts[r.Message] += n
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) linesOf(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[msg]
}

func (l *logRecords) countOf(msg string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[msg]
}

func (l *logRecords) matching(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for m, k := range l.lines {
		if strings.HasPrefix(m, prefix) {
			n += k
		}
	}
	return n
}

const (
	firstDrop = "broker dropped a message from a box"
	dropSum   = "broker dropped messages from boxes"
)

// TestFloodKeepsPlansGoing: a registered box floods its own topics with
// 10,000 malformed and oversized messages, a sensor floods readings, a
// client sends a packet over the broker's bound and strangers hammer the
// login. The controller still publishes plans, what is stored does not
// change, the trigger rules see at most the sensor's limit, the log has a
// few summary lines, and nothing is left running afterwards.
func TestFloodKeepsPlansGoing(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	ctx := context.Background()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	e := &env{store: st, now: now, tokens: map[string]string{}}
	e.addDevice(t, "loa-1", "thon-1")
	e.addDevice(t, "loa-2", "thon-2")
	e.addDevice(t, "muc-nuoc-1") // a water gauge
	e.media = store.Media{SHA256: strings.Repeat("ab", 32), Name: "tone", Codec: "wav", Size: 16044, Duration: time.Second, CreatedAt: now}
	if _, err := st.AddMedia(ctx, e.media); err != nil {
		t.Fatal(err)
	}
	addRule := func(id string, start time.Time) {
		t.Helper()
		r := store.Rule{ID: id, Kind: store.KindOnce, Start: start.UTC(), Targets: store.Targets{All: true}, Media: e.media.SHA256,
			Priority: protocol.Normal, Repeat: 1, Validity: 15 * time.Minute, Text: "họp thôn " + id, CreatedAt: now}
		if err := st.AddRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	addRule("a-1", now.Add(10*time.Minute))

	var readings atomic.Int64
	logs := &logRecords{}
	e.svc = broadcaster.New(broadcaster.Options{
		Site: site, Location: loc, Horizon: 48 * time.Hour, MQTTListen: "127.0.0.1:0",
		MediaURL: "http://127.0.0.1:8080", HeartbeatSec: 30, EmergencyVolume: 100,
		OnTrigger: func(source string, _ []byte) {
			if source == "muc-nuoc-1" {
				readings.Add(1)
			}
		},
		Now: func() time.Time { return now },
	}, st, slog.New(logs))
	if err := e.svc.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	closed := false
	closeAll := func() {
		if !closed {
			closed = true
			e.svc.Close(ctx)
			st.Close()
		}
	}
	defer closeAll()
	const logEvery = 2 * time.Second
	limits := broadcaster.DefaultLimits()
	limits.LogEvery = logEvery
	if err := e.svc.SetBrokerLimits(limits); err != nil {
		t.Fatal(err)
	}

	// A box that listens, and the plan it has before the flood.
	listener, err := e.dial("loa-2", e.tokens["loa-2"])
	if err != nil {
		t.Fatal(err)
	}
	var heard inbox
	subscribe(t, listener, &heard, topics.PlanAll())
	eventually(t, "the plan with a-1", func() bool {
		p, ok := lastPlan(t, &heard, topics.PlanAll())
		return ok && len(p.Items) == 1
	})
	before, _ := lastPlan(t, &heard, topics.PlanAll())
	rulesBefore, err := st.Rules(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	statusBefore, err := st.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// The box floods: 10,000 messages on its state, events, time and
	// trigger topics, none of which the controller could use.
	flooder, err := e.dial("loa-1", e.tokens["loa-1"])
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", limits.MaxMessageBytes+1)
	wrongSite, err := protocol.Encode(protocol.KindEvent, "other-site", 1, now, protocol.Event{Item: "x-1", Type: protocol.EventPlayed, At: now})
	if err != nil {
		t.Fatal(err)
	}
	junk := []struct {
		topic    string
		qos      byte
		retained bool
		payload  []byte
	}{
		{topics.DeviceState("loa-1"), 0, true, []byte("\x00\xffnot json")},
		{topics.DeviceEvents("loa-1"), 1, false, []byte(`{"v":1,"kind":"event"`)},
		{topics.TimeRequest("loa-1"), 0, false, encode(t, protocol.KindEvent, protocol.TimeRequest{ID: 1, Sent: now})},
		{topics.Trigger("loa-1"), 1, false, []byte(`{"values":{"water_level_cm":"high"}}`)},
		{topics.DeviceState("loa-1"), 0, true, []byte(big)},
		{topics.DeviceEvents("loa-1"), 0, false, wrongSite},
		{topics.DeviceState("loa-1"), 1, true, encode(t, protocol.KindState, protocol.State{Online: true, State: "dancing"})},
		{topics.Trigger("loa-1"), 0, false, []byte(`{"values":{"water_level_cm":1` + big + `}}`)},
	}
	const flood = 10_000
	var qos0 []paho.Token
	for i := range flood {
		j := junk[i%len(junk)]
		tok := flooder.Publish(j.topic, j.qos, j.retained, j.payload)
		if j.qos == 0 {
			qos0 = append(qos0, tok)
		}
	}
	// The sensor floods good readings.
	sensor, err := e.dial("muc-nuoc-1", e.tokens["muc-nuoc-1"])
	if err != nil {
		t.Fatal(err)
	}
	const sent = 2000
	var sensorToks []paho.Token
	for i := range sent {
		reading := fmt.Appendf(nil, `{"values":{"water_level_cm":%d}}`, 400+i%50)
		sensorToks = append(sensorToks, sensor.Publish(topics.Trigger("muc-nuoc-1"), 1, false, reading))
	}
	// Strangers try to log in, over and over.
	for i := range 50 {
		if c, err := e.dial(fmt.Sprintf("loa-%d", i%3+1), "guess"); err == nil {
			c.Disconnect(0)
			t.Fatal("a wrong password was let in")
		}
	}
	// One packet over the broker's bound: that client is cut off before
	// the broker reads it into memory.
	giant, err := e.dial("loa-1", e.tokens["loa-1"])
	if err != nil {
		t.Fatal(err)
	}
	giant.Publish(topics.DeviceState("loa-1"), 0, false, []byte(strings.Repeat("x", 2*protocol.MaxPayload)))
	eventually(t, "the broker to cut off the client with the giant packet", func() bool { return !giant.IsConnectionOpen() })

	for _, tok := range append(qos0, sensorToks...) {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("a flood message was not sent: %v", tok.Error())
		}
	}
	// The broker handles a client's packets in order: once this one is
	// acknowledged (dropped as well: over the rate or malformed), so is
	// every message of the flood.
	publish(t, flooder, topics.DeviceState("loa-1"), false, []byte("last"))
	eventually(t, "the sensor's first readings", func() bool { return readings.Load() >= int64(limits.ReadingBurst) })

	// The controller still publishes plans, and the old item is unchanged.
	addRule("a-2", now.Add(20*time.Minute))
	e.svc.Replan()
	eventually(t, "a plan with the new announcement", func() bool {
		p, _ := lastPlan(t, &heard, topics.PlanAll())
		return len(p.Items) == 2
	})
	after, _ := lastPlan(t, &heard, topics.PlanAll())
	if !reflect.DeepEqual(after.Items[0], before.Items[0]) || after.Items[1].Announcement != "a-2" {
		t.Fatalf("plan after the flood %+v\nbefore %+v", after.Items, before.Items)
	}
	if want := scheduler.ItemID("a-2", now.Add(20*time.Minute).UTC()); after.Items[1].ID != want {
		t.Fatalf("new item %s, want %s", after.Items[1].ID, want)
	}
	// Nothing stored changed, but for the new rule.
	rules, err := st.Rules(ctx, "", false)
	if err != nil || len(rules) != len(rulesBefore)+1 || !reflect.DeepEqual(rules[:len(rulesBefore)], rulesBefore) {
		t.Fatalf("rules after the flood %+v, %v\nbefore %+v", rules, err, rulesBefore)
	}
	if s, _ := st.Status(ctx); !reflect.DeepEqual(s, statusBefore) {
		t.Fatalf("status changed by the flood:\nbefore %+v\n after %+v", statusBefore, s)
	}
	report, err := st.Report(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range report { // the pending rows of the two items only
		if (row.Item != before.Items[0].ID && row.Item != after.Items[1].ID) || row.Status != store.StatusPending {
			t.Fatalf("report has a row the flood made: %+v", row)
		}
	}
	elapsed := time.Since(start)

	// The trigger rules saw the sensor's burst and its rate, no more.
	seen := readings.Load()
	if most := int64(limits.ReadingBurst) + int64(elapsed.Seconds()*limits.ReadingsPerSec) + 1; seen > most {
		t.Errorf("the trigger rules saw %d of %d readings in %v, want at most %d", seen, sent, elapsed, most)
	}

	listener.Disconnect(100)
	flooder.Disconnect(100)
	sensor.Disconnect(100)
	giant.Disconnect(0)
	closeAll()
	seen = readings.Load()

	// Every dropped message is counted, in a handful of lines.
	dropped := logs.countOf(firstDrop) + logs.countOf(dropSum)
	if want := int64(flood+1) + sent - seen; dropped != want {
		t.Errorf("the log counts %d dropped messages, want %d", dropped, want)
	}
	if n := logs.linesOf(firstDrop); n != 1 {
		t.Errorf("%d lines for the first drop, want 1", n)
	}
	if n, most := logs.linesOf(dropSum), int(elapsed/logEvery)+2; n > most {
		t.Errorf("%d summary lines in %v, want at most %d (one per %v, and one at the end)", n, elapsed, most, logEvery)
	}
	if n := logs.matching("ignored a bad"); n != 0 {
		t.Errorf("the controller logged %d bad messages one by one", n)
	}
	if n := logs.linesOf("broker refused a client"); n != 1 {
		t.Errorf("%d lines for the first refused login, want 1", n)
	}
	// Connections that end in an error are summarised too; the giant
	// packet's is one of them.
	if n := logs.linesOf(""); n != 0 {
		t.Errorf("the broker logged %d connection errors one by one", n)
	}
	if n := logs.countOf("broker closed a connection") + logs.countOf("broker closed connections"); n < 1 {
		t.Error("the connection cut off for its giant packet was not logged")
	}
	// paho tries MQTT 3.1.1, then 3.1: two logins a dial.
	if n := logs.countOf("broker refused a client") + logs.countOf("broker refused clients"); n != 2*50 {
		t.Errorf("the log counts %d refused logins, want 100", n)
	}

	// Nothing is left running.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBrokerLimitsValidate(t *testing.T) {
	if err := broadcaster.DefaultLimits().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*broadcaster.Limits)
		field string
	}{
		{"no messages", func(l *broadcaster.Limits) { l.MessagesPerSec = 0 }, "messages_per_sec"},
		{"no burst", func(l *broadcaster.Limits) { l.MessageBurst = 0 }, "message_burst"},
		{"negative readings", func(l *broadcaster.Limits) { l.ReadingsPerSec = -1 }, "readings_per_sec"},
		{"no reading burst", func(l *broadcaster.Limits) { l.ReadingBurst = 0 }, "reading_burst"},
		{"messages bigger than any", func(l *broadcaster.Limits) { l.MaxMessageBytes = protocol.MaxPayload + 1 }, "max_message_bytes"},
		{"log every instant", func(l *broadcaster.Limits) { l.LogEvery = 0 }, "log_every"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := broadcaster.DefaultLimits()
			tc.edit(&l)
			if err := l.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}
