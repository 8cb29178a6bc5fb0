package device

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// ruleSpecs are the schedules both sides must expand alike: month ends, a
// leap day, quarter hours, a descriptor, a zone with summer time.
var ruleSpecs = []struct{ spec, zone string }{
	{"0 6 * * *", "Asia/Ho_Chi_Minh"},
	{"30 17 * * 1-5", "Asia/Ho_Chi_Minh"},
	{"0 7 31 * *", "Asia/Ho_Chi_Minh"},
	{"0 8 29 2 *", "Asia/Ho_Chi_Minh"},
	{"*/15 6-8 * * *", "Asia/Ho_Chi_Minh"},
	{"@daily", "Asia/Ho_Chi_Minh"},
	{"0 6 * * *", "Europe/Berlin"},
	{"30 2 * * *", "Europe/Berlin"},
	{"15 23 31 * *", "Europe/Berlin"},
}

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestRuleItemsSameOnBoxAndController: for every spec of the table, over
// 2027 and 2028 a day at a time, the items a box makes of the rule its plan
// carries (signed, sent, checked, held) are the controller's items of the
// stored schedule, field for field, for every start in the box's window.
func TestRuleItemsSameOnBoxAndController(t *testing.T) {
	for _, tc := range ruleSpecs {
		t.Run(tc.zone+" "+tc.spec, func(t *testing.T) {
			loc := zone(t, tc.zone)
			from := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)
			to := time.Date(2029, 1, 1, 0, 0, 0, 0, loc)
			m := store.Media{SHA256: strings.Repeat("ab", 32), Size: 4096, Duration: 90 * time.Second, CreatedAt: from}
			stored := store.Rule{ID: "s-7", Kind: store.KindCron, Cron: tc.spec, Media: m.SHA256, Priority: protocol.High,
				Repeat: 2, Gap: 3 * time.Second, Validity: 20 * time.Minute, Text: "bản tin", Status: protocol.StatusLive, CreatedAt: from}
			rule := broadcaster.SchedulerRule(stored, m) // as the controller plans it
			ctl := scheduler.New(loc, scheduler.DefaultHorizon)
			wire, ok := scheduler.PlanRule(rule, loc)
			if !ok {
				t.Fatal("the schedule does not travel")
			}
			p := protocol.Plan{Target: "all", Generated: from, Items: []protocol.PlanItem{}, Rules: []protocol.PlanRule{wire}, RulesUntil: to.AddDate(1, 0, 0)}
			topic := protocol.NewTopics(testSite).PlanAll()
			b, err := protocol.EncodeSigned(topic, protocol.KindPlan, testSite, 1, from, p, testSigner)
			if err != nil {
				t.Fatal(err)
			}
			var got protocol.Plan
			if _, err := protocol.Decode(b, testSite, protocol.KindPlan, &got); err != nil {
				t.Fatal(err)
			}
			a := &Agent{log: slog.New(slog.DiscardHandler), plans: map[string]*heldPlan{"all": {Seq: 1, Plan: got}}}
			compared := 0
			for now := from; now.Before(to); now = now.Add(24 * time.Hour) {
				want, err := ctl.Items([]scheduler.Rule{rule}, now)
				if err != nil {
					t.Fatal(err)
				}
				box := map[string]protocol.PlanItem{}
				a.addRuleItems(box, now, true)
				for _, w := range want {
					if !w.Start.Before(now.Add(ruleLookahead)) {
						continue // past the box's window: the plan has it
					}
					g, ok := box[w.ID]
					if !ok {
						t.Fatalf("at %v the box lacks %s", now, w.ID)
					}
					if !reflect.DeepEqual(g, w) {
						t.Fatalf("at %v item %s differs:\nbox        %+v\ncontroller %+v", now, w.ID, g, w)
					}
					delete(box, w.ID)
					compared++
				}
				if len(box) != 0 {
					t.Fatalf("at %v the box made items the controller does not: %v", now, box)
				}
			}
			if compared == 0 && tc.spec != "0 8 29 2 *" {
				t.Fatal("nothing compared")
			}
		})
	}
}

// fastReconnect makes the box come back to its broker within a fraction of
// a second instead of after the fleet's random spread.
func fastReconnect(a *Agent) {
	will, _ := a.encodeState(protocol.State{Online: false, State: protocol.StateOffline, Volume: a.volume(), Version: Version, At: a.clock.Now().UTC()})
	o := a.newMQTTOptions(will)
	o.SetMaxReconnectInterval(100 * time.Millisecond)
	o.SetConnectRetryInterval(100 * time.Millisecond)
	o.SetConnectionNotificationHandler(func(mqtt.Client, mqtt.ConnectionNotification) {})
	a.client = mqtt.NewClient(o)
}

