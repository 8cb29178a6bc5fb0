package timesource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SystemClock is the system clock when the kernel says NTP keeps it
// (adjtimex: not TIME_ERROR, STA_UNSYNC clear): systemd-timesyncd or chrony
// reached a time server. A Raspberry Pi without one of those has a clock
// that fake-hwclock set from a saved time at boot: plausible, but wrong by
// how long the box was off, and the kernel says unsynchronised.
type SystemClock struct {
	// Synced, if set, replaces the kernel's answer (tests).
	Synced func() (bool, error)
}

var _ Reader = (*SystemClock)(nil)

// Read returns time.Now() as exact when the kernel calls the clock
// synchronised, and ErrNoTime otherwise.
func (c *SystemClock) Read(ctx context.Context) (Reading, error) {
	if err := ctx.Err(); err != nil {
		return Reading{}, err
	}
	synced := c.Synced
	if synced == nil {
		synced = KernelSynced
	}
	ok, err := synced()
	if err != nil {
		return Reading{}, fmt.Errorf("system clock: %w", err)
	}
	if !ok {
		return Reading{}, fmt.Errorf("system clock not synchronised by NTP: %w", ErrNoTime)
	}
	now := time.Now()
	return Reading{Time: now.Round(0), Taken: now, Source: System, Exact: true}, nil
}

// TimesyncFlag is the file systemd-timesyncd creates once it has set the
// clock in this boot (/run is emptied at boot).
const TimesyncFlag = "/run/systemd/timesync/synchronized"

// KernelSynced asks the kernel whether NTP disciplines the system clock.
// Where adjtimex is refused (systemd's ProtectClock filters it, even to
// read), it looks for TimesyncFlag instead.
func KernelSynced() (bool, error) {
	return kernelSynced(func(tx *unix.Timex) (int, error) { return unix.Adjtimex(tx) }, TimesyncFlag)
}

func kernelSynced(adjtimex func(*unix.Timex) (int, error), flag string) (bool, error) {
	var tx unix.Timex // modes 0: read only, needs no privilege
	state, err := adjtimex(&tx)
	if err != nil {
		if _, ferr := os.Stat(flag); ferr == nil {
			return true, nil
		} else if !errors.Is(ferr, fs.ErrNotExist) {
			return false, fmt.Errorf("adjtimex: %w; %s: %w", err, flag, ferr)
		}
		return false, nil // refused, and no timesyncd flag: not known to be synced
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}
