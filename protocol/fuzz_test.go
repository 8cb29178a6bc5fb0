package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzDecode checks that Decode never panics on data and that whatever it
// accepts survives a re-encode and a second decode unchanged.
func fuzzDecode[T any](t *testing.T, data []byte, kind Kind) {
	v := new(T)
	env, err := Decode(data, testSite, kind, v)
	if err != nil {
		return
	}
	again, err := Encode(kind, testSite, env.Seq, env.Issued, v)
	if err != nil {
		t.Fatalf("an accepted %s does not re-encode: %v\ninput %q", kind, err, data)
	}
	w := new(T)
	env2, err := Decode(again, testSite, kind, w)
	if err != nil {
		t.Fatalf("a re-encoded %s is refused: %v\ninput %q\nre-encoded %q", kind, err, data, again)
	}
	if env2.Seq != env.Seq || !env2.Issued.Equal(env.Issued) {
		t.Fatalf("envelope changed: %+v → %+v", env, env2)
	}
	// Times decoded from different offsets are equal instants but not
	// DeepEqual, so compare what goes on the wire.
	b1, err1 := json.Marshal(v)
	b2, err2 := json.Marshal(w)
	if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("%s changed in a round trip:\n first %s (%v)\nsecond %s (%v)", kind, b1, err1, b2, err2)
	}
	if !reflect.DeepEqual(normalize(t, v), normalize(t, w)) {
		t.Fatalf("%s changed in a round trip: %+v → %+v", kind, v, w)
	}
}

// normalize maps a value to its generic JSON form.
func normalize(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func seed(f *testing.F, kind Kind, body any) {
	data, err := Encode(kind, testSite, 3, t0, body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

func FuzzDecodePlan(f *testing.F) {
	seed(f, KindPlan, validPlan())
	seed(f, KindPlan, &Plan{Target: "all", Generated: t0, Items: []PlanItem{}})
	it := validItem("e-1")
	it.Priority, it.Tone, it.Volume, it.Status = Emergency, "siren", nil, StatusTest
	seed(f, KindPlan, &Plan{Target: "device/loa-1", Generated: t0, Items: []PlanItem{it}})
	f.Add([]byte(`{"v":1,"kind":"plan","site":"xa-an-binh","issued":"2026-03-01T23:00:00+07:00","seq":1,"body":{"target":"all","items":null}}`))
	seed(f, KindPlan, &Plan{Target: "group/thon-1", Generated: t0, Items: []PlanItem{}, RulesUntil: t0.AddDate(0, 0, 30), Rules: []PlanRule{{
		ID: "s-1", Cron: "0 6 * * *", Zone: "Asia/Ho_Chi_Minh", NotBefore: t0, ValidityMS: 900_000, Priority: Normal,
		Media: validItem("x").Media, Repeat: 1, Status: StatusLive}, {
		ID: "s-2", Cron: "@daily", Zone: "Europe/Berlin", Paused: true, ValidityMS: 60_000, Priority: Emergency, Tone: ToneFlood, Repeat: 3, Status: StatusTest}}})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode[Plan](t, data, KindPlan) })
}

func FuzzDecodeState(f *testing.F) {
	seed(f, KindState, validState())
	seed(f, KindState, &State{Online: false, State: StateOffline})
	seed(f, KindState, &State{Online: true, State: StateError, Error: "no sound card"})
	seed(f, KindState, &State{Online: true, State: StateError, Error: "soundcard: Unknown PCM nosuchcard", Problems: []Problem{
		{Code: ProblemSoundCard, Level: LevelError, Subject: "alsa:nosuchcard", Detail: "Unknown PCM nosuchcard", Since: t0},
		{Code: ProblemDiskFull, Level: LevelWarning, Subject: "/var/lib/loa-agent", Value: 12, Limit: 30, Since: t0},
		{Code: ProblemHot, Level: LevelWarning, Value: 85.2, Limit: 80, Since: t0},
		{Code: ProblemClockJump, Level: LevelWarning, Value: -3600, Since: t0},
	}})
	f.Add([]byte(`{"v":1,"kind":"state","site":"xa-an-binh","issued":"2026-03-01T23:00:00+07:00","seq":1,"body":{"online":true,"state":"idle","problems":[{"code":"Bad Code","level":"error"}],"at":"2026-03-01T23:00:00+07:00"}}`))
	f.Add([]byte(`{"v":1,"kind":"state","site":"xa-an-binh","issued":"2026-03-01T23:00:00+07:00","seq":1,"body":{"online":true,"state":"idle","problems":[{"code":"future-thing","level":"notice"}],"at":"2026-03-01T23:00:00+07:00"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode[State](t, data, KindState) })
}

func FuzzDecodeEvent(f *testing.F) {
	seed(f, KindEvent, validEvent())
	seed(f, KindEvent, &Event{Item: "a-1", Type: EventPreempted, At: t0, Reason: "preempted by e-1",
		Why: []Why{{Code: WhyPreemptedBy, Args: []string{"e-1"}}}})
	f.Add([]byte(`{"v":1,"kind":"event","site":"xa-an-binh","issued":"2026-03-01T23:00:00Z","seq":1,"body":{"item":"x","type":"played","at":"2026-03-01T23:00:00.5-01:30"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode[Event](t, data, KindEvent) })
}

// FuzzDecodeEvents checks what a box's events topic carries, one event or a
// batch: never a panic, and what is accepted is a valid batch that survives
// a round trip.
func FuzzDecodeEvents(f *testing.F) {
	seed(f, KindEvent, validEvent())
	seed(f, KindEvents, &EventBatch{Events: []Event{*validEvent(), {Item: "a-1", Type: EventPlaying, At: t0}}})
	seed(f, KindEvents, &EventBatch{Events: []Event{}})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := DecodeEvents(data, testSite)
		if err != nil {
			return
		}
		b := EventBatch{Events: evs}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted an invalid batch: %v\ninput %q", err, data)
		}
		fuzzDecode[EventBatch](t, marshalEnv(t, KindEvents, &b), KindEvents)
	})
}

