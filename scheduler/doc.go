// Package scheduler turns announcements and cron schedules into concrete
// plan items over a horizon (48 h by default) in the site's time zone.
//
// It is pure computation over the rules it is given and a time it is told:
// no clock, no goroutines, no I/O, so the controller can recompute plans as
// often as it likes and tests can ask about any moment. Cron specs are the
// standard 5 fields or descriptors (@daily, @every 1h30m), parsed by
// robfig/cron and evaluated in the site's zone.
//
// Expand is the one expansion of a rule into items. The controller's plans
// use it (Scheduler.Items), and so do the boxes, for the recurring rules
// their plans carry (PlanRule, FromPlanRule): the same rule and window give
// the same items, ids included, on both sides. The package needs only
// protocol and robfig/cron, so the agent imports it. A Scheduler is safe
// for concurrent use; its parsed specs are cached.
package scheduler
