package device

import "time"

// Clock is the agent's view of wall-clock time. Every scheduling decision
// (when an item is due, when it expires, when a download is retried, when
// the next heartbeat goes out) asks it, so tests can move time by hand.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C after its duration, like time.Timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// SystemClock is the real clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// SkewedClock is the system clock off by Skew: a box whose clock is wrong,
// as loa-agent --clock-skew makes it to try time sync.
type SkewedClock struct{ Skew time.Duration }

var _ Clock = SkewedClock{}

// Now returns time.Now() + Skew.
func (c SkewedClock) Now() time.Time { return time.Now().Add(c.Skew) }

// NewTimer returns a time.Timer.
func (SkewedClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }
