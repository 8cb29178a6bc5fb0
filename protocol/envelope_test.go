package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testSite = "xa-an-binh"

var (
	t0  = time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	sha = strings.Repeat("ab", 32)
)

func validItem(id string) PlanItem {
	vol := 70
	return PlanItem{
		ID: id, Announcement: "a-1", Start: t0, Expires: t0.Add(15 * time.Minute), Priority: Normal,
		Media:  Media{SHA256: sha, Size: 1234, DurationMS: 5000},
		Repeat: 2, GapMS: 1000, Volume: &vol, Chime: true, OnPreempt: OnPreemptRestart,
		Text: "Thông báo họp thôn", Status: StatusLive,
	}
}

func validPlan() *Plan {
	return &Plan{Target: "group/thon-1", Generated: t0.Add(-time.Hour),
		Items: []PlanItem{validItem("a-1-1772406000"), validItem("s-2-1772409600")}}
}

func validConfig() *DeviceConfig {
	return &DeviceConfig{Name: "Loa chợ", Groups: []string{"thon-1", "cho"}, Volume: 80, EmergencyVolume: 100,
		MediaURL: "http://10.0.0.1:8080", HeartbeatSec: 30, AnswerSpreadMS: 1000, QuietHours: "22:00-05:00", Timezone: "Asia/Ho_Chi_Minh"}
}

func validState() *State {
	temp := 51.5
	return &State{Online: true, State: StatePlaying, Playing: "a-1-1772406000", Volume: 80, UptimeSec: 3600,
		Version: "0.1.0", CacheBytes: 1 << 20, TemperatureC: &temp, At: t0}
}

func validEvent() *Event {
	return &Event{Item: "a-1-1772406000", Announcement: "a-1", Type: EventPlayed, At: t0.Add(time.Minute), Reason: ""}
}

// roundTrip encodes body, decodes it into a fresh value of the same type
// and returns the decoded value.
func roundTrip(t *testing.T, kind Kind, body any) any {
	t.Helper()
	data, err := Encode(kind, testSite, 7, t0, body)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	out := reflect.New(reflect.TypeOf(body).Elem()).Interface()
	env, err := Decode(data, testSite, kind, out)
	if err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	if env.V != Version || env.Kind != kind || env.Site != testSite || env.Seq != 7 || !env.Issued.Equal(t0) {
		t.Fatalf("envelope %+v", env)
	}
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		body any
	}{
		{"plan", KindPlan, validPlan()},
		{"empty plan", KindPlan, &Plan{Target: "all", Generated: t0, Items: []PlanItem{}}},
		{"config", KindConfig, validConfig()},
		{"state", KindState, validState()},
		{"offline state", KindState, &State{Online: false, State: StateOffline}},
		{"state with problems", KindState, &State{Online: true, State: StateError, At: t0, Problems: []Problem{
			{Code: ProblemSoundCard, Level: LevelError, Subject: "alsa:nosuchcard", Detail: "Unknown PCM", Since: t0},
			{Code: "newer-box-code", Level: LevelWarning, Value: 1.5, Since: t0},
		}}},
		{"event", KindEvent, validEvent()},
		{"failed event", KindEvent, &Event{Item: "x-1", Type: EventFailed, At: t0, Reason: "media hash mismatch"}},
		{"time request", KindTimeRequest, &TimeRequest{ID: 42, Sent: t0.Add(123456789)}},
		{"time response", KindTimeResponse, &TimeResponse{ID: 42, Sent: t0, Received: t0.Add(1500 * time.Microsecond)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, tc.kind, tc.body)
			if !reflect.DeepEqual(got, tc.body) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.body)
			}
		})
	}
}

func TestEncodeShape(t *testing.T) {
	data, err := Encode(KindEvent, testSite, 9, t0.In(time.FixedZone("ICT", 7*3600)), validEvent())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"v", "kind", "site", "issued", "seq", "body"} {
		if _, ok := m[k]; !ok {
			t.Errorf("envelope %s has no %q", data, k)
		}
	}
	if string(m["v"]) != "1" || string(m["kind"]) != `"event"` || string(m["issued"]) != `"2026-03-01T23:00:00Z"` {
		t.Errorf("envelope %s: v, kind or issued (UTC) wrong", data)
	}
}

