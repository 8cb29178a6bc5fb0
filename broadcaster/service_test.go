package broadcaster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

const site = "xa-an-binh"

var topics = protocol.NewTopics(site)

// env is a running broadcaster with its embedded broker on loopback, a real
// store, and a fixed clock.
type env struct {
	svc    *broadcaster.Service
	store  *store.Store
	now    time.Time
	tokens map[string]string // device id → token
	media  store.Media
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvLog(t, slog.New(slog.NewTextHandler(testLogOut(), nil)))
}

// newEnvLog is newEnv with the service logging to log.
func newEnvLog(t *testing.T, log *slog.Logger) *env {
	t.Helper()
	ctx := context.Background()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 1, 5, 30, 0, 0, loc)
	e := &env{store: st, now: now, tokens: map[string]string{}}
	e.addDevice(t, "loa-1", "thon-1")
	e.addDevice(t, "loa-2", "thon-2")
	e.media = store.Media{SHA256: strings.Repeat("ab", 32), Name: "tone", Codec: "wav", Size: 16044, Duration: time.Second, CreatedAt: now}
	if _, err := st.AddMedia(ctx, e.media); err != nil {
		t.Fatal(err)
	}
	e.svc = broadcaster.New(broadcaster.Options{
		Site: site, Location: loc, Horizon: 48 * time.Hour, MQTTListen: "127.0.0.1:0",
		MediaURL: "http://127.0.0.1:8080", HeartbeatSec: 30, EmergencyVolume: 100,
		Now: func() time.Time { return now },
	}, st, log)
	if err := e.svc.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.svc.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if !strings.HasPrefix(e.svc.BrokerAddr(), "127.0.0.1:") {
		t.Fatalf("broker listens on %q", e.svc.BrokerAddr())
	}
	return e
}

func (e *env) addDevice(t *testing.T, id string, groups ...string) {
	t.Helper()
	tok := auth.NewToken()
	if err := e.store.AddDevice(context.Background(), store.Device{ID: id, Groups: groups, Volume: 70, CreatedAt: e.now}, auth.Hash(tok)); err != nil {
		t.Fatal(err)
	}
	e.tokens[id] = tok
}

var clientSeq atomic.Int64

// dial connects a test MQTT client as user.
func (e *env) dial(user, pass string) (paho.Client, error) {
	co := paho.NewClientOptions().AddBroker("tcp://" + e.svc.BrokerAddr()).
		SetClientID(fmt.Sprintf("test-%s-%d", user, clientSeq.Add(1))).SetUsername(user).SetPassword(pass).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(co)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

// box connects as a registered device.
func (e *env) box(t *testing.T, id string) paho.Client {
	t.Helper()
	c, err := e.dial(id, e.tokens[id])
	if err != nil {
		t.Fatalf("box %s cannot connect: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// inbox collects the messages of subscriptions.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
}

func (b *inbox) on(topic string) []paho.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []paho.Message
	for _, m := range b.msgs {
		if m.Topic() == topic {
			out = append(out, m)
		}
	}
	return out
}

func (b *inbox) topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		out = append(out, m.Topic())
	}
	return out
}

// subscribe subscribes as a box does: again when the broker answers 0x91
// (packet identifier in use, which mochi says while it sends QoS 1 messages
// to the client). It returns the last code granted.
func subscribe(t *testing.T, c paho.Client, b *inbox, topic string) byte {
	t.Helper()
	var code byte
	for range 20 {
		tok := c.Subscribe(topic, 1, b.handler)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
		if code = tok.(*paho.SubscribeToken).Result()[topic]; code != 0x91 {
			return code
		}
		time.Sleep(20 * time.Millisecond)
	}
	return code
}