func FuzzDecodeConfig(f *testing.F) {
	seed(f, KindConfig, validConfig())
	seed(f, KindConfig, &DeviceConfig{Groups: []string{}, Volume: 0, EmergencyVolume: 100})
	withUpdate := validConfig()
	withUpdate.Update = &UpdateOffer{Rollout: "r-1", Version: "v1.4.0", Builds: []UpdateBuild{
		{Arch: "armhf", SHA256: strings.Repeat("0f", 32), Size: 8 << 20, Path: "/v1/agent/builds/" + strings.Repeat("0f", 32)}}}
	seed(f, KindConfig, withUpdate)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode[DeviceConfig](t, data, KindConfig) })
}

func FuzzDecodeTime(f *testing.F) {
	seed(f, KindTimeRequest, &TimeRequest{ID: 1, Sent: t0.Add(time.Millisecond)})
	// An issue time that is in range as written but not in UTC.
	f.Add([]byte(`{"v":1,"kind":"time_req","site":"xa-an-binh","issued":"0000-01-01T00:00:00+01:00","seq":1,"body":{"id":1,"sent":"0000-01-01T00:00:00+01:00"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode[TimeRequest](t, data, KindTimeRequest) })
}

func FuzzParseTopic(f *testing.F) {
	tp := NewTopics(testSite)
	for _, s := range []string{
		tp.PlanAll(), tp.PlanGroup("thon-1"), tp.PlanDevice("loa-1"), tp.DeviceConfig("loa-1"),
		tp.DeviceState("loa-1"), tp.DeviceEvents("loa-1"), tp.TimeRequest("loa-1"), tp.TimeResponse("loa-1"),
		tp.Trigger("rain"), tp.AllDeviceStates(), "loa/other/plan/all", "loa/xa-an-binh/plan/group/..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		kind, arg, err := tp.Parse(topic)
		if err != nil {
			return
		}
		if kind != TopicPlanAll {
			if err := ValidName(arg); err != nil {
				t.Fatalf("Parse(%q) accepted argument %q: %v", topic, arg, err)
			}
		}
		if got := build(tp, kind, arg); got != topic {
			t.Fatalf("Parse(%q) = %q, %q, which builds %q", topic, kind, arg, got)
		}
	})
}