// envelope returns a valid envelope of kind with body as a generic map, so
// tests can break one field at a time.
func envelope(t *testing.T, kind Kind, body any) map[string]any {
	t.Helper()
	data, err := Encode(kind, testSite, 1, t0, body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// planWith returns a plan envelope whose first item was changed by edit.
func planWith(t *testing.T, edit func(item map[string]any)) []byte {
	t.Helper()
	m := envelope(t, KindPlan, validPlan())
	items := m["body"].(map[string]any)["items"].([]any)
	edit(items[0].(map[string]any))
	return marshal(t, m)
}

func TestDecodeRejects(t *testing.T) {
	good := marshal(t, envelope(t, KindPlan, validPlan()))
	if _, err := Decode(good, testSite, KindPlan, &Plan{}); err != nil {
		t.Fatalf("the valid plan is refused: %v", err)
	}
	with := func(edit func(m map[string]any)) []byte {
		m := envelope(t, KindPlan, validPlan())
		edit(m)
		return marshal(t, m)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("hello")},
		{"JSON array", []byte("[1,2]")},
		{"JSON null", []byte("null")},
		{"trailing garbage", append(bytes.Clone(good), []byte(" x")...)},
		{"trailing object", append(bytes.Clone(good), []byte(`{}`)...)},
		{"trailing brace", append(bytes.Clone(good), '}')},
		{"trailing bracket", append(bytes.Clone(good), ']')},
		{"truncated", good[:len(good)-1]},
		{"wrong version", with(func(m map[string]any) { m["v"] = 2 })},
		{"no version", with(func(m map[string]any) { delete(m, "v") })},
		{"version as string", with(func(m map[string]any) { m["v"] = "1" })},
		{"wrong kind", with(func(m map[string]any) { m["kind"] = "state" })},
		{"wrong site", with(func(m map[string]any) { m["site"] = "other" })},
		{"issued not writable in UTC", with(func(m map[string]any) { m["issued"] = "0000-01-01T00:00:00+01:00" })},
		{"missing body", with(func(m map[string]any) { delete(m, "body") })},
		{"body null", with(func(m map[string]any) { m["body"] = nil })},
		{"body a string", with(func(m map[string]any) { m["body"] = "plan" })},
		{"body no target", with(func(m map[string]any) { delete(m["body"].(map[string]any), "target") })},
		{"oversize payload", with(func(m map[string]any) {
			m["body"].(map[string]any)["pad"] = strings.Repeat("x", MaxPayload)
		})},
		{"item bad id", planWith(t, func(it map[string]any) { it["id"] = "a 1/2" })},
		{"item empty id", planWith(t, func(it map[string]any) { it["id"] = "" })},
		{"item id too long", planWith(t, func(it map[string]any) { it["id"] = strings.Repeat("a", 129) })},
		{"item id with wildcard past 64", planWith(t, func(it map[string]any) { it["id"] = strings.Repeat("a", 70) + "+" })},
		{"duplicate ids", with(func(m map[string]any) {
			items := m["body"].(map[string]any)["items"].([]any)
			items[1].(map[string]any)["id"] = items[0].(map[string]any)["id"]
		})},
		{"bad sha short", planWith(t, func(it map[string]any) { it["media"].(map[string]any)["sha256"] = "abc" })},
		{"bad sha upper case", planWith(t, func(it map[string]any) {
			it["media"].(map[string]any)["sha256"] = strings.ToUpper(sha)
		})},
		{"bad sha not hex", planWith(t, func(it map[string]any) {
			it["media"].(map[string]any)["sha256"] = strings.Repeat("zz", 32)
		})},
		{"media size 0", planWith(t, func(it map[string]any) { it["media"].(map[string]any)["size"] = 0 })},
		{"repeat 0", planWith(t, func(it map[string]any) { it["repeat"] = 0 })},
		{"repeat over max", planWith(t, func(it map[string]any) { it["repeat"] = MaxRepeat + 1 })},
		{"expires before start", planWith(t, func(it map[string]any) { it["expires"] = t0.Add(-time.Second) })},
		{"no start", planWith(t, func(it map[string]any) { delete(it, "start") })},
		{"unknown priority", planWith(t, func(it map[string]any) { it["priority"] = "urgent" })},
		{"numeric priority", planWith(t, func(it map[string]any) { it["priority"] = 3 })},
		{"unknown status", planWith(t, func(it map[string]any) { it["status"] = "maybe" })},
		{"no status", planWith(t, func(it map[string]any) { delete(it, "status") })},
		{"unknown on_preempt", planWith(t, func(it map[string]any) { it["on_preempt"] = "skip" })},
		{"volume over 100", planWith(t, func(it map[string]any) { it["volume"] = 101 })},
		{"negative gap", planWith(t, func(it map[string]any) { it["gap_ms"] = -1 })},
		{"start not a time", planWith(t, func(it map[string]any) { it["start"] = "06:00" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Plan
			_, err := Decode(tc.data, testSite, KindPlan, &p)
			if err == nil {
				t.Fatalf("Decode accepted %.200s", tc.data)
			}
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
		})
	}
}

func TestDecodeRejectsBadBodies(t *testing.T) {
	edit := func(kind Kind, body any, f func(b map[string]any)) []byte {
		m := envelope(t, kind, body)
		f(m["body"].(map[string]any))
		return marshal(t, m)
	}
	tests := []struct {
		name string
		kind Kind
		into any
		data []byte
	}{
		{"state unknown", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) { b["state"] = "sleeping" })},
		{"state empty", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) { delete(b, "state") })},
		{"state problem bad code", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) {
			b["problems"] = []map[string]any{{"code": "Sound Card", "level": "error"}}
		})},
		{"state problem no code", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) {
			b["problems"] = []map[string]any{{"level": "error"}}
		})},
		{"state problem level", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) {
			b["problems"] = []map[string]any{{"code": "hot", "level": "panic"}}
		})},
		{"state problem detail too long", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) {
			b["problems"] = []map[string]any{{"code": "output", "level": "error", "detail": strings.Repeat("x", MaxProblemDetail+1)}}
		})},
		{"state too many problems", KindState, &State{}, edit(KindState, validState(), func(b map[string]any) {
			var ps []map[string]any
			for range MaxProblems + 1 {
				ps = append(ps, map[string]any{"code": "hot", "level": "warning"})
			}
			b["problems"] = ps
		})},
		{"event unknown type", KindEvent, &Event{}, edit(KindEvent, validEvent(), func(b map[string]any) { b["type"] = "exploded" })},
		{"event no time", KindEvent, &Event{}, edit(KindEvent, validEvent(), func(b map[string]any) { delete(b, "at") })},
		{"event bad item", KindEvent, &Event{}, edit(KindEvent, validEvent(), func(b map[string]any) { b["item"] = "../x" })},
		{"config volume", KindConfig, &DeviceConfig{}, edit(KindConfig, validConfig(), func(b map[string]any) { b["volume"] = 101 })},
		{"config emergency volume", KindConfig, &DeviceConfig{}, edit(KindConfig, validConfig(), func(b map[string]any) { b["emergency_volume"] = -1 })},
		{"config bad group", KindConfig, &DeviceConfig{}, edit(KindConfig, validConfig(), func(b map[string]any) { b["groups"] = []string{"a/b"} })},
		{"config negative heartbeat", KindConfig, &DeviceConfig{}, edit(KindConfig, validConfig(), func(b map[string]any) { b["heartbeat_sec"] = -5 })},
		{"config answer spread over a minute", KindConfig, &DeviceConfig{}, edit(KindConfig, validConfig(), func(b map[string]any) { b["answer_spread_ms"] = MaxAnswerSpreadMS + 1 })},
		{"time request as array", KindTimeRequest, &TimeRequest{}, edit(KindTimeRequest, &TimeRequest{ID: 1, Sent: t0}, func(b map[string]any) { b["id"] = []int{1} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.data, testSite, tc.kind, tc.into); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("Decode(%s) = %v, want ErrBadMessage", tc.data, err)
			}
		})
	}
}

