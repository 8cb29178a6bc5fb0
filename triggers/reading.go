package triggers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Limits on what a sensor may send.
const (
	// MaxReadingSize bounds a trigger payload; a reading is a few dozen bytes.
	MaxReadingSize = 16 << 10
	// MaxValues bounds the values in one reading.
	MaxValues = 64
)

// Reading is what a sensor reported once.
type Reading struct {
	// At is when the sensor measured, by its own clock; zero when it did not
	// say (for an envelope without "at", the envelope's issue time).
	At time.Time
	// Values maps a field name (water_level_cm) to a finite number.
	Values map[string]float64
}

// Body is a reading on the wire: the bare JSON a simple gauge publishes, and
// the body of a protocol envelope of kind protocol.KindTrigger.
//
// It lives here until protocol takes it over with the other message bodies.
type Body struct {
	At     time.Time `json:"at,omitzero"`
	Values Values    `json:"values"`
}

// Validate checks the time is one an envelope could carry and that there are
// values; each value was checked as it was decoded.
func (b *Body) Validate() error {
	if y := b.At.UTC().Year(); !b.At.IsZero() && (y < 1 || y > 9999) {
		return fmt.Errorf("at %v is out of range", b.At)
	}
	if len(b.Values) == 0 {
		return fmt.Errorf(`no "values"`)
	}
	return b.Values.Validate()
}

// Values are the numbers of one reading, by field name.
type Values map[string]float64

// Validate checks the count, the names and that every number is finite, for
// values built in Go rather than decoded.
func (v Values) Validate() error {
	if len(v) > MaxValues {
		return fmt.Errorf("%d values, more than %d", len(v), MaxValues)
	}
	for name, x := range v {
		if err := protocol.ValidName(name); err != nil {
			return fmt.Errorf("value name: %w", err)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("value %s is not a finite number", name)
		}
	}
	return nil
}

// UnmarshalJSON reads an object of numbers (true and false read as 1 and 0).
// It refuses null members, strings, nested objects and numbers too large for
// a float64, rather than turning them into a zero that could clear an alarm.
func (v *Values) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		return nil // a missing object; Body.Validate says so
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("values must be an object of numbers: %w", err)
	}
	if len(raw) > MaxValues {
		return fmt.Errorf("%d values, more than %d", len(raw), MaxValues)
	}
	out := make(Values, len(raw))
	for name, r := range raw {
		if err := protocol.ValidName(name); err != nil {
			return fmt.Errorf("value name: %w", err)
		}
		x, err := number(bytes.TrimSpace(r))
		if err != nil {
			return fmt.Errorf("value %s: %w", name, err)
		}
		out[name] = x
	}
	*v = out
	return nil
}

// number reads one JSON scalar that json.Unmarshal already found well formed.
func number(r []byte) (float64, error) {
	switch {
	case len(r) == 0:
		return 0, fmt.Errorf("empty")
	case bytes.Equal(r, []byte("true")):
		return 1, nil
	case bytes.Equal(r, []byte("false")):
		return 0, nil
	case r[0] == '-' || r[0] >= '0' && r[0] <= '9':
		x, err := strconv.ParseFloat(string(r), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, fmt.Errorf("%s is not a finite float64", r)
		}
		return x, nil
	}
	return 0, fmt.Errorf("%.20s is not a number", r)
}

// DecodeReading decodes what a sensor published on a trigger topic of site:
// a protocol envelope of kind "trigger" whose body is a Body, or a bare Body.
// Errors wrap protocol.ErrBadMessage.
func DecodeReading(payload []byte, site string) (Reading, error) {
	if len(payload) > MaxReadingSize {
		return Reading{}, fmt.Errorf("%w: reading of %d bytes is over %d", protocol.ErrBadMessage, len(payload), MaxReadingSize)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil || top == nil {
		return Reading{}, fmt.Errorf("%w: reading is not a JSON object", protocol.ErrBadMessage)
	}
	var b Body
	if isEnvelope(top) {
		env, err := protocol.Decode(payload, site, protocol.KindTrigger, &b)
		if err != nil {
			return Reading{}, err // already says bad message, and why
		}
		if b.At.IsZero() {
			b.At = env.Issued
		}
	} else {
		if err := json.Unmarshal(payload, &b); err != nil {
			return Reading{}, fmt.Errorf("%w: reading: %v", protocol.ErrBadMessage, err)
		}
		if err := b.Validate(); err != nil {
			return Reading{}, fmt.Errorf("%w: reading: %v", protocol.ErrBadMessage, err)
		}
	}
	return Reading{At: b.At, Values: map[string]float64(b.Values)}, nil
}

// isEnvelope tells an envelope from a bare reading by the members only an
// envelope has.
func isEnvelope(top map[string]json.RawMessage) bool {
	for _, k := range [...]string{"v", "kind", "body"} {
		if _, ok := top[k]; ok {
			return true
		}
	}
	return false
}