func publish(t *testing.T, c paho.Client, topic string, retained bool, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// eventually polls cond until it holds or 30 s pass (generous: -race on a loaded 2-core CI machine).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func encode(t *testing.T, kind protocol.Kind, body any) []byte {
	t.Helper()
	b, err := protocol.Encode(kind, site, 1, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lastPlan decodes the newest plan received on topic: the one with the
// highest envelope sequence, as a box keeps it. (A retained message can
// arrive after a newer live one when a box subscribes during a publish.)
func lastPlan(t *testing.T, b *inbox, topic string) (protocol.Plan, bool) {
	t.Helper()
	var newest protocol.Plan
	var seq uint64
	found := false
	for _, m := range b.on(topic) {
		var p protocol.Plan
		env, err := protocol.Decode(m.Payload(), site, protocol.KindPlan, &p)
		if err != nil {
			t.Fatalf("a box cannot read the plan on %s: %v", topic, err)
		}
		if !found || env.Seq > seq {
			newest, seq, found = p, env.Seq, true
		}
	}
	return newest, found
}

func TestBoxGetsConfigAndPlan(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start := e.now.Add(10 * time.Minute).UTC()
	rule := store.Rule{ID: "a-1", Kind: store.KindOnce, Start: start, Targets: store.Targets{Groups: []string{"thon-1"}},
		Media: e.media.SHA256, Priority: protocol.High, Repeat: 2, Validity: 15 * time.Minute, Text: "họp thôn", CreatedAt: e.now}
	if err := e.store.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	e.svc.Replan()

	c := e.box(t, "loa-1")
	var b inbox
	subscribe(t, c, &b, topics.DeviceConfig("loa-1"))
	subscribe(t, c, &b, topics.PlanGroup("thon-1"))
	subscribe(t, c, &b, topics.PlanAll())

	eventually(t, "the retained config", func() bool { return len(b.on(topics.DeviceConfig("loa-1"))) > 0 })
	msg := b.on(topics.DeviceConfig("loa-1"))[0]
	if !msg.Retained() {
		t.Error("config is not retained")
	}
	var cfg protocol.DeviceConfig
	if _, err := protocol.Decode(msg.Payload(), site, protocol.KindConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	want := protocol.DeviceConfig{Groups: []string{"thon-1"}, Volume: 70, EmergencyVolume: 100, MediaURL: "http://127.0.0.1:8080",
		HeartbeatSec: 30, Timezone: "Asia/Ho_Chi_Minh"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config %+v\nwant %+v", cfg, want)
	}

	eventually(t, "a plan with the announcement", func() bool {
		p, ok := lastPlan(t, &b, topics.PlanGroup("thon-1"))
		return ok && len(p.Items) == 1
	})
	p, _ := lastPlan(t, &b, topics.PlanGroup("thon-1"))
	it := p.Items[0]
	if p.Target != "group/thon-1" || it.ID != scheduler.ItemID("a-1", start) || it.Announcement != "a-1" || !it.Start.Equal(start) ||
		!it.Expires.Equal(start.Add(15*time.Minute)) || it.Priority != protocol.High || it.Repeat != 2 || it.Text != "họp thôn" ||
		it.Media != (protocol.Media{SHA256: e.media.SHA256, Size: 16044, DurationMS: 1000}) || it.Status != protocol.StatusLive {
		t.Fatalf("plan %+v", p)
	}
	eventually(t, "the retained plan/all", func() bool { return len(b.on(topics.PlanAll())) > 0 })
	if all, _ := lastPlan(t, &b, topics.PlanAll()); all.Target != "all" || len(all.Items) != 0 {
		t.Fatalf("plan/all = %+v, want an empty plan", all)
	}
	// The report has the item pending for the village's box only (the rows
	// follow the plan: boxes first).
	eventually(t, "the pending report row", func() bool {
		rows, err := e.store.Deliveries(ctx, "a-1")
		return err == nil && len(rows) == 1 && rows[0].Device == "loa-1" && rows[0].Status == store.StatusPending && rows[0].Item == it.ID
	})

	// Cancelling publishes the plan without the item.
	if err := e.store.CancelRule(ctx, "a-1", e.now); err != nil {
		t.Fatal(err)
	}
	e.svc.Replan()
	eventually(t, "a plan without the cancelled item", func() bool {
		p, _ := lastPlan(t, &b, topics.PlanGroup("thon-1"))
		return len(p.Items) == 0
	})

	// A box that connects later gets the current plan at once: it is retained.
	late := e.box(t, "loa-1")
	var lb inbox
	subscribe(t, late, &lb, topics.PlanGroup("thon-1"))
	eventually(t, "the retained plan", func() bool { return len(lb.on(topics.PlanGroup("thon-1"))) > 0 })
	if p, _ := lastPlan(t, &lb, topics.PlanGroup("thon-1")); len(p.Items) != 0 || !lb.on(topics.PlanGroup("thon-1"))[0].Retained() {
		t.Fatalf("late box got %+v", p)
	}
}

func TestBrokerRefusesBadCredentials(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, user, pass string
	}{
		{"wrong password", "loa-1", strings.Repeat("0", 64)},
		{"another box's password", "loa-1", e.tokens["loa-2"]},
		{"empty password", "loa-1", ""},
		{"unknown box", "loa-9", e.tokens["loa-1"]},
		{"no username", "", e.tokens["loa-1"]},
		{"bad username", "loa/1", e.tokens["loa-1"]},
		{"controller without its secret", auth.ControllerUser, e.tokens["loa-1"]},
		{"controller with an empty secret", auth.ControllerUser, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.dial(tc.user, tc.pass)
			if err == nil {
				c.Disconnect(0)
				t.Fatal("the broker let it in")
			}
		})
	}
}

func TestBoxKeptToItsOwnTopics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.box(t, "loa-1")
	var b inbox
	refused := []string{
		topics.DeviceConfig("loa-2"),
		topics.PlanDevice("loa-2"),
		topics.TimeResponse("loa-2"),
		topics.DeviceState("loa-2"),
		topics.DeviceEvents("loa-2"),
		topics.PlanGroup("thon-2"), // another village's plan
		topics.Root() + "/plan/group/+",
		topics.Root() + "/device/+/config",
		topics.Root() + "/#",
		"#",
		"loa/other-site/plan/all",
	}
	for _, f := range refused {
		if code := subscribe(t, c, &b, f); code < 0x80 {
			t.Errorf("subscription to %s granted (QoS %d)", f, code)
		}
	}
	if code := subscribe(t, c, &b, topics.DeviceConfig("loa-1")); code >= 0x80 {
		t.Fatalf("own config refused: %#x", code)
	}
	if code := subscribe(t, c, &b, topics.PlanGroup("thon-1")); code >= 0x80 {
		t.Fatalf("own village's plan refused: %#x", code)
	}
	eventually(t, "own config", func() bool { return len(b.on(topics.DeviceConfig("loa-1"))) > 0 })

	// Writing as another box, or as the controller, is dropped.
	st := encode(t, protocol.KindState, protocol.State{Online: true, State: protocol.StateError, Error: "forged"})
	c.Publish(topics.DeviceState("loa-2"), 0, true, st).Wait()
	c.Publish(topics.PlanAll(), 0, true, encode(t, protocol.KindPlan, protocol.Plan{Target: "all", Items: []protocol.PlanItem{}})).Wait()
	c.Publish(topics.DeviceConfig("loa-1"), 0, true, encode(t, protocol.KindConfig, protocol.DeviceConfig{Volume: 100})).Wait()
	// Then a message of its own, which the controller handles after those.
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState, protocol.State{Online: true, State: protocol.StateIdle, Volume: 70}))
	eventually(t, "loa-1's own state", func() bool {
		s, _ := e.store.Status(ctx)
		return s[0].Online
	})
	status, _ := e.store.Status(ctx)
	if status[1].ID != "loa-2" || status[1].Online || status[1].Error != "" || !status[1].LastSeen.IsZero() {
		t.Fatalf("loa-2's status was forged by loa-1: %+v", status[1])
	}
	// (paho hands a message to every matching handler, refused filters
	// included, so the own config may come more than once.)
	for _, topic := range b.topics() {
		if topic != topics.DeviceConfig("loa-1") && topic != topics.PlanGroup("thon-1") {
			t.Errorf("loa-1 received a message on %s", topic)
		}
	}

	// A fresh reader sees the controller's plan and config, not loa-1's.
	other := e.box(t, "loa-1")
	var ob inbox
	subscribe(t, other, &ob, topics.PlanAll())
	subscribe(t, other, &ob, topics.DeviceConfig("loa-1"))
	eventually(t, "retained messages", func() bool { return len(ob.topics()) == 2 })
	var cfg protocol.DeviceConfig
	if _, err := protocol.Decode(ob.on(topics.DeviceConfig("loa-1"))[0].Payload(), site, protocol.KindConfig, &cfg); err != nil || cfg.Volume != 70 {
		t.Fatalf("config %+v, %v: overwritten by the box", cfg, err)
	}
}