var hcm = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		panic(err)
	}
	return loc
}()

// dailyRule is a schedule as the controller holds it.
func dailyRule(id, spec string, m media) scheduler.Rule {
	return scheduler.Rule{ID: id, Cron: spec, NotBefore: t0, Validity: 15 * time.Minute, Item: protocol.PlanItem{
		Priority: protocol.Normal, Media: m.ref(), Repeat: 1, OnPreempt: protocol.OnPreemptRestart, Status: protocol.StatusLive}}
}

// rulesPlan is the plan the controller publishes at now for rules: their
// items over 48 h and the rules themselves.
func rulesPlan(t testing.TB, target string, now time.Time, rules ...scheduler.Rule) protocol.Plan {
	t.Helper()
	items, err := scheduler.New(hcm, scheduler.DefaultHorizon).Items(rules, now)
	if err != nil {
		t.Fatal(err)
	}
	p := protocol.Plan{Target: target, Generated: now, Items: items, RulesUntil: now.Add(broadcaster.DefaultOfflineFor)}
	if items == nil {
		p.Items = []protocol.PlanItem{}
	}
	for _, r := range rules {
		pr, ok := scheduler.PlanRule(r, hcm)
		if !ok {
			t.Fatalf("rule %s does not travel", r.ID)
		}
		p.Rules = append(p.Rules, pr)
	}
	return p
}

// dailyStarts lists the starts of "M H * * *" in Ho Chi Minh City after
// from, for days days: the test's own arithmetic, not cron's.
func dailyStarts(from time.Time, hour, minute, days int) []time.Time {
	var out []time.Time
	l := from.In(hcm)
	for d := 0; len(out) < days; d++ {
		s := time.Date(l.Year(), l.Month(), l.Day()+d, hour, minute, 0, 0, hcm)
		if s.After(from) {
			out = append(out, s.UTC())
		}
	}
	return out
}

// offlineBox is a box that took a plan with rules from the controller and
// then lost its broker and its media server.
type offlineBox struct {
	*box
	addr   string
	ctl    *controller
	ms     *mediaServer
	morn   media
	eve    media
	broker string
	// back is the broker recording the box's answers once it is back;
	// the box then sends them at once and they leave its outbox.
	back *controller
}

func startOfflineBox(t *testing.T, rules func(morn, eve media) []scheduler.Rule) *offlineBox {
	t.Helper()
	srv, broker := startLosableBroker(t)
	ms := newMediaServer(t)
	o := &offlineBox{addr: strings.TrimPrefix(broker, "tcp://"), ms: ms, broker: broker,
		morn: makeMedia(t, 440, 200*time.Millisecond), eve: makeMedia(t, 660, 200*time.Millisecond)}
	ms.add(o.morn)
	ms.add(o.eve)
	o.ctl = newController(t, broker)
	o.ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 60, EmergencyVolume: 90})
	p := rulesPlan(t, "all", t0, rules(o.morn, o.eve)...)
	o.ctl.publish(o.ctl.topics.PlanAll(), protocol.KindPlan, t0, p)
	o.box = startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: fastReconnect})
	for _, it := range p.Items {
		o.ctl.waitEvent(it.ID, protocol.EventReady)
	}
	// The mast loses power: no broker, no media server.
	srv()
	ms.Close()
	eventually(t, "the box to lose its broker", func() bool { return !o.agent.client.IsConnectionOpen() }, nil)
	return o
}

// startLosableBroker is a broker on a free loopback port and the function
// that closes it (once, also at the test's end).
func startLosableBroker(t testing.TB) (stop func(), url string) {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := mochistop.NewListener("tcp", "127.0.0.1:0", nil)
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { closeBroker(s) }) }
	t.Cleanup(stop)
	return stop, "tcp://" + l.Address()
}

// playsAt moves the clock to start and waits until the answer that item
// played is on the memory card, to be sent when the broker is back, or,
// once it is back, has reached it.
func (o *offlineBox) playsAt(item string, start time.Time) {
	o.t.Helper()
	o.clock.Set(start)
	eventually(o.t, "item "+item+" to play at "+start.String(), func() bool {
		if o.back != nil && slices.ContainsFunc(o.back.allEvents(), func(ev protocol.Event) bool {
			return ev.Item == item && ev.Type == protocol.EventPlayed
		}) {
			return true
		}
		return slices.Contains(outboxEvents(o.t, o.cache, item), protocol.EventPlayed)
	}, func() string { return fmt.Sprint(outboxEvents(o.t, o.cache, item)) })
}

