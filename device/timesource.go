package device

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/loa-commune/loa/timesource"
)

// Time without the network. The box takes the controller's time when its
// time sync has an estimate (timesync.go). Until then it reads, in this
// order, a hardware clock (RTC), the cellular network's time (NITZ, through
// ModemManager), a GPS receiver, and the system clock if the kernel says NTP
// keeps it, and takes the first that answers with a plausible time as the
// clock's offset; it reads them again every timeSourceEvery until the
// controller answers. The last source is the time saved in the cache at
// every sync and at shutdown: within the same boot (an agent restart) it is
// exact, carried by the kernel's boot clock; after a reboot only a lower
// bound. With a lower bound alone the clock is not placed: the box plays no
// timed item and reports why (problem time-unknown), but it sounds an
// emergency that arrives (unplacedTick).

// TimeSourceNone disables a source in TimeSources; NITZAuto lets the box
// use ModemManager's mmcli when it is installed.
const (
	TimeSourceNone = "none"
	NITZAuto       = "auto"
)

const (
	// timeSourceEvery is how often the sources are read again while the
	// controller has not answered, and how often a synced box checks
	// whether to save the time or set the RTC.
	timeSourceEvery = time.Minute
	// timeSaveEvery bounds how often a synced box writes the saved time
	// (the memory card wears); Run writes it again at shutdown.
	timeSaveEvery = 10 * time.Minute
	// controllerStale: a synced box whose controller has not answered for
	// this long takes its time from an exact source again.
	controllerStale = time.Hour
	// rtcSetEvery is how often a synced box sets its RTC from the
	// controller's time.
	rtcSetEvery = time.Hour
	// timeReadBudget bounds the reading of every source at start: the
	// box waits that long at most before its loop starts.
	timeReadBudget = 10 * time.Second
	// emergencySlack: an emergency that starts at most this long after its
	// plan was made is "now" (the controller sends emergencies due at
	// once), so it plays on arrival even when the clock is not placed.
	emergencySlack = 5 * time.Second
)

// TimeSources is the time_sources section of the agent's config: where the
// box may read the time when its controller cannot tell it.
type TimeSources struct {
	// RTC is the hardware clock's device; /dev/rtc0 by default, none to
	// ignore it. A box without one simply has no such file.
	RTC string `yaml:"rtc"`
	// NITZ is auto (the default: ModemManager's mmcli when installed),
	// none, or the path of mmcli.
	NITZ string `yaml:"nitz"`
	// GPS is the serial device of a GPS receiver that sends NMEA
	// (/dev/serial0, /dev/ttyUSB0); none by default.
	GPS string `yaml:"gps"`
}

// DefaultTimeSources tries an RTC and a modem when the box has them.
func DefaultTimeSources() TimeSources {
	return TimeSources{RTC: timesource.DefaultRTCDevice, NITZ: NITZAuto, GPS: TimeSourceNone}
}

// validate checks the section; errors name the field.
func (s TimeSources) validate() error {
	path := func(field, v string, extra ...string) error {
		if v == "" || v == TimeSourceNone || filepath.IsAbs(v) {
			return nil
		}
		for _, e := range extra {
			if v == e {
				return nil
			}
		}
		words := append([]string{"an absolute path", TimeSourceNone}, extra...)
		return fieldErr("time_sources."+field, "%q is not %s", v, strings.Join(words, " or "))
	}
	for _, err := range []error{path("rtc", s.RTC), path("nitz", s.NITZ, NITZAuto), path("gps", s.GPS)} {
		if err != nil {
			return err
		}
	}
	return nil
}

// rtcSetter sets a hardware clock (timesource.RTCClock).
type rtcSetter interface {
	Set(ctx context.Context, t time.Time) error
}

// clockSources are the agent's time sources.
type clockSources struct {
	// exact are read in order; the first plausible exact reading places
	// the clock.
	exact []timesource.Reader
	saved *timesource.SavedTime
	// rtc, if set, is set from the controller's time every rtcSetEvery.
	rtc rtcSetter
}

// newClockSources makes the agent's sources from its config. Tests replace
// it, so that no test reads this machine's devices.
var newClockSources = clockSourcesFromConfig

func clockSourcesFromConfig(cfg Config) *clockSources {
	s := &clockSources{saved: savedTimeIn(cfg.Cache)}
	ts := cfg.TimeSources
	if ts.RTC != "" && ts.RTC != TimeSourceNone {
		rtc := &timesource.RTCClock{Device: ts.RTC}
		s.exact = append(s.exact, rtc)
		s.rtc = rtc
	}
	switch ts.NITZ {
	case "", TimeSourceNone:
	case NITZAuto:
		s.exact = append(s.exact, &timesource.Modem{})
	default:
		s.exact = append(s.exact, &timesource.Modem{Command: ts.NITZ})
	}
	if ts.GPS != "" && ts.GPS != TimeSourceNone {
		s.exact = append(s.exact, &timesource.GPSReceiver{Device: ts.GPS})
	}
	s.exact = append(s.exact, &timesource.SystemClock{})
	return s
}

func savedTimeIn(cache string) *timesource.SavedTime {
	return &timesource.SavedTime{Path: filepath.Join(cache, timesource.SavedFileName)}
}

// sourceName is a reader's name for logs.
func sourceName(r timesource.Reader) string {
	switch r.(type) {
	case *timesource.RTCClock:
		return timesource.RTC
	case *timesource.Modem:
		return timesource.NITZ
	case *timesource.GPSReceiver:
		return timesource.GPS
	case *timesource.SystemClock:
		return timesource.System
	}
	return fmt.Sprintf("%T", r)
}
