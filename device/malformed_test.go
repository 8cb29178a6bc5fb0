package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// badPayloads are messages a box must shrug off on any topic it reads.
func badPayloads(t testing.TB, target string, good protocol.PlanItem) map[string][]byte {
	t.Helper()
	tp := protocol.NewTopics(testSite)
	topic := tp.DeviceConfig(testID)
	if target != "config" {
		topic = tp.Root() + "/plan/" + target
	}
	// Signed like the controller's, so each fails for its own reason.
	enc := func(kind protocol.Kind, site string, body any) []byte {
		return signed(t, topic, kind, site, 99, t0.Add(time.Hour), body)
	}
	plan := func(mut func(*protocol.PlanItem)) protocol.Plan {
		it := good
		it.ID = "evil-" + it.ID
		mut(&it)
		return protocol.Plan{Target: target, Generated: t0.Add(time.Hour), Items: []protocol.PlanItem{it}}
	}
	wrongVersion, _ := json.Marshal(map[string]any{"v": 2, "kind": "plan", "site": testSite, "issued": t0, "seq": 1,
		"body": plan(func(*protocol.PlanItem) {})})
	huge := append([]byte(`{"v":1,"kind":"plan","site":"`+testSite+`","body":{"target":"`+target+`","items":[`), bytes.Repeat([]byte(`{"id":"x"},`), 200_000)...)
	huge = append(huge, []byte(`{}]}}`)...)
	// A valid body of the other kind.
	wrongKind := enc(protocol.KindConfig, testSite, protocol.DeviceConfig{Groups: []string{"x"}})
	if target == "config" {
		wrongKind = enc(protocol.KindPlan, testSite, plan(func(*protocol.PlanItem) {}))
	}
	return map[string][]byte{
		"not json":      []byte("{{{ not json"),
		"empty":         {},
		"null":          []byte("null"),
		"wrong kind":    wrongKind,
		"wrong site":    enc(protocol.KindPlan, "other-commune", plan(func(*protocol.PlanItem) {})),
		"wrong version": wrongVersion,
		"bad item id":   enc(protocol.KindPlan, testSite, plan(func(it *protocol.PlanItem) { it.ID = "../../etc/passwd" })),
		"bad sha":       enc(protocol.KindPlan, testSite, plan(func(it *protocol.PlanItem) { it.Media.SHA256 = "ABC" })),
		"bad priority":  []byte(strings.Replace(string(enc(protocol.KindPlan, testSite, plan(func(*protocol.PlanItem) {}))), `"normal"`, `"urgent"`, 1)),
		"wrong target":  enc(protocol.KindPlan, testSite, protocol.Plan{Target: "device/someone-else", Generated: t0.Add(time.Hour), Items: []protocol.PlanItem{}}),
		"no body":       []byte(`{"v":1,"kind":"plan","site":"` + testSite + `","issued":"2026-03-02T06:00:00Z","seq":5}`),
		"trailing data": append(enc(protocol.KindPlan, testSite, plan(func(*protocol.PlanItem) {})), []byte(" {}")...),
		"huge":          huge,
		"binary":        {0xff, 0xfe, 0x00, 0x01, 0x80},
	}
}

