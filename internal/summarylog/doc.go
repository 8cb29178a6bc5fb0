// Package summarylog logs a flood of like events (dropped messages,
// refused clients or requests) in a few lines: the first at once, with its
// reason, then, while more follow, one summary line per interval with the
// counts by reason and the client that caused the most. A flood must not
// become a flood of log lines.
package summarylog
