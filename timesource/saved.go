package timesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/loa-commune/loa/internal/atomicfile"
)

// SavedFileName is the saved time's file in the agent's cache folder.
const SavedFileName = "time.saved"

// bootIDPath is the kernel's random id of this boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// SavedTime is a time written to a file whenever the box knows the time
// (every sync, at shutdown), with the id of the boot and the kernel's boot
// clock then. Read in the same boot (the agent restarted) it is exact: the
// boot clock carried it. After a reboot it is only a lower bound: the box
// was off for an unknown while, so the time is at least the saved one plus
// how long this boot has lasted. Save replaces the file whole (a power cut
// leaves the old one or the new one).
type SavedTime struct {
	Path string
	// Boot, if set, replaces the kernel's boot id and time since boot
	// (tests).
	Boot func() (id string, up time.Duration, err error)
}

var _ Reader = (*SavedTime)(nil)

// savedFile is the file's layout.
type savedFile struct {
	Time time.Time `json:"time"`
	// Source is where the time came from (controller, rtc, ...).
	Source string `json:"source,omitempty"`
	BootID string `json:"boot_id,omitempty"`
	// UptimeNS is the boot clock (CLOCK_BOOTTIME) at Time.
	UptimeNS int64 `json:"uptime_ns,omitempty"`
}

func (s *SavedTime) boot() (string, time.Duration, error) {
	if s.Boot != nil {
		return s.Boot()
	}
	return KernelBoot()
}

// KernelBoot returns this boot's id and how long ago the box booted
// (CLOCK_BOOTTIME: it counts a suspend too).
func KernelBoot() (string, time.Duration, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", 0, fmt.Errorf("boot id: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return "", 0, fmt.Errorf("boot clock: %w", err)
	}
	return strings.TrimSpace(string(b)), time.Duration(ts.Nano()), nil
}

// Read returns the saved time: exact within the boot that saved it, a lower
// bound after a reboot (Source Saved). It is ErrAbsent when no time was
// ever saved.
func (s *SavedTime) Read(ctx context.Context) (Reading, error) {
	if err := ctx.Err(); err != nil {
		return Reading{}, err
	}
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Reading{}, fmt.Errorf("saved time %s: %w", s.Path, ErrAbsent)
	}
	if err != nil {
		return Reading{}, fmt.Errorf("saved time: %w", err)
	}
	var f savedFile
	if err := json.Unmarshal(b, &f); err != nil || f.Time.IsZero() {
		return Reading{}, fmt.Errorf("saved time %s: %q: %w", s.Path, strings.TrimSpace(string(b)), ErrNoTime)
	}
	id, up, berr := s.boot()
	taken := time.Now()
	if berr == nil && f.BootID != "" && id == f.BootID && int64(up) >= f.UptimeNS {
		src := f.Source
		if src == "" {
			src = Saved
		}
		return Reading{Time: f.Time.Add(up - time.Duration(f.UptimeNS)).UTC(), Taken: taken, Source: src, Exact: true}, nil
	}
	if berr != nil {
		up = 0
	}
	// Another boot: it began after the save, and has lasted up.
	return Reading{Time: f.Time.Add(up).UTC(), Taken: taken, Source: Saved, Exact: false}, nil
}

// Save writes t, the time now from source.
func (s *SavedTime) Save(t time.Time, source string) error {
	f := savedFile{Time: t.UTC(), Source: source}
	if id, up, err := s.boot(); err == nil {
		f.BootID, f.UptimeNS = id, int64(up)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("save the time: %w", err)
	}
	if err := atomicfile.Write(s.Path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the time: %w", err)
	}
	return nil
}
