package ratelimit_test

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/ratelimit"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestTake(t *testing.T) {
	const perSec, burst = 2, 3
	tests := []struct {
		name  string
		after []time.Duration // when each call is made, from t0
		wait  []time.Duration // what each returns
	}{
		{"zero value starts full", []time.Duration{0, 0, 0}, []time.Duration{0, 0, 0}},
		{"burst then wait", []time.Duration{0, 0, 0, 0}, []time.Duration{0, 0, 0, 500 * time.Millisecond}},
		{"refill at the rate", []time.Duration{0, 0, 0, 500 * time.Millisecond, 500 * time.Millisecond}, []time.Duration{0, 0, 0, 0, 500 * time.Millisecond}},
		{"partial refill shortens the wait", []time.Duration{0, 0, 0, 250 * time.Millisecond}, []time.Duration{0, 0, 0, 250 * time.Millisecond}},
		{"never above the burst", []time.Duration{0, time.Hour, time.Hour, time.Hour, time.Hour}, []time.Duration{0, 0, 0, 0, 500 * time.Millisecond}},
		{"a refused call takes nothing", []time.Duration{0, 0, 0, 0, 0, 500 * time.Millisecond}, []time.Duration{0, 0, 0, 500 * time.Millisecond, 500 * time.Millisecond, 0}},
		{"a clock going back refills nothing", []time.Duration{time.Second, time.Second, time.Second, 0, 0}, []time.Duration{0, 0, 0, 500 * time.Millisecond, 500 * time.Millisecond}},
		{"nor counts twice when it catches up", []time.Duration{time.Second, time.Second, time.Second, 0, 1250 * time.Millisecond}, []time.Duration{0, 0, 0, 500 * time.Millisecond, 250 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b ratelimit.Bucket
			for i, at := range tc.after {
				if got := b.Take(t0.Add(at), perSec, burst); got != tc.wait[i] {
					t.Fatalf("call %d at +%v: wait %v, want %v", i+1, at, got, tc.wait[i])
				}
			}
		})
	}
}

func TestTakeUsesTheRateGiven(t *testing.T) {
	var b ratelimit.Bucket
	b.Take(t0, 1, 1)
	if w := b.Take(t0, 1, 1); w != time.Second {
		t.Fatalf("at 1/s: wait %v, want 1s", w)
	}
	if w := b.Take(t0, 4, 1); w != 250*time.Millisecond {
		t.Fatalf("at 4/s: wait %v, want 250ms", w)
	}
	// A burst lowered below what the bucket holds caps it on the next refill.
	var c ratelimit.Bucket
	c.Take(t0, 1, 10)
	if w := c.Take(t0.Add(time.Millisecond), 1, 1); w != 0 {
		t.Fatalf("first call at burst 1: wait %v", w)
	}
	if w := c.Take(t0.Add(time.Millisecond), 1, 1); w == 0 {
		t.Fatal("the old burst of 10 was kept after it was lowered to 1")
	}
}

func TestFull(t *testing.T) {
	const perSec, burst = 2, 3
	var b ratelimit.Bucket
	if !b.Full(t0, perSec, burst) {
		t.Fatal("the zero value is not full")
	}
	b.Take(t0, perSec, burst)
	b.Take(t0, perSec, burst) // one token left
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{
		{0, false},
		{999 * time.Millisecond, false},
		{time.Second, true}, // 1 + 1 s × 2/s = 3
		{time.Hour, true},
		{-time.Hour, false}, // a clock going back refills nothing
	} {
		if got := b.Full(t0.Add(tc.after), perSec, burst); got != tc.want {
			t.Errorf("Full at +%v = %v, want %v", tc.after, got, tc.want)
		}
	}
	// Full does not refill: the bucket still holds one token at t0.
	if w := b.Take(t0, perSec, burst); w != 0 {
		t.Fatalf("after Full: wait %v, want the token left", w)
	}
	if w := b.Take(t0, perSec, burst); w != 500*time.Millisecond {
		t.Fatalf("after Full: wait %v, want 500ms", w)
	}
}
