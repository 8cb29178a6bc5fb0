package triggers

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 10, 28, 3, 0, 0, 0, time.UTC)

func ptr(x float64) *float64 { return &x }

// flood is the river rule of the examples: above 400, hysteresis 10.
func flood() Rule {
	return Rule{
		Name: "flood", Source: "river", Field: "level", Above: ptr(400), Hysteresis: 10,
		Cooldown: 30 * time.Minute, CancelOnClear: true,
		Action: Action{Tone: "flood", Text: "Mực nước {{value}}", All: true},
	}
}

// step is one thing that happens at t0+at: a reading of value (of field,
// default the rule's field; from source, default "river"), or a Tick.
type step struct {
	at     time.Duration
	value  float64
	field  string
	source string
	tick   bool
	want   []string // "rule kind", in order
}

func obs(at time.Duration, v float64, want ...string) step {
	return step{at: at, value: v, want: want}
}

func tick(at time.Duration, want ...string) step { return step{at: at, tick: true, want: want} }

// run feeds steps to a new engine of rules and checks every step's
// decisions. It returns all decisions for further checks.
func run(t *testing.T, rules []Rule, steps []step) []Decision {
	t.Helper()
	e, err := NewEngine(rules)
	if err != nil {
		t.Fatal(err)
	}
	var all []Decision
	for i, s := range steps {
		now := t0.Add(s.at)
		var got []Decision
		if s.tick {
			got = e.Tick(now)
		} else {
			src, field := s.source, s.field
			if src == "" {
				src = "river"
			}
			if field == "" {
				field = rules[0].Field
			}
			got = e.Observe(src, Reading{Values: map[string]float64{field: s.value}}, now)
		}
		var names []string
		for _, d := range got {
			names = append(names, d.Rule+" "+string(d.Kind))
			if d.Reason == "" || !d.At.Equal(now) {
				t.Errorf("step %d: decision %+v lacks a reason or has the wrong time", i, d)
			}
		}
		if strings.Join(names, ", ") != strings.Join(s.want, ", ") {
			t.Errorf("step %d (t+%v, %v): got [%s], want [%s]", i, s.at, s.value,
				strings.Join(names, ", "), strings.Join(s.want, ", "))
			for _, d := range got {
				t.Logf("  %s %s: %s", d.Rule, d.Kind, d.Reason)
			}
		}
		all = append(all, got...)
	}
	return all
}