func TestStateAndEventsReachTheStore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.box(t, "loa-1")
	item := scheduler.ItemID("a-1", e.now.Add(time.Minute))
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState,
		protocol.State{Online: true, State: protocol.StatePlaying, Playing: item, Volume: 65, Version: "0.3.0", UptimeSec: 99, At: e.now}))
	eventually(t, "the state in loa status", func() bool {
		s, _ := e.store.Status(ctx)
		return s[0].Online
	})
	s, _ := e.store.Status(ctx)
	if s[0].State != "playing" || s[0].Playing == nil || *s[0].Playing != item || s[0].Version != "0.3.0" || !s[0].LastSeen.Equal(e.now) {
		t.Fatalf("status %+v", s[0])
	}

	// One event alone, then two in a batch, as a box sends what queued up.
	start := e.now.Add(time.Minute)
	publish(t, c, topics.DeviceEvents("loa-1"), false, encode(t, protocol.KindEvent,
		protocol.Event{Item: item, Announcement: "a-1", Type: protocol.EventReceived, At: e.now}))
	publish(t, c, topics.DeviceEvents("loa-1"), false, encode(t, protocol.KindEvents, protocol.EventBatch{Events: []protocol.Event{
		{Item: item, Announcement: "a-1", Type: protocol.EventPlaying, At: start},
		{Item: item, Announcement: "a-1", Type: protocol.EventPlayed, At: start.Add(3 * time.Second)},
	}}))
	eventually(t, "the played row in loa report", func() bool {
		r, _ := e.store.Report(ctx, time.Time{}, time.Time{})
		return len(r) == 1 && r[0].Status == "played"
	})
	r, _ := e.store.Report(ctx, time.Time{}, time.Time{})
	if r[0].Device != "loa-1" || r[0].Item != item || !r[0].StartedAt.Equal(start) || !r[0].FinishedAt.Equal(start.Add(3*time.Second)) {
		t.Fatalf("report %+v", r[0])
	}

	// The box goes away; its will says so.
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState, protocol.State{Online: false, State: protocol.StateOffline}))
	eventually(t, "loa-1 offline", func() bool {
		s, _ := e.store.Status(ctx)
		return !s[0].Online
	})
	if s, _ := e.store.Status(ctx); s[0].State != "offline" || s[0].Playing != nil {
		t.Fatalf("status %+v", s[0])
	}
}

