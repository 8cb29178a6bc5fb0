package main

import (
	"testing"
	"time"
)

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour:               "24h",
		90 * time.Minute:             "1h30m",
		10 * time.Minute:             "10m",
		2*time.Hour + 20*time.Second: "2h",
		45 * time.Second:             "1m",
	} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