func TestMalformedPayloadsAreIgnored(t *testing.T) {
	ctl, ms, broker := setup(t, "thon-1")
	m := makeMedia(t, 440, time.Second)
	ms.add(m)
	it := item("precious", t0.Add(time.Hour), 10*time.Minute, m)
	ctl.plan("all", t0, it)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventReady)

	topics := map[string]string{
		ctl.topics.PlanAll():            "all",
		ctl.topics.PlanGroup("thon-1"):  "group/thon-1",
		ctl.topics.PlanDevice(testID):   "device/" + testID,
		ctl.topics.DeviceConfig(testID): "config",
	}
	for topic, target := range topics {
		for name, payload := range badPayloads(t, target, it) {
			t.Logf("%s: %s", topic, name)
			ctl.publishRaw(topic, payload, true)
		}
	}
	badConfigs := []protocol.DeviceConfig{
		{Groups: []string{"bad group/"}, Volume: 50},
		{Groups: []string{}, Volume: 101},
		{Groups: []string{}, Volume: 50, HeartbeatSec: -1},
		{Groups: []string{}, Volume: 50, AnswerSpreadMS: -1},
	}
	for _, c := range badConfigs {
		ctl.config(t0.Add(time.Hour), c)
	}

	// A good message after the bad ones proves they were all handled.
	s := item("sentinel", t0.Add(2*time.Hour), time.Minute, m)
	ctl.plan("device/"+testID, t0.Add(2*time.Hour), s)
	ctl.waitEvent(s.ID, protocol.EventReady)

	for _, ev := range ctl.allEvents() {
		if strings.HasPrefix(ev.Item, "evil-") || ev.Type == protocol.EventCancelled {
			t.Fatalf("a bad message changed the plan: %+v", ev)
		}
	}
	st := ctl.waitState(protocol.StateIdle)
	if st.Volume != 60 {
		t.Fatalf("a bad config changed the volume: %+v", st)
	}
	b.clock.Advance(time.Hour)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	if _, ok := b.wav(it.ID); !ok {
		t.Fatal("stored item did not play after bad messages")
	}
	b.stop()
	data, err := os.ReadFile(filepath.Join(b.cache, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	var saved savedState
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if p := saved.Plans["all"]; p == nil || len(p.Plan.Items) != 1 || p.Plan.Items[0].ID != it.ID {
		t.Fatalf("stored plan changed: %+v", saved.Plans["all"])
	}
	if saved.Config == nil || !slices.Equal(saved.Config.Config.Groups, []string{"thon-1"}) {
		t.Fatalf("stored config changed: %+v", saved.Config)
	}
}

// fuzzAgent is an agent that is never Run: the fuzzers feed its message
// handler and apply the inbox as the loop would.
func fuzzAgent(t testing.TB) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.Site, cfg.Broker, cfg.Server, cfg.Token, cfg.Cache = testID, testSite, "tcp://127.0.0.1:1", "http://127.0.0.1:1", testToken, t.TempDir()
	cfg.ControllerKeys = testKeys
	a, err := New(cfg, nullSink{}, nil, newFakeClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// snapshot is the agent's stored plans and config, to compare.
func snapshot(t testing.TB, a *Agent) string {
	b, err := json.Marshal(struct {
		C *heldConfig
		P map[string]*heldPlan
	}{a.config, a.plans})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// feed hands one message to a as paho would and applies it as the loop
// would, then checks the agent's invariants.
func feed(t *testing.T, a *Agent, topic string, data []byte, kind protocol.Kind, body any) {
	before := snapshot(t, a)
	a.handleMessage(topic, data, false)
	a.applyInbox()
	a.out.next() // drop what would be published
	_, decodeErr := protocol.Decode(data, testSite, kind, body)
	if decodeErr != nil && snapshot(t, a) != before {
		t.Fatalf("a message that does not decode (%v) changed the stored state", decodeErr)
	}
	for target, p := range a.plans {
		if err := p.Plan.Validate(); err != nil {
			t.Fatalf("stored an invalid plan for %s: %v", target, err)
		}
		if p.Plan.Target != target {
			t.Fatalf("plan for %s stored under %s", p.Plan.Target, target)
		}
	}
	if a.config != nil {
		if err := a.config.Config.Validate(); err != nil {
			t.Fatalf("stored an invalid config: %v", err)
		}
	}
	for id := range a.live {
		if a.items[id] == nil {
			t.Fatalf("item %s in the plan has no record", id)
		}
	}
}

func fuzzSeeds(f *testing.F, target string) {
	m := media{data: []byte("x"), sha: strings.Repeat("ab", 32)}
	good := item("seed-item", t0.Add(time.Hour), time.Hour, m)
	tp := protocol.NewTopics(testSite)
	b := signed(f, tp.Root()+"/plan/"+target, protocol.KindPlan, testSite, 1, t0, protocol.Plan{Target: target, Generated: t0, Items: []protocol.PlanItem{good}})
	f.Add(uint8(0), b)
	c := signed(f, tp.DeviceConfig(testID), protocol.KindConfig, testSite, 1, t0, protocol.DeviceConfig{Groups: []string{"thon-1"}, Volume: 40})
	f.Add(uint8(3), c)
	for name, p := range badPayloads(f, target, good) {
		if name != "huge" {
			f.Add(uint8(len(name)), p)
		}
	}
}

// FuzzPlanMessage feeds arbitrary payloads on the plan topics (and, by the
// topic selector, the config topic) to the agent's message handler.
func FuzzPlanMessage(f *testing.F) {
	fuzzSeeds(f, "all")
	a := fuzzAgent(f)
	tp := protocol.NewTopics(testSite)
	// Join a group so group plans are taken.
	c := signed(f, tp.DeviceConfig(testID), protocol.KindConfig, testSite, 1, t0, protocol.DeviceConfig{Groups: []string{"thon-1"}, Volume: 40})
	a.handleMessage(tp.DeviceConfig(testID), c, false)
	a.applyInbox()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		topics := []string{tp.PlanAll(), tp.PlanGroup("thon-1"), tp.PlanDevice(testID), tp.PlanGroup("thon-9")}
		topic := topics[int(which)%len(topics)]
		var p protocol.Plan
		feed(t, a, topic, data, protocol.KindPlan, &p)
	})
}

// FuzzConfigMessage feeds arbitrary payloads on the config topic.
func FuzzConfigMessage(f *testing.F) {
	fuzzSeeds(f, "all")
	a := fuzzAgent(f)
	tp := protocol.NewTopics(testSite)
	f.Fuzz(func(t *testing.T, _ uint8, data []byte) {
		var c protocol.DeviceConfig
		feed(t, a, tp.DeviceConfig(testID), data, protocol.KindConfig, &c)
	})
}

var _ = fmt.Sprint