func TestDecodeAllowsUnknownFields(t *testing.T) {
	// A newer controller may add fields; older boxes must still play.
	m := envelope(t, KindPlan, validPlan())
	m["future"] = true
	m["body"].(map[string]any)["items"].([]any)[0].(map[string]any)["fade_ms"] = 300
	var p Plan
	if _, err := Decode(marshal(t, m), testSite, KindPlan, &p); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(p.Items) != 2 {
		t.Fatalf("got %d items", len(p.Items))
	}
}

func TestPriorityJSON(t *testing.T) {
	tests := []struct {
		p    Priority
		json string
	}{
		{Background, `"background"`},
		{Normal, `"normal"`},
		{High, `"priority"`},
		{Emergency, `"emergency"`},
	}
	for _, tc := range tests {
		t.Run(tc.p.String(), func(t *testing.T) {
			b, err := json.Marshal(tc.p)
			if err != nil || string(b) != tc.json {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tc.json)
			}
			var back Priority = -1
			if err := json.Unmarshal(b, &back); err != nil || back != tc.p {
				t.Fatalf("Unmarshal(%s) = %v, %v", b, back, err)
			}
			parsed, err := ParsePriority(strings.Trim(tc.json, `"`))
			if err != nil || parsed != tc.p {
				t.Fatalf("ParsePriority = %v, %v", parsed, err)
			}
		})
	}
	if Background >= Normal || Normal >= High || High >= Emergency {
		t.Fatal("priorities are not ordered background < normal < priority < emergency")
	}
	for _, bad := range []string{`"urgent"`, `"Normal"`, `""`, `1`, `null`, `"high"`} {
		var p Priority
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, p)
		}
	}
	for _, bad := range []Priority{-1, 4} {
		if _, err := json.Marshal(bad); err == nil {
			t.Errorf("Marshal(%d) succeeded", int(bad))
		}
	}
}