func TestEngineSequences(t *testing.T) {
	s := time.Second
	m := time.Minute
	below := func() Rule {
		r := flood()
		r.Name, r.Field, r.Above, r.Below, r.Hysteresis = "dry", "level", nil, ptr(50), 5
		return r
	}
	debounced := func() Rule { r := flood(); r.For = 5 * m; return r }
	noCancel := func() Rule { r := flood(); r.CancelOnClear = false; return r }
	noHysteresis := func() Rule { r := flood(); r.Hysteresis = 0; return r }

	tests := []struct {
		name  string
		rules []Rule
		steps []step
	}{
		{"above starts once and clears below threshold minus hysteresis", []Rule{flood()}, []step{
			obs(0, 380), obs(1*s, 400), obs(2*s, 400.5, "flood start"), obs(3*s, 450),
			obs(4*s, 395), obs(5*s, 390), obs(6*s, 389.9, "flood cancel"), obs(7*s, 380),
		}},
		{"below rule mirrors above", []Rule{below()}, []step{
			obs(0, 60), obs(1*s, 50), obs(2*s, 49, "dry start"), obs(3*s, 52), obs(4*s, 55),
			obs(5*s, 55.1, "dry cancel"),
		}},
		{"cooldown after cancel, then starts again", []Rule{flood()}, []step{
			obs(0, 401, "flood start"), obs(1*m, 385, "flood cancel"),
			obs(5*m, 401, "flood suppressed"), obs(6*m, 385), obs(10*m, 420), // one notice per cooldown
			obs(30*m, 420), obs(31*m-s, 420), obs(31*m, 420, "flood start"),
		}},
		{"condition still met when cooldown ends starts at next reading", []Rule{flood()}, []step{
			obs(0, 401, "flood start"), obs(1*m, 300, "flood cancel"), obs(2*m, 500, "flood suppressed"),
			obs(40*m, 500, "flood start"),
		}},
		{"for: condition must hold, a dip resets it", []Rule{debounced()}, []step{
			obs(0, 401), obs(2*m, 401), obs(3*m, 399), obs(4*m, 401), obs(8*m, 450),
			obs(9*m, 402, "flood start"), obs(20*m, 300, "flood cancel"),
		}},
		{"for: a single spike starts nothing", []Rule{debounced()}, []step{
			obs(0, 900), obs(1*m, 380), obs(6*m, 380), obs(7*m, 380),
		}},
		{"for and cooldown together", []Rule{debounced()}, []step{
			obs(0, 401), obs(5*m, 401, "flood start"), obs(6*m, 300, "flood cancel"),
			obs(7*m, 401), obs(12*m, 401, "flood suppressed"), obs(36*m, 401, "flood start"),
		}},
		{"without cancel_on_clear a clear is only a notice", []Rule{noCancel()}, []step{
			obs(0, 401, "flood start"), obs(1*m, 380, "flood clear"), obs(2*m, 401, "flood suppressed"),
			obs(31*m, 401, "flood start"),
		}},
		{"without hysteresis cooldown still bounds the alerts", []Rule{noHysteresis()}, []step{
			obs(0, 401, "flood start"), obs(1*s, 399, "flood cancel"), obs(2*s, 401, "flood suppressed"),
			obs(3*s, 399), obs(4*s, 401), obs(30*m, 399), obs(31*m+s, 401, "flood start"),
		}},
		{"unknown source and field are ignored", []Rule{flood()}, []step{
			{at: 0, value: 999, source: "other-gauge"}, {at: s, value: 999, field: "rain_mm_h"},
			obs(2*s, 401, "flood start"),
		}},
		{"several rules on one source", []Rule{
			{Name: "warn", Source: "river", Field: "level", Above: ptr(350), Hysteresis: 20,
				Cooldown: time.Hour, CancelOnClear: true, Action: Action{Tone: "other", Groups: []string{"ben-do"}}},
			{Name: "flood", Source: "river", Field: "level", Above: ptr(400), Hysteresis: 20,
				Cooldown: time.Hour, CancelOnClear: true, Action: Action{Tone: "flood", All: true}},
			{Name: "rain", Source: "river", Field: "rain_mm_h", Above: ptr(50), Cooldown: time.Hour,
				Action: Action{Tone: "storm", All: true}},
			{Name: "other-river", Source: "river2", Field: "level", Above: ptr(1), Cooldown: time.Hour,
				Action: Action{Tone: "flood", All: true}},
		}, []step{
			obs(0, 300), obs(m, 360, "warn start"), obs(2*m, 410, "flood start"),
			{at: 3 * m, value: 80, field: "rain_mm_h", want: []string{"rain start"}},
			obs(4*m, 380), obs(5*m, 379, "flood cancel"), obs(6*m, 330), obs(7*m, 329, "warn cancel"),
			obs(8*m, 500, "warn suppressed", "flood suppressed"),
		}},
		{"stale: silence is noticed once, state kept, readings resume", []Rule{func() Rule {
			r := flood()
			r.StaleAfter = 10 * m
			return r
		}()}, []step{
			tick(0), obs(m, 401, "flood start"), tick(5 * m), tick(11 * m), tick(11*m+s, "flood stale"),
			tick(20 * m), obs(25*m, 395, "flood resume"), obs(26*m, 389, "flood cancel"),
		}},
		{"stale: a sensor never heard from", []Rule{func() Rule {
			r := flood()
			r.StaleAfter = 10 * m
			return r
		}()}, []step{
			tick(0), tick(10 * m), tick(10*m+s, "flood stale"), obs(12*m, 401, "flood resume", "flood start"),
		}},
		{"stale: another field does not keep a rule fresh", []Rule{func() Rule {
			r := flood()
			r.StaleAfter = 10 * m
			return r
		}()}, []step{
			tick(0), obs(m, 300), {at: 5 * m, value: 1, field: "battery_v"}, tick(12*m, "flood stale"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, tt.rules, tt.steps) })
	}
}

