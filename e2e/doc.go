// Package e2e holds Loa's end-to-end tests: the real `loa` and `loa-agent`
// binaries, built once per run, a controller with its embedded broker or
// Debian's mosquitto, boxes writing WAV files, and the staff CLI driven as a
// user types it. It has no code of its own outside the tests.
package e2e