func TestEventFinal(t *testing.T) {
	final := map[EventType]bool{
		EventReceived: false, EventReady: false, EventPlaying: false, EventPreempted: false,
		EventPlayed: true, EventFailed: true, EventMissed: true, EventExpired: true, EventCancelled: true,
	}
	for e, want := range final {
		if e.Final() != want {
			t.Errorf("%s.Final() = %v", e, !want)
		}
	}
}

func TestDecodeEvents(t *testing.T) {
	playing := Event{Item: "a-1-1772406000", Announcement: "a-1", Type: EventPlaying, At: t0}
	one := marshalEnv(t, KindEvent, validEvent())
	got, err := DecodeEvents(one, testSite)
	if err != nil || len(got) != 1 || got[0].Type != EventPlayed {
		t.Fatalf("one event: %+v, %v", got, err)
	}
	batch := marshalEnv(t, KindEvents, &EventBatch{Events: []Event{playing, *validEvent()}})
	got, err = DecodeEvents(batch, testSite)
	if err != nil || len(got) != 2 || got[0].Type != EventPlaying || got[1].Type != EventPlayed {
		t.Fatalf("batch: %+v, %v", got, err)
	}
	tooMany := make([]Event, MaxBatchEvents+1)
	for i := range tooMany {
		tooMany[i] = playing
	}
	for name, data := range map[string][]byte{
		"empty batch":    marshalEnv(t, KindEvents, &EventBatch{Events: []Event{}}),
		"too many":       marshalEnv(t, KindEvents, &EventBatch{Events: tooMany}),
		"one bad event":  marshalEnv(t, KindEvents, &EventBatch{Events: []Event{playing, {Item: "bad item", Type: EventPlayed, At: t0}}}),
		"state kind":     marshalEnv(t, KindState, validState()),
		"event as batch": []byte(strings.Replace(string(one), `"kind":"event"`, `"kind":"events"`, 1)),
	} {
		if evs, err := DecodeEvents(data, testSite); err == nil || !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: accepted %+v (err %v)", name, evs, err)
		}
	}
	if _, err := DecodeEvents(batch, "other-site"); err == nil {
		t.Error("a batch for another site was accepted")
	}
}

// TestEventWhy: a reason's codes are bounded, and codes this side does not
// know pass (a newer box).
func TestEventWhy(t *testing.T) {
	parts := func(n int) []Why { return slices.Repeat([]Why{{Code: WhyQuietHours}}, n) }
	for _, tc := range []struct {
		name string
		why  []Why
		ok   bool
	}{
		{"known", []Why{{Code: WhyMediaNotReady}, {Code: WhyDownloadFailed, Args: []string{"HTTP 404"}}}, true},
		{"from a newer box", []Why{{Code: "new-thing", Args: []string{"a", "b"}}}, true},
		{"as many parts as allowed", parts(MaxWhy), true},
		{"too many parts", parts(MaxWhy + 1), false},
		{"no code", []Why{{Args: []string{"x"}}}, false},
		{"code with a space", []Why{{Code: "quiet hours"}}, false},
		{"too many arguments", []Why{{Code: WhyError, Args: make([]string, MaxWhyArgs+1)}}, false},
		{"argument too long", []Why{{Code: WhyError, Args: []string{strings.Repeat("x", MaxWhyArg+1)}}}, false},
	} {
		ev := validEvent()
		ev.Why = tc.why
		_, err := DecodeEvents(marshalEnv(t, KindEvent, ev), testSite)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want accepted %v", tc.name, err, tc.ok)
		}
	}
}

func marshalEnv(t *testing.T, kind Kind, body any) []byte {
	t.Helper()
	b, err := Encode(kind, testSite, 1, t0, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
