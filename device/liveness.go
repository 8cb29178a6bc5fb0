package device

import (
	"sync"
	"sync/atomic"
	"time"
)

// LoopClock is a Clock that notes each turn of the agent's loop, for a
// service watchdog: the loop asks its clock for one timer per turn and
// sleeps at most a second (maxWait) on it, and nothing else asks the
// injected clock for timers. A loop that stops turning (stuck in a call,
// deadlocked) stops the turns. Wrap the clock given to New with it.
type LoopClock struct {
	Clock
	base    time.Time    // monotonic origin: a wall-clock step (NTP on a Pi that booted in 1970) is no stall
	last    atomic.Int64 // time since base at the last turn, 0 before the first
	once    sync.Once
	started chan struct{}
}

var _ Clock = (*LoopClock)(nil)

// NewLoopClock wraps c (nil: SystemClock).
func NewLoopClock(c Clock) *LoopClock {
	if c == nil {
		c = SystemClock{}
	}
	return &LoopClock{Clock: c, base: time.Now(), started: make(chan struct{})}
}

// NewTimer notes a turn of the loop and returns c's timer.
func (c *LoopClock) NewTimer(d time.Duration) Timer {
	c.last.Store(max(int64(time.Since(c.base)), 1))
	c.once.Do(func() { close(c.started) })
	return c.Clock.NewTimer(d)
}

// Started is closed at the loop's first turn: the agent has loaded its
// state, reconciled its stored plan and started its workers.
func (c *LoopClock) Started() <-chan struct{} { return c.started }

// TurnedWithin reports whether the loop turned within the last d.
func (c *LoopClock) TurnedWithin(d time.Duration) bool {
	last := c.last.Load()
	return last != 0 && time.Since(c.base)-time.Duration(last) < d
}