func TestTimeRequestGetsResponse(t *testing.T) {
	e := newEnv(t)
	c := e.box(t, "loa-1")
	var b inbox
	subscribe(t, c, &b, topics.TimeResponse("loa-1"))
	sent := time.Date(2026, 2, 28, 22, 29, 59, 123456789, time.UTC)
	publish(t, c, topics.TimeRequest("loa-1"), false, encode(t, protocol.KindTimeRequest, protocol.TimeRequest{ID: 77, Sent: sent}))
	eventually(t, "a time response", func() bool { return len(b.on(topics.TimeResponse("loa-1"))) > 0 })
	var resp protocol.TimeResponse
	if _, err := protocol.Decode(b.on(topics.TimeResponse("loa-1"))[0].Payload(), site, protocol.KindTimeResponse, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ID != 77 || !resp.Sent.Equal(sent) || !resp.Received.Equal(e.now) {
		t.Fatalf("response %+v; want id 77, sent %v, received %v", resp, sent, e.now)
	}
}

func TestMalformedMessagesAreIgnored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.box(t, "loa-1")
	var b inbox
	subscribe(t, c, &b, topics.TimeResponse("loa-1"))

	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState, protocol.State{Online: true, State: protocol.StateIdle, Volume: 70}))
	eventually(t, "the first state", func() bool {
		s, _ := e.store.Status(ctx)
		return s[0].Online
	})
	statusBefore, _ := e.store.Status(ctx)

	badState := protocol.State{Online: true, State: protocol.StateError, Error: "should not be stored", Volume: 1}
	badEvent := protocol.Event{Item: "bad-1", Type: protocol.EventPlayed, At: e.now}
	badReq := protocol.TimeRequest{ID: 666, Sent: e.now}
	wrongSite := func(kind protocol.Kind, body any) []byte {
		p, err := protocol.Encode(kind, "other-site", 1, e.now, body)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := func(kind protocol.Kind, body any) []byte {
		p := encode(t, kind, body)
		return append(p[:len(p)-1], []byte(`,"pad":"`+strings.Repeat("x", protocol.MaxPayload)+`"}`)...)
	}
	cases := []struct {
		name  string
		topic string
		data  []byte
	}{
		{"state not JSON", topics.DeviceState("loa-1"), []byte("online")},
		{"state wrong site", topics.DeviceState("loa-1"), wrongSite(protocol.KindState, badState)},
		{"state wrong kind", topics.DeviceState("loa-1"), encode(t, protocol.KindEvent, badState)},
		{"state huge", topics.DeviceState("loa-1"), huge(protocol.KindState, badState)},
		{"state trailing garbage", topics.DeviceState("loa-1"), append(encode(t, protocol.KindState, badState), '}')},
		{"state unknown state", topics.DeviceState("loa-1"), encode(t, protocol.KindState, protocol.State{Online: true, State: "dancing"})},
		{"state empty", topics.DeviceState("loa-1"), []byte{}},
		{"event not JSON", topics.DeviceEvents("loa-1"), []byte("{played")},
		{"event wrong site", topics.DeviceEvents("loa-1"), wrongSite(protocol.KindEvent, badEvent)},
		{"event wrong kind", topics.DeviceEvents("loa-1"), encode(t, protocol.KindState, badEvent)},
		{"event huge", topics.DeviceEvents("loa-1"), huge(protocol.KindEvent, badEvent)},
		{"event bad type", topics.DeviceEvents("loa-1"), encode(t, protocol.KindEvent, protocol.Event{Item: "bad-2", Type: "boom", At: e.now})},
		{"event bad item id", topics.DeviceEvents("loa-1"), encode(t, protocol.KindEvent, protocol.Event{Item: "bad 3", Type: protocol.EventPlayed, At: e.now})},
		{"batch with a bad event", topics.DeviceEvents("loa-1"), encode(t, protocol.KindEvents, protocol.EventBatch{Events: []protocol.Event{
			{Item: "bad-4", Type: protocol.EventPlayed, At: e.now}, {Item: "bad 5", Type: protocol.EventPlayed, At: e.now}}})},
		{"time req not JSON", topics.TimeRequest("loa-1"), []byte("\x00\x01")},
		{"time req wrong site", topics.TimeRequest("loa-1"), wrongSite(protocol.KindTimeRequest, badReq)},
		{"time req wrong kind", topics.TimeRequest("loa-1"), encode(t, protocol.KindEvent, badReq)},
		{"time req huge", topics.TimeRequest("loa-1"), huge(protocol.KindTimeRequest, badReq)},
	}
	for _, tc := range cases {
		publish(t, c, tc.topic, false, tc.data)
	}
	// Markers sent after the bad ones: once they are handled, so are those.
	marker := protocol.Event{Item: "marker-1", Type: protocol.EventPlayed, At: e.now}
	publish(t, c, topics.DeviceEvents("loa-1"), false, encode(t, protocol.KindEvent, marker))
	publish(t, c, topics.TimeRequest("loa-1"), false, encode(t, protocol.KindTimeRequest, protocol.TimeRequest{ID: 1, Sent: e.now}))
	eventually(t, "the marker event", func() bool {
		r, _ := e.store.Report(ctx, time.Time{}, time.Time{})
		return len(r) > 0
	})
	eventually(t, "the marker time response", func() bool { return len(b.on(topics.TimeResponse("loa-1"))) > 0 })

	if r, _ := e.store.Report(ctx, time.Time{}, time.Time{}); len(r) != 1 || r[0].Item != "marker-1" {
		t.Errorf("report %+v, want only the marker", r)
	}
	if s, _ := e.store.Status(ctx); !reflect.DeepEqual(s, statusBefore) {
		t.Errorf("status changed by bad messages:\nbefore %+v\n after %+v", statusBefore, s)
	}
	resps := b.on(topics.TimeResponse("loa-1"))
	for _, m := range resps {
		var r protocol.TimeResponse
		if _, err := protocol.Decode(m.Payload(), site, protocol.KindTimeResponse, &r); err != nil || r.ID != 1 {
			t.Errorf("time response %+v, %v: only the marker should be answered", r, err)
		}
	}
	// The service still works.
	publish(t, c, topics.DeviceState("loa-1"), true, encode(t, protocol.KindState, protocol.State{Online: true, State: protocol.StatePlaying, Playing: "x-1"}))
	eventually(t, "a later good state", func() bool {
		s, _ := e.store.Status(ctx)
		return s[0].State == "playing"
	})
}

