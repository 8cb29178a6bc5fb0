// Package timesource reads the time from the sources a loudspeaker box may
// have besides its controller: a hardware real-time clock (RTC), the
// cellular network's time through ModemManager (NITZ), a GPS receiver's NMEA
// sentences, the kernel's word that NTP has set the system clock, and a time
// saved on disk at the last sync, which after a reboot is only a lower bound.
//
// Each source is a small Reader: Read(ctx) returns a Reading (the time, the
// source's name, whether it is exact or only a lower bound, and the
// monotonic instant it was taken) or an error; ErrAbsent when the source is
// not there at all (no /dev/rtc0, no mmcli, no GPS configured), which is not
// worth a log line. Readers hold no goroutines and no open files between
// calls; each call is bounded by its context (mmcli and a GPS serial line
// are given a timeout by their callers). They may be used from any
// goroutine, one call at a time per Reader.
//
// The agent (package device) decides which reading to use and in which
// order: the controller's time sync first, then RTC, NITZ, GPS, the synced
// system clock, and the saved time last.
package timesource
