package protocol

import (
	"encoding/json"
	"fmt"
)

// Priority orders plan items: a higher one preempts a lower one.
type Priority int

// Priorities, lowest first (Circular 39/2020/TT-BTTTT has normal, priority and
// emergency bulletins; background is for music and fillers).
const (
	Background Priority = iota
	Normal
	High // "priority" in the CLI and on the wire
	Emergency
)

var priorityNames = [...]string{"background", "normal", "priority", "emergency"}

func (p Priority) String() string {
	if p < Background || p > Emergency {
		return fmt.Sprintf("priority(%d)", int(p))
	}
	return priorityNames[p]
}

// ParsePriority reads a priority name as the CLI and the wire spell it.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if n == s {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q (use background, normal, priority or emergency)", s)
}

// MarshalJSON writes the name.
func (p Priority) MarshalJSON() ([]byte, error) {
	if p < Background || p > Emergency {
		return nil, fmt.Errorf("invalid priority %d", int(p))
	}
	return json.Marshal(p.String())
}

// UnmarshalJSON reads the name.
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("priority: %w", err)
	}
	v, err := ParsePriority(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}
