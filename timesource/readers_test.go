package timesource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func near(t *testing.T, got, want time.Time, tol time.Duration) {
	t.Helper()
	if d := got.Sub(want); d < -tol || d > tol {
		t.Fatalf("time %v, want %v (±%v)", got, want, tol)
	}
}

// fakeRTC is a file standing for /dev/rtc0 (no RTC driver answers its
// ioctl) and a sysfs folder with rtc0/since_epoch.
func fakeRTC(t *testing.T, epoch string) *RTCClock {
	t.Helper()
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev", "rtc0")
	sys := filepath.Join(dir, "sys")
	for _, d := range []string{filepath.Dir(dev), filepath.Join(sys, "rtc0")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "rtc0", "since_epoch"), []byte(epoch), 0o644); err != nil {
		t.Fatal(err)
	}
	return &RTCClock{Device: dev, Sysfs: sys}
}

func TestRTC(t *testing.T) {
	ctx := context.Background()
	t.Run("reads since_epoch when the ioctl is refused", func(t *testing.T) {
		want := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
		r, err := fakeRTC(t, "1772431200\n").Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Exact || r.Source != RTC || !r.Time.Equal(want.Add(500*time.Millisecond)) {
			t.Fatalf("reading %+v, want %v + 0.5 s, exact", r, want)
		}
	})
	t.Run("absent", func(t *testing.T) {
		_, err := (&RTCClock{Device: filepath.Join(t.TempDir(), "rtc0")}).Read(ctx)
		if !errors.Is(err, ErrAbsent) {
			t.Fatalf("error %v, want ErrAbsent", err)
		}
	})
	t.Run("never set", func(t *testing.T) {
		_, err := fakeRTC(t, "0\n").Read(ctx)
		if !errors.Is(err, ErrNoTime) {
			t.Fatalf("error %v, want ErrNoTime", err)
		}
	})
	t.Run("set refuses a file that is no RTC", func(t *testing.T) {
		c := fakeRTC(t, "1")
		if err := c.Set(ctx, time.Now()); err == nil || errors.Is(err, ErrAbsent) {
			t.Fatalf("Set on a plain file: %v", err)
		}
	})
}

// fakeMMCLI puts a script named mmcli that prints out (and exits with
// code) in a temporary PATH.
func fakeMMCLI(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mmcli"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":/usr/bin:/bin") // the script needs cat and sleep
}

func TestModem(t *testing.T) {
	ctx := context.Background()
	want := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, script string
		err          error
	}{
		{"key-value", `[ "$1 $2 $3 $4" = "-m any --time -K" ] || exit 9
cat <<X
modem.time.current                  : 2026-03-02T13:00:00+07:00
modem.timezone.current              : 420
modem.timezone.dst-offset           : 0
modem.timezone.leap-seconds         : --
X`, nil},
		{"glib offset without minutes", `echo "modem.time.current : 2026-03-02T13:00:00+07"`, nil},
		{"no offset, time zone in minutes", `printf 'modem.time.current : 2026-03-02T13:00:00\nmodem.timezone.current : 420\n'`, nil},
		{"human form", `cat <<X
  ----------------------------------
  Time     |            current: 2026-03-02T06:00:00Z
  ----------------------------------
  Timezone |            current: 0
X`, nil},
		{"no network time", `echo "modem.time.current : --"`, ErrNoTime},
		{"no modem", `echo "error: couldn't find modem" >&2; exit 1`, ErrNoTime},
		{"no zone at all", `echo "modem.time.current : 2026-03-02T13:00:00"`, ErrNoTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeMMCLI(t, tc.script)
			r, err := (&Modem{}).Read(ctx)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !r.Exact || r.Source != NITZ || !r.Time.Equal(want) {
				t.Fatalf("reading %+v, want %v exact", r, want)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, err := (&Modem{}).Read(ctx); !errors.Is(err, ErrAbsent) {
			t.Fatalf("error %v, want ErrAbsent", err)
		}
	})
	t.Run("hangs", func(t *testing.T) {
		fakeMMCLI(t, "exec sleep 30")
		start := time.Now()
		_, err := (&Modem{Timeout: 200 * time.Millisecond, Command: "mmcli"}).Read(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want a timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a hanging mmcli held the read %v", d)
		}
	})
}

