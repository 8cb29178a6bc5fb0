package live

import (
	"testing"
	"time"
)

func TestSpoken(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute:             "60 s",
		1500 * time.Millisecond: "1.5 s",
		90 * time.Minute:        "90 min",
		4 * time.Hour:           "4 h",
		0:                       "0 s",
	} {
		if got := spoken(d); got != want {
			t.Errorf("spoken(%v) = %q, want %q", d, got, want)
		}
	}
}
