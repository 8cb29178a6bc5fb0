package capture

import "time"

// Thresholds of the input warnings.
const (
	// SilentBelow is the RMS under which the input counts as silent: a
	// live microphone in a quiet office is well above it.
	SilentBelow = -60.0
	// SilentFor is how long the input must stay silent before the warning.
	SilentFor = 3 * time.Second
	// ClipAt is the peak at which the input counts as clipping.
	ClipAt = -0.1
	// warnEvery bounds how often the same warning repeats.
	warnEvery = 10 * time.Second
)

// Warning says what is wrong with the input.
type Warning int

const (
	NoWarning Warning = iota
	Silent
	Clipping
)

// Monitor watches the levels for a silent or clipping input.
type Monitor struct {
	silentSince time.Time
	warned      map[Warning]time.Time
}

// Observe takes the level at t and returns a warning to show now, if any.
func (m *Monitor) Observe(l Level, t time.Time) Warning {
	if m.warned == nil {
		m.warned = map[Warning]time.Time{}
	}
	w := NoWarning
	switch {
	case l.Peak >= ClipAt:
		m.silentSince = time.Time{}
		w = Clipping
	case l.RMS < SilentBelow:
		if m.silentSince.IsZero() {
			m.silentSince = t
		}
		if t.Sub(m.silentSince) >= SilentFor-meterChunk {
			w = Silent
		}
	default:
		m.silentSince = time.Time{}
	}
	if w == NoWarning {
		return w
	}
	if last, ok := m.warned[w]; ok && t.Sub(last) < warnEvery {
		return NoWarning
	}
	m.warned[w] = t
	return w
}