func TestGPS(t *testing.T) {
	ctx := context.Background()
	write := func(t *testing.T, lines ...string) string {
		p := filepath.Join(t.TempDir(), "ttyUSB0")
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := time.Date(2026, 3, 2, 6, 0, 1, 0, time.UTC)
	t.Run("waits for a fix, skips damaged sentences", func(t *testing.T) {
		dev := write(t,
			"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74",
			sentence("GPRMC,060000.00,V,,,,,,,020326,,,N"),
			"$GPRMC,060001.00,A,2105.1234,N,10551.5678,E,0.01,,020326,,,A*00", // damaged
			sentence("GPGGA,060001.00,2105.1,N,10551.5,E,1,08,0.9,545.4,M,46.9,M,,"),
			sentence("GPRMC,060001.00,A,2105.1234,N,10551.5678,E,0.01,,020326,,,A"),
		)
		r, err := (&GPSReceiver{Device: dev}).Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Exact || r.Source != GPS || !r.Time.Equal(want) {
			t.Fatalf("reading %+v, want %v", r, want)
		}
	})
	t.Run("zda", func(t *testing.T) {
		r, err := (&GPSReceiver{Device: write(t, sentence("GPZDA,060001.00,02,03,2026,00,00"))}).Read(ctx)
		if err != nil || !r.Time.Equal(want) {
			t.Fatalf("reading %+v, %v", r, err)
		}
	})
	t.Run("zda after an rmc without fix", func(t *testing.T) {
		_, err := (&GPSReceiver{Device: write(t, sentence("GPRMC,060000.00,V,,,,,,,020326,,,N"), sentence("GPZDA,060001.00,02,03,2026,00,00"))}).Read(ctx)
		if !errors.Is(err, ErrNoTime) {
			t.Fatalf("error %v, want ErrNoTime", err)
		}
	})
	t.Run("no fix", func(t *testing.T) {
		_, err := (&GPSReceiver{Device: write(t, sentence("GPRMC,060000.00,V,,,,,,,020326,,,N"))}).Read(ctx)
		if !errors.Is(err, ErrNoTime) {
			t.Fatalf("error %v, want ErrNoTime", err)
		}
	})
	t.Run("absent or not configured", func(t *testing.T) {
		for _, dev := range []string{"", filepath.Join(t.TempDir(), "ttyUSB0")} {
			if _, err := (&GPSReceiver{Device: dev}).Read(ctx); !errors.Is(err, ErrAbsent) {
				t.Fatalf("device %q: error %v, want ErrAbsent", dev, err)
			}
		}
	})
	t.Run("a line that never ends times out", func(t *testing.T) {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "tty")
		if err := mkfifo(fifo); err != nil {
			t.Skip("no fifo:", err)
		}
		w, err := os.OpenFile(fifo, os.O_RDWR, 0) // keeps the fifo open: reads block
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		start := time.Now()
		_, err = (&GPSReceiver{Device: fifo, Timeout: 200 * time.Millisecond}).Read(ctx)
		if !errors.Is(err, ErrNoTime) {
			t.Fatalf("error %v, want ErrNoTime", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

func TestSavedTime(t *testing.T) {
	ctx := context.Background()
	boot, up := "boot-1", 10*time.Minute
	s := &SavedTime{Path: filepath.Join(t.TempDir(), SavedFileName), Boot: func() (string, time.Duration, error) { return boot, up, nil }}
	if _, err := s.Read(ctx); !errors.Is(err, ErrAbsent) {
		t.Fatalf("error %v, want ErrAbsent", err)
	}
	at := time.Date(2026, 3, 2, 6, 0, 0, 123, time.FixedZone("ICT", 7*3600))
	if err := s.Save(at, "controller"); err != nil {
		t.Fatal(err)
	}
	t.Run("same boot: exact, carried by the boot clock", func(t *testing.T) {
		up = 15 * time.Minute
		r, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Exact || r.Source != "controller" || !r.Time.Equal(at.Add(5*time.Minute)) {
			t.Fatalf("reading %+v, want %v exact from the controller", r, at.Add(5*time.Minute))
		}
		near(t, r.Now(), at.Add(5*time.Minute), time.Second)
	})
	t.Run("after a reboot: a lower bound", func(t *testing.T) {
		boot, up = "boot-2", 40*time.Second
		r, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Exact || r.Source != Saved || !r.Time.Equal(at.Add(40*time.Second)) {
			t.Fatalf("reading %+v, want %v as a lower bound", r, at.Add(40*time.Second))
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if err := os.WriteFile(s.Path, []byte("yesterday"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(ctx); !errors.Is(err, ErrNoTime) {
			t.Fatalf("error %v, want ErrNoTime", err)
		}
	})
	if id, up, err := KernelBoot(); err != nil || id == "" || up <= 0 {
		t.Fatalf("KernelBoot = %q, %v, %v", id, up, err)
	}
}

func TestSystemClock(t *testing.T) {
	ctx := context.Background()
	r, err := (&SystemClock{Synced: func() (bool, error) { return true, nil }}).Read(ctx)
	if err != nil || !r.Exact || r.Source != System {
		t.Fatalf("reading %+v, %v", r, err)
	}
	near(t, r.Now(), time.Now(), time.Second)
	if _, err := (&SystemClock{Synced: func() (bool, error) { return false, nil }}).Read(ctx); !errors.Is(err, ErrNoTime) {
		t.Fatalf("error %v, want ErrNoTime", err)
	}
	if _, err := KernelSynced(); err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
	// Under systemd's ProtectClock adjtimex is refused: timesyncd's flag
	// file tells instead.
	refused := func(*unix.Timex) (int, error) { return 0, unix.EPERM }
	flag := filepath.Join(t.TempDir(), "synchronized")
	if ok, err := kernelSynced(refused, flag); ok || err != nil {
		t.Fatalf("refused, no flag: %v, %v", ok, err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := kernelSynced(refused, flag); !ok || err != nil {
		t.Fatalf("refused, with the flag: %v, %v", ok, err)
	}
	unsynced := func(tx *unix.Timex) (int, error) { tx.Status = unix.STA_UNSYNC; return unix.TIME_ERROR, nil }
	if ok, _ := kernelSynced(unsynced, flag); ok {
		t.Fatal("TIME_ERROR taken for synchronised")
	}
}
