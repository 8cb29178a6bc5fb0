// Package onair runs the controller's live sessions: a live speech fed
// through the API (PUT /v1/sessions/<id>/audio) or a radio stream the
// controller relays. For each it runs a live.Session, and around it keeps
// the books: once the first packet is stamped it stores the session's rule
// (a one-off rule whose item plays the stream, so boxes learn of it through
// their signed plans and the report gets a pending row per box) and its
// record (who started it, from what, for which targets); when it ends it
// records how, and asks for a replan, so the plans tell every box where the
// sound ends. Recordings stay in <data>/recordings/<session>.opus for
// Options.RecordingsKeepDays. A relay schedule (a cron rule with a relay
// URL) has a session per occurrence, named after its item, which the
// Manager starts a little before it is due (schedules.go).
//
// # Concurrency
//
// A Manager owns its sessions. A relay runs on a goroutine of the Manager;
// a live session runs on the goroutine of the request that feeds it (Feed),
// under a context the Manager can cancel. Stop and Close cancel sessions;
// Close waits for every session, the relay schedules' loop (once a second)
// and the hourly pruning of old recordings. The table of running sessions is guarded by a mutex.
package onair
