package timesource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRTCDevice is the first hardware clock, as a DS3231 board's driver
// (dtoverlay=i2c-rtc,ds3231) makes it.
const DefaultRTCDevice = "/dev/rtc0"

// DefaultRTCSysfs is where the kernel shows each RTC's time.
const DefaultRTCSysfs = "/sys/class/rtc"

// rtcResolution: an RTC counts whole seconds, so a reading is on average
// half a second behind; Read adds that half.
const rtcResolution = time.Second

// RTCClock is a hardware real-time clock, kept in UTC (as Linux keeps
// it). Read asks the driver with the RTC_RD_TIME ioctl and, where that is
// refused (a device only root may open, a file that is no RTC character
// device as in tests), reads <Sysfs>/<name>/since_epoch. No cgo.
type RTCClock struct {
	// Device is the RTC's device file; DefaultRTCDevice when empty.
	Device string
	// Sysfs is the kernel's RTC class folder; DefaultRTCSysfs when empty.
	Sysfs string
}

var _ Reader = (*RTCClock)(nil)

func (c *RTCClock) device() string {
	if c.Device == "" {
		return DefaultRTCDevice
	}
	return c.Device
}

// Read returns the RTC's time: exact (to about half a second). It is
// ErrAbsent when the device file does not exist.
func (c *RTCClock) Read(ctx context.Context) (Reading, error) {
	if err := ctx.Err(); err != nil {
		return Reading{}, err
	}
	dev := c.device()
	f, ioErr := os.Open(dev)
	if errors.Is(ioErr, fs.ErrNotExist) {
		return Reading{}, fmt.Errorf("rtc %s: %w", dev, ErrAbsent)
	}
	if ioErr == nil {
		rt, err := unix.IoctlGetRTCTime(int(f.Fd()))
		taken := time.Now()
		f.Close()
		if err == nil {
			t := time.Date(int(rt.Year)+1900, time.Month(rt.Mon+1), int(rt.Mday), int(rt.Hour), int(rt.Min), int(rt.Sec), 0, time.UTC)
			return Reading{Time: t.Add(rtcResolution / 2), Taken: taken, Source: RTC, Exact: true}, nil
		}
		ioErr = err
	}
	// The device may be root's only (the agent runs as its own user), or
	// no RTC at all: the kernel's sysfs file can be read by anyone.
	sys := c.Sysfs
	if sys == "" {
		sys = DefaultRTCSysfs
	}
	b, err := os.ReadFile(filepath.Join(sys, filepath.Base(dev), "since_epoch"))
	taken := time.Now()
	if err != nil {
		return Reading{}, fmt.Errorf("rtc %s: read: %w (sysfs: %v)", dev, ioErr, err)
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || sec <= 0 {
		// An RTC whose battery died and was never set reads nothing useful.
		return Reading{}, fmt.Errorf("rtc %s: since_epoch %q: %w", dev, strings.TrimSpace(string(b)), ErrNoTime)
	}
	return Reading{Time: time.Unix(sec, 0).UTC().Add(rtcResolution / 2), Taken: taken, Source: RTC, Exact: true}, nil
}

// Set sets the RTC to t (UTC) with the RTC_SET_TIME ioctl. The RTC keeps
// whole seconds, so Set waits (at most a second, or until ctx ends) for the
// next whole second of t and writes that: the clock then starts its second
// in step. It needs CAP_SYS_TIME (the agent's unit grants it).
func (c *RTCClock) Set(ctx context.Context, t time.Time) error {
	dev := c.device()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rtc %s: %w", dev, ErrAbsent)
	}
	if err != nil {
		return fmt.Errorf("set rtc: %w", err)
	}
	defer f.Close()
	next := t.Truncate(time.Second).Add(time.Second)
	wait := time.NewTimer(next.Sub(t))
	select {
	case <-ctx.Done():
		wait.Stop()
		return ctx.Err()
	case <-wait.C:
	}
	u := next.UTC()
	rt := unix.RTCTime{Sec: int32(u.Second()), Min: int32(u.Minute()), Hour: int32(u.Hour()),
		Mday: int32(u.Day()), Mon: int32(u.Month()) - 1, Year: int32(u.Year()) - 1900}
	if err := unix.IoctlSetRTCTime(int(f.Fd()), &rt); err != nil {
		return fmt.Errorf("set rtc %s: %w", dev, err)
	}
	return nil
}
