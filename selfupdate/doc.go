// Package selfupdate keeps the agent builds a box received over the air and
// decides, at every start, which one runs.
//
// # Layout
//
// Everything lives under <cache>/agent/:
//
//   - builds/<version>-<sha256[:12]>: installed builds (mode 0755), renamed
//     into place only after their size and SHA-256 matched the signed offer;
//   - partial/<sha256>: a download in progress, resumed with Range;
//   - state.json (State): the current OTA build (none: the packaged binary),
//     the previous one, a pending trial, the versions that failed their
//     trial (never tried again) and the status of the last offered update,
//     which the agent reports. It is replaced whole (internal/atomicfile)
//     under an flock on <cache>/agent/lock, so the supervisor and its child
//     never lose each other's changes.
//
// # Starting
//
// Launch runs first in loa-agent's main. With no OTA build, or one not newer
// than the running binary, the process goes on as the agent. With a healthy
// newer OTA build it execs that build (EnvLauncher set, so it does not
// launch again). With a trial pending it supervises: it starts the trial
// build as a child (EnvLauncher and EnvTrial set), forwards the stop signal,
// and waits for the child to Confirm (trial → current). A trial that does
// not confirm within its deadline, or exits before it confirms, is killed,
// its version is marked failed and the box goes on with the build it ran
// before. The supervisor is the packaged binary the box already trusted: a
// new build that hangs, crashes or cannot reach the controller cannot keep
// the box.
//
// # Concurrency
//
// A Store may be used from several goroutines and processes: every change
// is a read-modify-write of state.json under the file lock. Launch is called
// once, before the agent starts any goroutine.
package selfupdate
