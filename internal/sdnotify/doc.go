// Package sdnotify tells systemd how a service started with Type=notify is
// doing: Ready once it serves, a Watchdog loop that pings at half of
// WatchdogSec while the caller says it is alive, Stopping when it shuts down.
// It speaks the sd_notify datagram protocol in pure Go (no libsystemd).
//
// Every function is a no-op when NOTIFY_SOCKET is unset (a process not run
// by systemd, a test, `loa demo`), and a failed send is returned, never
// fatal. The functions are safe to call from any goroutine.
package sdnotify
