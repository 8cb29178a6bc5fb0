package timesource

import (
	"context"
	"errors"
	"time"
)

// Source names, as the box reports them in protocol.State.TimeSource.
const (
	Controller = "controller" // the controller's time sync (package device)
	RTC        = "rtc"
	NITZ       = "nitz"
	GPS        = "gps"
	System     = "system" // the system clock, set by NTP
	Saved      = "saved"  // the time saved on disk: a lower bound
	None       = "none"
)

// ErrAbsent is returned by a Reader whose source is not on this box (no
// device file, no mmcli, nothing configured). Callers skip it quietly.
var ErrAbsent = errors.New("time source not present")

// ErrNoTime is returned by a source that is present but does not know the
// time now (no GPS fix, no network time from the modem, unsynchronised).
var ErrNoTime = errors.New("time source has no time")

// Reading is what a source said.
type Reading struct {
	// Time is the source's time at Taken.
	Time time.Time
	// Taken is time.Now() when the reading was taken: it carries the
	// monotonic clock, so that Now can move the reading forward.
	Taken time.Time
	// Source is the source's name (RTC, NITZ, ...).
	Source string
	// Exact is false when Time is only a lower bound: the real time is
	// Time or later (a saved time after a reboot).
	Exact bool
}

// Now is the source's time now, as the monotonic clock moved since Taken.
func (r Reading) Now() time.Time { return r.Time.Add(time.Since(r.Taken)) }

// Reader is one time source.
type Reader interface {
	Read(ctx context.Context) (Reading, error)
}

// ReaderFunc makes a function a Reader (fakes in tests).
type ReaderFunc func(ctx context.Context) (Reading, error)

// Read calls f.
func (f ReaderFunc) Read(ctx context.Context) (Reading, error) { return f(ctx) }

var _ Reader = ReaderFunc(nil)
