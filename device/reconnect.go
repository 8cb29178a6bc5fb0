package device

import (
	"math/rand/v2"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Defaults of the reconnect policy.
const (
	// DefaultReconnectSpread is the window over which a fleet that lost the
	// broker at the same moment spreads its first attempts to reconnect:
	// 1,000 boxes come back at about 70 a second rather than all at once.
	DefaultReconnectSpread = 15 * time.Second
	// DefaultReconnectCap bounds the window of later attempts. It is the
	// spread: a box whose first attempt found the broker still down tries
	// again within the same window, after paho's own pause (which doubles
	// with every failure, so a long outage still backs off). Doubling the
	// window too made the last boxes of a fleet come back 15 s later after
	// a restart and lowered the peak no further (docs/benchmarks.md).
	DefaultReconnectCap = DefaultReconnectSpread
)

// ReconnectPolicy says how long a box waits before each attempt to
// reconnect, so that hundreds of boxes which lose the broker together (it
// restarted) do not all come back in the same second.
//
// The first attempt after a lost connection waits a uniformly random time in
// [0, Spread); after each failed attempt the window doubles, up to Cap ("full
// jitter"; by default Cap is Spread, so every attempt draws from [0, Spread)).
// paho pauses between failed attempts on top of this (1 s, doubling up to the
// client's MaxReconnectInterval), the same pause on every box: that is the
// exponential backoff, and the random part keeps the boxes out of step. The
// wait counts the attempts of one outage only: paho numbers them from 0
// again every time the connection is lost.
//
// The zero value never waits. A ReconnectPolicy is safe for concurrent use
// if Int64N is.
type ReconnectPolicy struct {
	// Spread is the window of the first attempt after a lost connection.
	Spread time.Duration
	// Cap bounds the window of later attempts; when it is below Spread,
	// Spread is the cap.
	Cap time.Duration
	// Int64N returns a uniform random number in [0, n) for n > 0; nil means
	// math/rand/v2's Int64N. Tests inject a seeded source.
	Int64N func(n int64) int64
}

// DefaultReconnectPolicy is the policy of loa-agent and of the simulated
// boxes of loa bench.
func DefaultReconnectPolicy() ReconnectPolicy {
	return ReconnectPolicy{Spread: DefaultReconnectSpread, Cap: DefaultReconnectCap}
}

// Window is the range [0, Window) that the wait before attempt (0 for the
// first after a lost connection) is drawn from.
func (p ReconnectPolicy) Window(attempt int) time.Duration {
	if p.Spread <= 0 {
		return 0
	}
	limit := max(p.Cap, p.Spread)
	w := p.Spread
	for i := 0; i < attempt && w < limit; i++ {
		w *= 2
	}
	return min(w, limit)
}

// Wait draws the wait before attempt.
func (p ReconnectPolicy) Wait(attempt int) time.Duration {
	w := p.Window(attempt)
	if w <= 0 {
		return 0
	}
	n := rand.Int64N
	if p.Int64N != nil {
		n = p.Int64N
	}
	return time.Duration(n(int64(w)))
}

// Handler returns a paho connection-notification handler that applies the
// policy (install it with SetConnectionNotificationHandler). paho calls it
// on its reconnect goroutine right before each attempt, with the attempt's
// number in this outage; the handler sleeps Wait(attempt) there, or until
// stop is closed. The first Connect and its retries (SetConnectRetry) are
// not delayed: a box that boots connects at once. onWait, if not nil, is
// told each wait before it starts (for logs and measurements); it must not
// block.
func (p ReconnectPolicy) Handler(stop <-chan struct{}, onWait func(attempt int, wait time.Duration)) mqtt.ConnectionNotificationHandler {
	return func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		c, ok := n.(mqtt.ConnectionNotificationConnecting)
		if !ok || !c.IsReconnect {
			return
		}
		d := p.Wait(c.Attempt)
		if onWait != nil {
			onWait(c.Attempt, d)
		}
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
		}
	}
}
