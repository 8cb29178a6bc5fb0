package protocol

import (
	"strings"
	"testing"
)

func TestTopicsRoundTrip(t *testing.T) {
	tp := NewTopics("xa-an-binh")
	tests := []struct {
		name     string
		topic    string
		wantKind TopicKind
		wantArg  string
	}{
		{"plan all", tp.PlanAll(), TopicPlanAll, ""},
		{"plan group", tp.PlanGroup("thon-1"), TopicPlanGroup, "thon-1"},
		{"plan device", tp.PlanDevice("loa-01"), TopicPlanDevice, "loa-01"},
		{"config", tp.DeviceConfig("loa-01"), TopicDeviceConfig, "loa-01"},
		{"state", tp.DeviceState("loa_02"), TopicDeviceState, "loa_02"},
		{"events", tp.DeviceEvents("Loa.3"), TopicDeviceEvents, "Loa.3"},
		{"time req", tp.TimeRequest("loa-01"), TopicTimeRequest, "loa-01"},
		{"time resp", tp.TimeResponse("loa-01"), TopicTimeResponse, "loa-01"},
		{"trigger", tp.Trigger("flood-sensor"), TopicTrigger, "flood-sensor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasPrefix(tc.topic, "loa/xa-an-binh/") {
				t.Fatalf("topic %q is not under the site root", tc.topic)
			}
			kind, arg, err := tp.Parse(tc.topic)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.topic, err)
			}
			if kind != tc.wantKind || arg != tc.wantArg {
				t.Fatalf("Parse(%q) = %q, %q; want %q, %q", tc.topic, kind, arg, tc.wantKind, tc.wantArg)
			}
			if got := build(tp, kind, arg); got != tc.topic {
				t.Fatalf("rebuilt %q, want %q", got, tc.topic)
			}
		})
	}
}

func TestTopicsDesignNames(t *testing.T) {
	// The names DESIGN.md's topic table lists, spelled out.
	tp := NewTopics("s")
	for got, want := range map[string]string{
		tp.Root():            "loa/s",
		tp.PlanAll():         "loa/s/plan/all",
		tp.PlanGroup("g"):    "loa/s/plan/group/g",
		tp.PlanDevice("d"):   "loa/s/plan/device/d",
		tp.DeviceConfig("d"): "loa/s/device/d/config",
		tp.DeviceState("d"):  "loa/s/device/d/state",
		tp.DeviceEvents("d"): "loa/s/device/d/events",
		tp.TimeRequest("d"):  "loa/s/device/d/time/req",
		tp.TimeResponse("d"): "loa/s/device/d/time/resp",
		tp.Trigger("x"):      "loa/s/trigger/x",
		tp.AllDeviceStates(): "loa/s/device/+/state",
		tp.AllDeviceEvents(): "loa/s/device/+/events",
		tp.AllTimeRequests(): "loa/s/device/+/time/req",
		tp.AllTriggers():     "loa/s/trigger/+",
	} {
		if got != want {
			t.Errorf("topic %q, want %q", got, want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tp := NewTopics("site1")
	tests := []struct {
		name  string
		topic string
	}{
		{"empty", ""},
		{"other site", "loa/site2/plan/all"},
		{"site prefix only", "loa/site1"},
		{"site root slash", "loa/site1/"},
		{"site name prefix of another", "loa/site10/plan/all"},
		{"no loa root", "site1/plan/all"},
		{"leading slash", "/loa/site1/plan/all"},
		{"plan unknown", "loa/site1/plan/everyone"},
		{"plan all extra", "loa/site1/plan/all/x"},
		{"plan group empty", "loa/site1/plan/group/"},
		{"plan group nested", "loa/site1/plan/group/a/b"},
		{"plan group wildcard", "loa/site1/plan/group/+"},
		{"plan group hash", "loa/site1/plan/group/#"},
		{"plan device dotdot", "loa/site1/plan/device/.."},
		{"device no kind", "loa/site1/device/loa-1"},
		{"device unknown kind", "loa/site1/device/loa-1/reboot"},
		{"device wildcard", "loa/site1/device/+/state"},
		{"device space", "loa/site1/device/loa 1/state"},
		{"device unicode", "loa/site1/device/loa-đ/state"},
		{"device state extra", "loa/site1/device/loa-1/state/x"},
		{"time unknown", "loa/site1/device/loa-1/time/sync"},
		{"time too deep", "loa/site1/device/loa-1/time/req/x"},
		{"time short", "loa/site1/device/loa-1/time"},
		{"trigger empty", "loa/site1/trigger/"},
		{"trigger nested", "loa/site1/trigger/a/b"},
		{"double slash", "loa/site1//plan/all"},
		{"too long name", "loa/site1/device/" + strings.Repeat("a", 65) + "/state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, arg, err := tp.Parse(tc.topic)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, %q; want an error", tc.topic, kind, arg)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"loa-01", true},
		{"Thon_2.b", true},
		{"a", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a+b", false},
		{"a#", false},
		{"a b", false},
		{"thôn", false},
		{"a\x00b", false},
		{"a\nb", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

// build is the inverse of Parse.
func build(tp Topics, kind TopicKind, arg string) string {
	switch kind {
	case TopicPlanAll:
		return tp.PlanAll()
	case TopicPlanGroup:
		return tp.PlanGroup(arg)
	case TopicPlanDevice:
		return tp.PlanDevice(arg)
	case TopicDeviceConfig:
		return tp.DeviceConfig(arg)
	case TopicDeviceState:
		return tp.DeviceState(arg)
	case TopicDeviceEvents:
		return tp.DeviceEvents(arg)
	case TopicTimeRequest:
		return tp.TimeRequest(arg)
	case TopicTimeResponse:
		return tp.TimeResponse(arg)
	case TopicTrigger:
		return tp.Trigger(arg)
	}
	return "?" + string(kind)
}
