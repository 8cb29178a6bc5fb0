package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen makes a notify socket like systemd's and points NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(envSocket, path)
	return conn
}

// receive returns the next datagram, failing the test after a deadline.
func receive(t *testing.T, conn *net.UnixConn, within time.Duration) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %v: %v", within, err)
	}
	return string(buf[:n])
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv(envSocket, "")
	t.Setenv(envWatchdogUS, "1000")
	if sent, err := Notify(StateReady); sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if err := Stopping(); err != nil {
		t.Fatal(err)
	}
	if d, err := WatchdogInterval(); d != 0 || err != nil {
		t.Fatalf("WatchdogInterval = %v, %v; want 0, nil", d, err)
	}
	done := make(chan error, 1)
	go func() { done <- Watchdog(context.Background(), nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog did not return at once without NOTIFY_SOCKET")
	}
}

func TestReadyAndStopping(t *testing.T) {
	conn := listen(t)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn, 5*time.Second); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
	if err := Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn, 5*time.Second); got != "STOPPING=1" {
		t.Fatalf("got %q, want STOPPING=1", got)
	}
}

func TestNotifyMissingSocket(t *testing.T) {
	t.Setenv(envSocket, filepath.Join(t.TempDir(), "absent"))
	if _, err := Notify(StateReady); err == nil {
		t.Fatal("Notify to a socket that does not exist: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	listen(t)
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		wantErr         bool
	}{
		{name: "unset", want: 0},
		{name: "60s", usec: "60000000", want: 60 * time.Second},
		{name: "this process", usec: "2000000", pid: strconv.Itoa(os.Getpid()), want: 2 * time.Second},
		{name: "another process", usec: "2000000", pid: "1", want: 0},
		{name: "garbage", usec: "soon", wantErr: true},
		{name: "zero", usec: "0", wantErr: true},
		{name: "bad pid", usec: "1000", pid: "me", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envWatchdogUS, tc.usec)
			t.Setenv(envWatchdogPID, tc.pid)
			got, err := WatchdogInterval()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("WatchdogInterval = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestWatchdogPingsWhileAlive(t *testing.T) {
	conn := listen(t)
	t.Setenv(envWatchdogUS, strconv.Itoa(int((200 * time.Millisecond).Microseconds())))
	t.Setenv(envWatchdogPID, strconv.Itoa(os.Getpid()))
	var alive atomic.Bool
	alive.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, alive.Load) }()

	// Pings every 100 ms (half of 200 ms): three arrive well within 5 s.
	for range 3 {
		if got := receive(t, conn, 5*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	alive.Store(false)
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotAlive) {
			t.Fatalf("Watchdog returned %v, want ErrNotAlive", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog kept running after alive said false")
	}
	// At most the ping already in flight when alive turned false; then none.
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("ping %q after the watchdog stopped", buf[:n])
	}
}

func TestWatchdogStopsWithContext(t *testing.T) {
	conn := listen(t)
	t.Setenv(envWatchdogUS, "60000000")
	t.Setenv(envWatchdogPID, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, nil) }()
	if got := receive(t, conn, 5*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("first ping %q, want WATCHDOG=1 at once", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watchdog after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog did not return after its context ended")
	}
}
