package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Environment variables systemd sets for a Type=notify service.
const (
	envSocket      = "NOTIFY_SOCKET"
	envWatchdogUS  = "WATCHDOG_USEC"
	envWatchdogPID = "WATCHDOG_PID"
)

// States sent by Ready, Stopping and the watchdog.
const (
	StateReady    = "READY=1"
	StateStopping = "STOPPING=1"
	StateWatchdog = "WATCHDOG=1"
)

// Notify sends state (one or more "KEY=value" lines) to systemd's notify
// socket. It reports false, nil when NOTIFY_SOCKET is unset.
func Notify(state string) (bool, error) {
	path := os.Getenv(envSocket)
	if path == "" {
		return false, nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return true, nil
}

// Ready tells systemd the service has started.
func Ready() error {
	_, err := Notify(StateReady)
	return err
}

// Stopping tells systemd the service is shutting down.
func Stopping() error {
	_, err := Notify(StateStopping)
	return err
}

// WatchdogInterval is how often systemd wants a WATCHDOG=1 (WatchdogSec as
// WATCHDOG_USEC), or 0 when it wants none or wants it from another process.
func WatchdogInterval() (time.Duration, error) {
	s := os.Getenv(envWatchdogUS)
	if s == "" || os.Getenv(envSocket) == "" {
		return 0, nil
	}
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil || us <= 0 {
		return 0, fmt.Errorf("sd_notify: %s=%q is not a positive number of microseconds", envWatchdogUS, s)
	}
	if p := os.Getenv(envWatchdogPID); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sd_notify: %s=%q is not a process id", envWatchdogPID, p)
		}
		if pid != os.Getpid() {
			return 0, nil
		}
	}
	return time.Duration(us) * time.Microsecond, nil
}

// ErrNotAlive is what Watchdog returns when alive said false: it stopped
// pinging, so systemd will restart the service once WatchdogSec has passed.
var ErrNotAlive = errors.New("sd_notify: the service is not alive, watchdog pings stopped")

// Watchdog sends WATCHDOG=1 every half of the watchdog interval until ctx
// is done, each time only if alive (nil: always) reports true. Once alive
// reports false it stops and returns ErrNotAlive, so a hung service is
// restarted by systemd. A failed send does not stop it (the socket is gone
// for a moment while systemd re-executes itself). It returns nil at once
// when systemd wants no pings, and nil when ctx ends.
func Watchdog(ctx context.Context, alive func() bool) error {
	every, err := WatchdogInterval()
	if err != nil || every == 0 {
		return err
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		if alive != nil && !alive() {
			return ErrNotAlive
		}
		_, _ = Notify(StateWatchdog)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