func TestCloseTwice(t *testing.T) {
	e := newEnv(t)
	addr := e.svc.BrokerAddr()
	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetConnectTimeout(time.Second).SetAutoReconnect(false))
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("the broker still answers after Close")
	}
}

func TestPlansPerTarget(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start := e.now.Add(time.Hour).UTC()
	for _, r := range []store.Rule{
		{ID: "a-all", Kind: store.KindOnce, Start: start, Targets: store.Targets{All: true}},
		{ID: "a-dev", Kind: store.KindOnce, Start: start, Targets: store.Targets{Devices: []string{"loa-2"}}},
		{ID: "s-cron", Kind: store.KindCron, Cron: "0 6 * * *", Targets: store.Targets{Groups: []string{"thon-2"}}},
	} {
		r.Media, r.Priority, r.Repeat, r.Validity, r.CreatedAt = e.media.SHA256, protocol.Normal, 1, 15*time.Minute, e.now
		if err := e.store.AddRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.Replan()
	c := e.box(t, "loa-2")
	var b inbox
	for _, f := range []string{topics.PlanAll(), topics.PlanDevice("loa-2"), topics.PlanGroup("thon-2")} {
		subscribe(t, c, &b, f)
	}
	ids := func(topic string) []string {
		p, _ := lastPlan(t, &b, topic)
		var out []string
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		return out
	}
	want := map[string][]string{
		topics.PlanAll():           {scheduler.ItemID("a-all", start)},
		topics.PlanDevice("loa-2"): {scheduler.ItemID("a-dev", start)},
		// 06:00 in Hanoi on 1 and 2 March (the horizon is 48 h from 05:30).
		topics.PlanGroup("thon-2"): {
			scheduler.ItemID("s-cron", time.Date(2026, 2, 28, 23, 0, 0, 0, time.UTC)),
			scheduler.ItemID("s-cron", time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)),
		},
	}
	for topic, w := range want {
		eventually(t, "the plan on "+topic, func() bool { return reflect.DeepEqual(ids(topic), w) })
	}
	pending := func(rule string) []string {
		rows, err := e.store.Deliveries(ctx, rule)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range rows {
			out = append(out, d.Device+"/"+d.Status)
		}
		return out
	}
	// Plans go out first; the pending report rows follow.
	for rule, want := range map[string][]string{
		"a-all":  {"loa-1/pending", "loa-2/pending"},
		"a-dev":  {"loa-2/pending"},
		"s-cron": {"loa-2/pending", "loa-2/pending"},
	} {
		eventually(t, rule+" deliveries "+strings.Join(want, ","), func() bool { return reflect.DeepEqual(pending(rule), want) })
	}
}

