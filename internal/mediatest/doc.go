// Package mediatest is the tests' independent reference for sound: it runs
// ffmpeg and espeak-ng (Debian's) to make recordings, decode them and
// measure their loudness, so that Loa's output is checked against tools
// that are not Loa. Only tests import it.
package mediatest