// The requirement's own example: 399, 401, 399, 401 every second around
// 400 with hysteresis 10 yields exactly one Start; only below 390 clears.
func TestFlappingYieldsOneStart(t *testing.T) {
	var steps []step
	for i := range 600 {
		v := 399.0
		if i%2 == 1 {
			v = 401
		}
		steps = append(steps, step{at: time.Duration(i) * time.Second, value: v})
	}
	steps[1].want = []string{"flood start"}
	steps = append(steps, obs(10*time.Minute, 390), obs(10*time.Minute+time.Second, 389, "flood cancel"))
	for i := range 600 { // flapping on after the cancel: at most one notice, no start
		v := 385.0
		if i%2 == 1 {
			v = 401
		}
		s := step{at: 11*time.Minute + time.Duration(i)*time.Second, value: v}
		if i == 1 {
			s.want = []string{"flood suppressed"}
		}
		steps = append(steps, s)
	}
	got := run(t, []Rule{flood()}, steps)
	starts := 0
	for _, d := range got {
		if d.Kind == Start {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("%d starts, want 1", starts)
	}
}

func TestDecisionContents(t *testing.T) {
	r := flood()
	r.Action = Action{Tone: "flood", Text: "Mực nước sông {{value}} xăng-ti-mét ({{ field }})",
		Groups: []string{"thon-1", "thon-2"}, Exercise: true}
	e, err := NewEngine([]Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	r.Action.Groups[0] = "changed" // the engine kept its own copy
	got := e.Observe("river", Reading{Values: map[string]float64{"level": 412.5}}, t0)
	if len(got) != 1 {
		t.Fatalf("got %d decisions, want 1", len(got))
	}
	d := got[0]
	want := Action{Tone: "flood", Text: "Mực nước sông 412,5 xăng-ti-mét (level)",
		Groups: []string{"thon-1", "thon-2"}, Repeat: 1, Exercise: true}
	if d.Kind != Start || d.Value != 412.5 || d.Field != "level" || d.Source != "river" ||
		fmt.Sprint(d.Action) != fmt.Sprint(want) || !d.Kind.Acts() {
		t.Errorf("start = %+v, want action %+v", d, want)
	}
	if d.Reason != "level 412.5 is above 400" {
		t.Errorf("reason %q", d.Reason)
	}
	got = e.Observe("river", Reading{Values: map[string]float64{"level": 300}}, t0.Add(time.Hour))
	if len(got) != 1 || got[0].Kind != Cancel || fmt.Sprint(got[0].Action) != fmt.Sprint(want) {
		t.Fatalf("cancel = %+v, want the action that started", got)
	}
	if got[0].Reason != "level 300 is below 390 (400 less hysteresis 10)" {
		t.Errorf("reason %q", got[0].Reason)
	}
}

func TestSpokenNumber(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{412.5, "412,5"}, {400, "400"}, {1250, "1250"}, {0.125, "0,13"}, {-3.25, "-3,25"}, {-0.001, "0"}, {1e20, "100000000000000000000"}} {
		if got := spokenNumber(tt.in); got != tt.want {
			t.Errorf("spokenNumber(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestObserveIgnoresNonFiniteAndLateReadings(t *testing.T) {
	r := flood()
	r.StaleAfter = 10 * time.Minute
	e, err := NewEngine([]Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		if got := e.Observe("river", Reading{Values: map[string]float64{"level": v}}, t0); len(got) != 0 {
			t.Errorf("%v: got %+v, want nothing", v, got)
		}
	}
	e.Tick(t0)
	// A gauge that flushes its queue after an outage: a flood of yesterday.
	late := Reading{At: t0.Add(-24 * time.Hour), Values: map[string]float64{"level": 450}}
	if got := e.Observe("river", late, t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("late reading: got %+v, want nothing", got)
	}
	got := e.Tick(t0.Add(11 * time.Minute))
	if len(got) != 1 || got[0].Kind != Stale || !strings.Contains(got[0].Reason, "check the sensor's clock") {
		t.Fatalf("tick = %+v, want a stale notice that names the clock", got)
	}
	// A reading measured recently counts, even from a gauge a little ahead.
	fresh := Reading{At: t0.Add(12 * time.Minute), Values: map[string]float64{"level": 450}}
	got = e.Observe("river", fresh, t0.Add(11*time.Minute+time.Second))
	if len(got) != 2 || got[0].Kind != Resume || got[1].Kind != Start {
		t.Fatalf("fresh reading: got %+v, want resume and start", got)
	}
}

func TestStatesAndRestore(t *testing.T) {
	e, err := NewEngine([]Rule{flood()})
	if err != nil {
		t.Fatal(err)
	}
	phase := func(now time.Time) Phase { return e.States(now)[0].Phase }
	if p := phase(t0); p != Armed {
		t.Errorf("new rule is %s, want armed", p)
	}
	e.Observe("river", Reading{Values: map[string]float64{"level": 420}}, t0)
	saved := e.States(t0)
	if saved[0].Phase != Active || saved[0].StartValue != 420 || *saved[0].LastValue != 420 || !saved[0].StartedAt.Equal(t0) {
		t.Fatalf("state after start = %+v", saved[0])
	}

	// The controller restarts: a new engine learns the emergency is running,
	// so the same high water starts nothing new, and clearing cancels it.
	e2, _ := NewEngine([]Rule{flood()})
	if err := e2.Restore(saved); err != nil {
		t.Fatal(err)
	}
	if got := e2.Observe("river", Reading{Values: map[string]float64{"level": 430}}, t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("restored active rule: got %+v, want nothing", got)
	}
	got := e2.Observe("river", Reading{Values: map[string]float64{"level": 100}}, t0.Add(2*time.Minute))
	if len(got) != 1 || got[0].Kind != Cancel || got[0].Action.Text != "Mực nước 420" {
		t.Fatalf("clear after restore: got %+v, want cancel of the emergency started at 420", got)
	}
	if p := phase(t0.Add(2 * time.Minute)); p != Active {
		t.Errorf("first engine changed: %s", p)
	}
	if p := e2.States(t0.Add(3 * time.Minute))[0].Phase; p != Cooling {
		t.Errorf("after cancel: %s, want cooling", p)
	}

	// Cooldown counts from the last start too: restored as started 10
	// minutes ago and since cleared by staff, it may not start for 20 more.
	e3, _ := NewEngine([]Rule{flood()})
	err = e3.Restore([]RuleState{{Rule: "flood", Phase: Armed, StartedAt: t0.Add(-10 * time.Minute)}, {Rule: "gone"}})
	if !errors.Is(err, ErrUnknownRule) || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("restore with an unknown rule: %v", err)
	}
	high := Reading{Values: map[string]float64{"level": 500}}
	if got := e3.Observe("river", high, t0); len(got) != 1 || got[0].Kind != Suppressed {
		t.Errorf("within cooldown since start: got %+v, want suppressed", got)
	}
	if p := e3.States(t0.Add(time.Minute))[0].Phase; p != Cooling {
		t.Errorf("phase %s, want cooling", p)
	}
	if got := e3.Observe("river", high, t0.Add(20*time.Minute)); len(got) != 1 || got[0].Kind != Start {
		t.Errorf("after cooldown: got %+v, want start", got)
	}

	r := flood()
	r.For = time.Minute
	e4, _ := NewEngine([]Rule{r})
	e4.Observe("river", high, t0)
	if p := e4.States(t0)[0].Phase; p != Pending {
		t.Errorf("phase %s, want pending", p)
	}
}

func TestNewEngineErrors(t *testing.T) {
	bad := flood()
	bad.Cooldown = 0
	_, err := NewEngine([]Rule{flood(), bad})
	var re *RuleError
	if !errors.As(err, &re) || re.Field != "cooldown" || !strings.HasPrefix(err.Error(), "trigger rule 2: ") {
		t.Errorf("bad second rule: %v", err)
	}
	_, err = NewEngine([]Rule{flood(), flood()})
	if !errors.As(err, &re) || re.Field != "name" {
		t.Errorf("duplicate names: %v", err)
	}
	e, err := NewEngine(nil)
	if err != nil || e.Observe("river", Reading{Values: map[string]float64{"level": 1}}, t0) != nil || e.Tick(t0) != nil {
		t.Errorf("empty engine: %v", err)
	}
}

// Many goroutines feed one engine (go test -race checks the locking); a
// flapping sensor still starts each rule exactly once.
func TestEngineConcurrent(t *testing.T) {
	warn := flood()
	warn.Name, warn.Above = "warn", ptr(300)
	e, err := NewEngine([]Rule{flood(), warn})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		starts = map[string]int{}
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				now := t0.Add(time.Duration(i) * time.Second)
				v := 399.0 + float64((i+g)%3)
				got := e.Observe("river", Reading{Values: map[string]float64{"level": v}}, now)
				got = append(got, e.Tick(now)...)
				_ = e.States(now)
				mu.Lock()
				for _, d := range got {
					if d.Kind == Start {
						starts[d.Rule]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if starts["flood"] != 1 || starts["warn"] != 1 {
		t.Errorf("starts = %v, want one per rule", starts)
	}
}
