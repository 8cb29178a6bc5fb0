package triggers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func envelope(t testing.TB, site string, kind protocol.Kind, body any) string {
	t.Helper()
	b, err := protocol.Encode(kind, site, 7, t0, body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeReading(t *testing.T) {
	at := time.Date(2025, 10, 28, 10, 15, 0, 0, time.FixedZone("ICT", 7*3600))
	many := make([]string, MaxValues+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"v%d": 1`, i)
	}
	tests := []struct {
		name    string
		payload string
		want    Reading // compared when wantErr is empty
		wantErr string  // part of the error
	}{
		{"bare", `{"values": {"water_level_cm": 412.5, "rain_mm_h": 30}}`,
			Reading{Values: map[string]float64{"water_level_cm": 412.5, "rain_mm_h": 30}}, ""},
		{"bare with at and extra members", `{"at": "2025-10-28T10:15:00+07:00", "battery": "ok", "values": {"level": -1e3}}`,
			Reading{At: at, Values: map[string]float64{"level": -1000}}, ""},
		{"booleans count as 1 and 0", `{"values": {"float_switch": true, "door": false}}`,
			Reading{Values: map[string]float64{"float_switch": 1, "door": 0}}, ""},
		{"envelope with at", envelope(t, "xa-a", protocol.KindTrigger, Body{At: at, Values: Values{"level": 1}}),
			Reading{At: at, Values: map[string]float64{"level": 1}}, ""},
		{"envelope without at takes the issue time", envelope(t, "xa-a", protocol.KindTrigger, Body{Values: Values{"level": 2}}),
			Reading{At: t0, Values: map[string]float64{"level": 2}}, ""},

		{"envelope of another site", envelope(t, "xa-b", protocol.KindTrigger, Body{Values: Values{"level": 1}}), Reading{}, "site"},
		{"envelope of another kind", envelope(t, "xa-a", protocol.KindState, Body{Values: Values{"level": 1}}), Reading{}, "kind"},
		{"envelope without values", envelope(t, "xa-a", protocol.KindTrigger, map[string]any{"at": at}), Reading{}, "no \"values\""},
		{"half an envelope", `{"kind": "trigger", "values": {"level": 1}}`, Reading{}, "version"},
		{"NaN", `{"values": {"level": NaN}}`, Reading{}, "not a JSON object"},
		{"Infinity", `{"values": {"level": Infinity}}`, Reading{}, "not a JSON object"},
		{"NaN as a string", `{"values": {"level": "NaN"}}`, Reading{}, "not a number"},
		{"too large for float64", `{"values": {"level": 1e400}}`, Reading{}, "not a finite"},
		{"null value", `{"values": {"level": null}}`, Reading{}, "not a number"},
		{"nested object", `{"values": {"level": {"cm": 1}}}`, Reading{}, "not a number"},
		{"array value", `{"values": {"level": [1]}}`, Reading{}, "not a number"},
		{"values null", `{"values": null}`, Reading{}, "no \"values\""},
		{"values empty", `{"values": {}}`, Reading{}, "no \"values\""},
		{"no values", `{"water_level_cm": 412}`, Reading{}, "no \"values\""},
		{"values not an object", `{"values": [1, 2]}`, Reading{}, "object of numbers"},
		{"bad value name", `{"values": {"water level": 1}}`, Reading{}, "value name"},
		{"too many values", `{"values": {` + strings.Join(many, ",") + `}}`, Reading{}, "more than"},
		{"bad time", `{"at": "yesterday", "values": {"level": 1}}`, Reading{}, "reading"},
		{"year 0", `{"at": "0000-01-01T00:00:00Z", "values": {"level": 1}}`, Reading{}, "out of range"},
		{"not an object", `[1, 2]`, Reading{}, "not a JSON object"},
		{"null", `null`, Reading{}, "not a JSON object"},
		{"trailing data", `{"values": {"level": 1}} {}`, Reading{}, "not a JSON object"},
		{"empty", ``, Reading{}, "not a JSON object"},
		{"too big", `{"values": {"level": 1}, "pad": "` + strings.Repeat("x", MaxReadingSize) + `"}`, Reading{}, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeReading([]byte(tt.payload), "xa-a")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, protocol.ErrBadMessage) {
					t.Fatalf("err = %v, want a bad message about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.At.Equal(tt.want.At) || fmt.Sprint(got.Values) != fmt.Sprint(tt.want.Values) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