func TestConfigUpdateAndForget(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.box(t, "loa-2")
	var b inbox
	subscribe(t, c, &b, topics.DeviceConfig("loa-2"))
	eventually(t, "the config", func() bool { return len(b.on(topics.DeviceConfig("loa-2"))) == 1 })

	if err := e.store.SetVolume(ctx, "loa-2", 40); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.PublishConfigs(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new config", func() bool { return len(b.on(topics.DeviceConfig("loa-2"))) == 2 })
	var cfg protocol.DeviceConfig
	if _, err := protocol.Decode(b.on(topics.DeviceConfig("loa-2"))[1].Payload(), site, protocol.KindConfig, &cfg); err != nil || cfg.Volume != 40 {
		t.Fatalf("config %+v, %v; want volume 40", cfg, err)
	}

	// Removing the box clears its retained config and its credentials.
	if err := e.store.RemoveDevice(ctx, "loa-2"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ForgetDevice("loa-2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cleared config", func() bool { return len(b.on(topics.DeviceConfig("loa-2"))) == 3 })
	if p := b.on(topics.DeviceConfig("loa-2"))[2].Payload(); len(p) != 0 {
		t.Fatalf("clearing message has %d bytes", len(p))
	}
	if c, err := e.dial("loa-2", e.tokens["loa-2"]); err == nil {
		c.Disconnect(0)
		t.Fatal("a removed box can still log in")
	}
}

func testLogOut() io.Writer {
	if os.Getenv("LOA_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// TestHeartbeatsAreBatched: heartbeats arriving together are written in
// shared transactions, and the last one of each box is what status shows.
func TestHeartbeatsAreBatched(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const each = 100
	for _, id := range []string{"loa-1", "loa-2"} {
		c := e.box(t, id)
		var toks []paho.Token
		for i := range each {
			st := protocol.State{Online: true, State: protocol.StateIdle, Volume: 70, UptimeSec: int64(i), At: e.now}
			toks = append(toks, c.Publish(topics.DeviceState(id), 1, false, encode(t, protocol.KindState, st)))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish a heartbeat: %v", tok.Error())
			}
		}
	}
	eventually(t, "every heartbeat stored", func() bool { return e.svc.Metrics()["states_ingested"] == 2*each })
	if m := e.svc.Metrics(); m["state_batches"] >= 2*each {
		t.Fatalf("%d heartbeats took %d transactions: not batched", m["states_ingested"], m["state_batches"])
	}
	s, err := e.store.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range s {
		if !d.Online || d.UptimeSec != each-1 {
			t.Fatalf("%s: online %v, uptime %d; want the last heartbeat (uptime %d)", d.ID, d.Online, d.UptimeSec, each-1)
		}
	}
}
