package device

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestReconnectWindow(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name    string
		p       ReconnectPolicy
		attempt int
		want    time.Duration
	}{
		{"zero policy never waits", ReconnectPolicy{}, 3, 0},
		{"first attempt: the spread", ReconnectPolicy{Spread: 15 * s, Cap: 30 * s}, 0, 15 * s},
		{"second attempt doubles", ReconnectPolicy{Spread: 15 * s, Cap: 60 * s}, 1, 30 * s},
		{"third attempt doubles again", ReconnectPolicy{Spread: 15 * s, Cap: 60 * s}, 2, 60 * s},
		{"capped", ReconnectPolicy{Spread: 15 * s, Cap: 40 * s}, 2, 40 * s},
		{"stays capped", ReconnectPolicy{Spread: 15 * s, Cap: 30 * s}, 1000, 30 * s},
		{"cap below spread", ReconnectPolicy{Spread: 15 * s, Cap: 5 * s}, 4, 15 * s},
		{"no cap", ReconnectPolicy{Spread: 15 * s}, 4, 15 * s},
		{"default", DefaultReconnectPolicy(), 0, DefaultReconnectSpread},
		{"default later", DefaultReconnectPolicy(), 5, DefaultReconnectCap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Window(tc.attempt); got != tc.want {
				t.Fatalf("Window(%d) = %v, want %v", tc.attempt, got, tc.want)
			}
		})
	}
}

// TestReconnectWaitSpreads draws many waits from a seeded source: each lies
// in its window, and they fill the window evenly, so 1,000 boxes that lose
// the broker together come back over the whole spread.
func TestReconnectWaitSpreads(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2026))
	p := ReconnectPolicy{Spread: 15 * time.Second, Cap: 30 * time.Second, Int64N: r.Int64N}
	const draws = 15000
	for attempt := range 4 {
		w := p.Window(attempt)
		buckets := make([]int, int(w/time.Second))
		for range draws {
			d := p.Wait(attempt)
			if d < 0 || d >= w {
				t.Fatalf("attempt %d: wait %v outside [0, %v)", attempt, d, w)
			}
			buckets[int(d/time.Second)]++
		}
		// Uniform: each one-second bucket expects draws/len(buckets); allow
		// ±20 % (the seeded draws are fixed, so this cannot flake).
		want := draws / len(buckets)
		for i, n := range buckets {
			if n < want*8/10 || n > want*12/10 {
				t.Fatalf("attempt %d: %d of %d waits in second %d, want about %d: %v", attempt, n, draws, i, want, buckets)
			}
		}
	}
	// The extremes of the source map to the ends of the window.
	lo := ReconnectPolicy{Spread: 15 * time.Second, Int64N: func(int64) int64 { return 0 }}
	hi := ReconnectPolicy{Spread: 15 * time.Second, Int64N: func(n int64) int64 { return n - 1 }}
	if lo.Wait(0) != 0 || hi.Wait(0) != 15*time.Second-1 {
		t.Fatalf("extremes %v, %v", lo.Wait(0), hi.Wait(0))
	}
}

// TestReconnectHandler: the handler waits only before reconnect attempts,
// with paho's attempt number, and a closed stop cuts the wait short.
func TestReconnectHandler(t *testing.T) {
	type call struct {
		attempt int
		wait    time.Duration
	}
	var calls []call
	p := ReconnectPolicy{Spread: time.Hour, Cap: 4 * time.Hour, Int64N: func(n int64) int64 { return n - 1 }}
	stop := make(chan struct{})
	close(stop) // an hour-long wait must return at once
	h := p.Handler(stop, func(attempt int, wait time.Duration) { calls = append(calls, call{attempt, wait}) })
	for _, n := range []mqtt.ConnectionNotification{
		mqtt.ConnectionNotificationConnecting{IsReconnect: false, Attempt: 0}, // the first connect: at once
		mqtt.ConnectionNotificationConnecting{IsReconnect: false, Attempt: 3}, // its retries: paho's interval only
		mqtt.ConnectionNotificationConnecting{IsReconnect: true, Attempt: 0},
		mqtt.ConnectionNotificationConnecting{IsReconnect: true, Attempt: 1},
		mqtt.ConnectionNotificationConnecting{IsReconnect: true, Attempt: 5},
		mqtt.ConnectionNotificationLost{Reason: errors.New("gone")},
		mqtt.ConnectionNotificationConnected{},
	} {
		h(nil, n)
	}
	want := []call{{0, time.Hour - 1}, {1, 2*time.Hour - 1}, {5, 4*time.Hour - 1}}
	if len(calls) != len(want) {
		t.Fatalf("waits %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("waits %v, want %v", calls, want)
		}
	}
}
