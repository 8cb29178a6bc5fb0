package triggers

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/loa-commune/loa/protocol"
)

// FuzzDecodeReading: whatever a sensor (or anyone who can publish on a
// trigger topic) sends, DecodeReading returns either a bad-message error or
// a reading of finite, well-named values that survives a round trip; and
// the engine takes the reading without panicking.
func FuzzDecodeReading(f *testing.F) {
	for _, s := range []string{
		`{"values": {"water_level_cm": 412.5, "rain_mm_h": 30}}`,
		`{"at": "2025-10-28T10:15:00+07:00", "values": {"level": -1e3, "switch": true}}`,
		`{"values": {"level": 1e400}}`,
		`{"values": {"level": null}}`,
		`{"values": {"a": 1, "a": 2}}`,
		`{"Values": {"level": 1}}`,
		`{"at": "9999-12-31T23:59:59-23:59", "values": {"level": 1}}`,
		`{"kind": "trigger", "values": {"level": 1}}`,
		`[]`, `null`, `{}`, `{"values": "\u0000"}`,
		envelope(f, "xa-a", protocol.KindTrigger, Body{Values: Values{"level": 1}}),
		envelope(f, "xa-a", protocol.KindTrigger, Body{At: t0, Values: Values{"level": -0.5}}),
		envelope(f, "xa-a", protocol.KindTrigger, map[string]any{"values": map[string]any{"level": "x"}}),
	} {
		f.Add([]byte(s))
	}
	rule := flood()
	rule.Field = "level"
	rule.StaleAfter = 600e9
	e, err := NewEngine([]Rule{rule})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := DecodeReading(payload, "xa-a")
		if err != nil {
			if !errors.Is(err, protocol.ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if len(r.Values) == 0 || len(r.Values) > MaxValues {
			t.Fatalf("%d values", len(r.Values))
		}
		for name, v := range r.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("value %s = %v", name, v)
			}
			if err := protocol.ValidName(name); err != nil {
				t.Fatalf("value name: %v", err)
			}
		}
		// What was accepted can be written back and reads the same.
		b, err := json.Marshal(Body{At: r.At, Values: r.Values})
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		r2, err := DecodeReading(b, "xa-a")
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		if !r2.At.Equal(r.At) || len(r2.Values) != len(r.Values) {
			t.Fatalf("round trip %+v → %+v", r, r2)
		}
		for name, v := range r.Values {
			if r2.Values[name] != v {
				t.Fatalf("round trip of %s: %v → %v", name, v, r2.Values[name])
			}
		}
		e.Observe("river", r, t0)
	})
}
