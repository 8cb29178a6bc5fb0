// Package scheduler turns announcements and cron schedules into concrete
// plan items over a horizon (48 h by default) in the site's time zone.
//
// It is pure computation over the rules it is given and a time it is told:
// no clock, no goroutines, no I/O, so the controller can recompute plans as
// often as it likes and tests can ask about any moment. Cron specs are the
// standard 5 fields or descriptors (@daily, @every 1h30m), parsed by
// robfig/cron and evaluated in the site's zone.
package scheduler
