// Package lograte keeps a line that repeats from filling a Raspberry Pi's
// SD card or journald: a Handler wraps another slog.Handler and lets the
// first Burst records of one kind through per Interval, drops the rest, and
// then writes one summary line, "<message> (repeated N times)", with the
// record's attributes and repeated=N.
//
// Two records are of one kind when their level, message and attributes are
// the same: the attributes given to the logger (With, WithGroup) and the
// record's own, all of them or those named in Options.Keys.
//
// A Handler and the handlers made from it by WithAttrs and WithGroup share
// their counts and are safe for concurrent use. A summary is written when
// its interval ends (on a timer), or at Flush; Close flushes and stops the
// timers, and the handler then passes every record through.
package lograte