// outboxEvents lists the answers about item waiting in the box's outbox.
func outboxEvents(t testing.TB, cache, item string) []protocol.EventType {
	t.Helper()
	var out []protocol.EventType
	for _, name := range outboxFiles(t, cache) {
		rec, err := readOutboxRecord(filepath.Join(cache, outboxDirName, name))
		if err != nil {
			continue // being written
		}
		evs, err := protocol.DecodeEvents(rec.payload, testSite)
		if err != nil {
			t.Fatalf("outbox record %s: %v", name, err)
		}
		for _, ev := range evs {
			if ev.Item == item {
				out = append(out, ev.Type)
			}
		}
	}
	return out
}

// TestRulesPlayTwoWeeksOffline: a box whose plan carried two daily rules
// loses the network and is moved 14 days ahead. It plays both rules every
// day on time, each occurrence once, from its cache, and when the broker is
// back its answers report every occurrence as played at its start.
func TestRulesPlayTwoWeeksOffline(t *testing.T) {
	o := startOfflineBox(t, func(morn, eve media) []scheduler.Rule {
		return []scheduler.Rule{dailyRule("s-morning", "0 6 * * *", morn), dailyRule("s-evening", "30 17 * * *", eve)}
	})
	type occ struct {
		id    string
		start time.Time
		m     media
	}
	var all []occ
	for _, s := range dailyStarts(t0, 6, 0, 14) {
		all = append(all, occ{scheduler.ItemID("s-morning", s), s, o.morn})
	}
	for _, s := range dailyStarts(t0, 17, 30, 14) {
		all = append(all, occ{scheduler.ItemID("s-evening", s), s, o.eve})
	}
	slices.SortFunc(all, func(x, y occ) int { return x.start.Compare(y.start) })
	if last := all[len(all)-1].start; last.Sub(t0) < 13*24*time.Hour {
		t.Fatalf("the test covers only until %v", last)
	}
	for _, x := range all {
		o.playsAt(x.id, x.start)
		got, _ := o.wav(x.id)
		assertSamples(t, got, expectedPCM(t, x.m, 60))
	}
	// Nothing played twice: one file per item, no "_2".
	files, err := os.ReadDir(o.wavDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(all) {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Fatalf("%d files played, want %d: %v", len(files), len(all), names)
	}

	// The mast is back: the answers kept on the card reach the controller.
	rec := startRecordingBroker(t, o.addr)
	for _, x := range all {
		eventually(t, "played "+x.id, func() bool {
			for _, ev := range rec.allEvents() {
				if ev.Item == x.id && ev.Type == protocol.EventPlayed {
					return true
				}
			}
			return false
		}, func() string {
			return fmt.Sprint(rec.eventsOf(x.id), " of ", len(rec.allEvents()), " events; outbox ", outboxFiles(t, o.cache))
		})
	}
	for _, ev := range rec.allEvents() {
		if ev.Type != protocol.EventPlayed {
			continue
		}
		for _, x := range all {
			if x.id == ev.Item && (!ev.Started.Equal(x.start) || !ev.At.Equal(x.start)) {
				t.Errorf("%s played from %v (answered at %v), want at %v", x.id, ev.Started, ev.At, x.start)
			}
		}
	}
	plays := map[string]int{}
	for _, ev := range rec.allEvents() {
		if ev.Type == protocol.EventPlaying {
			plays[ev.Item]++
		}
	}
	for _, x := range all {
		if plays[x.id] != 1 {
			t.Errorf("%s started %d times", x.id, plays[x.id])
		}
	}
}

// TestRulePausedOfflineStopsAtNewPlan: a rule paused on the controller while
// the box was cut off plays until the box is back, and not once after the
// new plan reached it; the other rule plays on.
func TestRulePausedOfflineStopsAtNewPlan(t *testing.T) {
	var rules []scheduler.Rule
	o := startOfflineBox(t, func(morn, eve media) []scheduler.Rule {
		rules = []scheduler.Rule{dailyRule("s-morning", "0 6 * * *", morn), dailyRule("s-evening", "30 17 * * *", eve)}
		return rules
	})
	morning, evening := dailyStarts(t0, 6, 0, 5), dailyStarts(t0, 17, 30, 5)
	for d := range 3 { // three days alone; 17:30 in Ho Chi Minh City comes first on 2 March
		o.playsAt(scheduler.ItemID("s-evening", evening[d]), evening[d])
		o.playsAt(scheduler.ItemID("s-morning", morning[d]), morning[d])
	}
	// Meanwhile the morning rule was paused. The box comes back after the
	// third evening and gets the plan the controller publishes then.
	back := morning[2].Add(time.Hour)
	o.clock.Set(back)
	rules[0].Paused = true
	rec := startRecordingBroker(t, o.addr)
	o.back = rec
	ctl := newController(t, o.broker)
	ctl.seq.Store(1000) // the controller's sequence grows across its restarts
	ctl.publish(ctl.topics.PlanAll(), protocol.KindPlan, back, rulesPlan(t, "all", back, rules...))
	next := scheduler.ItemID("s-morning", morning[3])
	eventually(t, "the next morning item cancelled", func() bool {
		for _, ev := range rec.allEvents() {
			if ev.Item == next && ev.Type == protocol.EventCancelled {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprint(rec.allEvents()) })

	o.playsAt(scheduler.ItemID("s-evening", evening[3]), evening[3])
	o.clock.Set(morning[3])
	o.playsAt(scheduler.ItemID("s-evening", evening[4]), evening[4])
	o.clock.Set(morning[4])
	o.clock.Set(morning[4].Add(time.Minute))
	for _, s := range morning[3:] {
		if _, ok := o.wav(scheduler.ItemID("s-morning", s)); ok {
			t.Errorf("the paused rule played at %v", s)
		}
	}
	for _, s := range morning[:3] {
		if _, ok := o.wav(scheduler.ItemID("s-morning", s)); !ok {
			t.Errorf("the rule did not play at %v, before the pause reached the box", s)
		}
	}
}

// TestRuleMediaStaysInCache: the media of a rule whose next occurrence is
// beyond the box's window is fetched and not evicted by a full cache.
func TestRuleMediaStaysInCache(t *testing.T) {
	ctl, ms, broker := setup(t)
	monthly, other := makeMedia(t, 440, 300*time.Millisecond), makeMedia(t, 550, 300*time.Millisecond)
	ms.add(monthly)
	ms.add(other)
	// The 1st of the month at 06:00: weeks after t0 (2 March).
	r := dailyRule("s-monthly", "0 6 1 * *", monthly)
	p := rulesPlan(t, "all", t0, r)
	if len(p.Items) != 0 {
		t.Fatalf("the monthly rule has items in the horizon: %v", p.Items)
	}
	ctl.plan("device/"+testID, t0, item("other", t0.Add(time.Minute), time.Hour, other))
	ctl.publish(ctl.topics.PlanAll(), protocol.KindPlan, t0, p)
	b := startBox(t, boxOpts{broker: broker, server: ms.URL, prepare: func(a *Agent) { a.cfg.CacheMaxMB = 0 }})
	ctl.waitEvent("other", protocol.EventReady)
	pcm := b.agent.pcmPath(monthly.sha)
	eventually(t, "the monthly rule's media fetched ahead", func() bool { _, err := os.Stat(pcm); return err == nil }, nil)
	b.clock.Advance(time.Minute)
	ctl.waitEvent("other", protocol.EventPlayed)
	ctl.plan("device/"+testID, t0.Add(time.Hour)) // the other item leaves: its media may go
	eventually(t, "the other media evicted", func() bool { _, err := os.Stat(b.agent.pcmPath(other.sha)); return err != nil }, nil)
	if _, err := os.Stat(pcm); err != nil {
		t.Fatalf("the rule's media was evicted: %v", err)
	}
}

// TestRuleItemsKeptWhileClockUnknown: while the clock cannot be trusted
// the box makes no items of its rules, and does not cancel those it made
// before; a paused rule's and other items are not kept.
func TestRuleItemsKeptWhileClockUnknown(t *testing.T) {
	m := makeMedia(t, 440, 100*time.Millisecond)
	paused := dailyRule("s-paused", "0 7 * * *", m)
	paused.Paused = true
	p := rulesPlan(t, "all", t0, dailyRule("s-morning", "0 6 * * *", m), paused)
	a := &Agent{log: slog.New(slog.DiscardHandler), plans: map[string]*heldPlan{"all": {Seq: 1, Plan: p}}}
	for _, tc := range []struct {
		id        string
		plausible bool
		keep      bool
	}{
		{"s-morning-1772492400", false, true},
		{"s-morning-1772492400", true, false},
		{"s-paused-1772496000", false, false},
		{"a-1-1772492400", false, false},
		{"s-morning-x", false, false},
	} {
		if got := a.keepRuleItem(tc.id, tc.plausible); got != tc.keep {
			t.Errorf("keepRuleItem(%s, plausible %v) = %v, want %v", tc.id, tc.plausible, got, tc.keep)
		}
	}
	merged := map[string]protocol.PlanItem{}
	a.addRuleItems(merged, t0, false)
	if len(merged) != 0 || !a.rulesDue(t0) {
		t.Fatalf("without a plausible clock: %d items, due %v", len(merged), a.rulesDue(t0))
	}
	a.addRuleItems(merged, t0, true)
	if len(merged) != 1 || a.rulesDue(t0) {
		t.Fatalf("with a plausible clock: %v, due %v", merged, a.rulesDue(t0))
	}
}
