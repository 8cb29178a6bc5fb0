// Package capture takes the sound of a live session on the speaker's
// computer (the commune office PC): the microphone through PulseAudio or
// ALSA, a file, or standard input (a mixer's line-in piped in), encoded by
// ffmpeg into Ogg Opus for the controller, and a low-rate copy of the same
// sound for the level meter and the silence and clipping warnings.
//
// # Concurrency
//
// Start runs one ffmpeg process in its own process group; Capture owns it
// and one goroutine that reads the meter copy into Levels. Stop asks ffmpeg
// to finish (SIGINT: it writes the stream's last page and exits), Wait
// reaps it; cancelling Start's context kills the whole group. The Monitor is
// plain state for one goroutine (the caller's).
package capture
