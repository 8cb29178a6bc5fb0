// Package live is the controller's side of live sessions: a speech from the
// office microphone (Ogg Opus, encoded by the CLI's ffmpeg and sent as an
// HTTP request body) or a relayed radio programme (an Icecast or SHOUTcast
// stream, MP3 or AAC, or an HLS playlist, read by ffmpeg here). A Session
// turns the source's Opus packets into the signed stream packets of
// protocol/stream.go and hands them to a Publisher (QoS 0, not retained),
// without decoding a sample: the controller builds without cgo.
//
// The timeline. When the first packet arrives the session is announced
// (Config.OnStart): its sound starts Options.Announce + Options.Delay
// later, time for the boxes to learn of it from their plans and subscribe
// to its stream (packets sent before a box subscribed are lost to it). What
// arrives during the announcement is not played; the first packet after it
// plays Delay after it arrived, and not before the start announced. Without
// an announcement the first packet plays Delay after it arrived (its encoder
// pre-skip earlier, so the first real sample plays then). Each next frame
// plays where the previous one ends. A source that falls behind
// (a packet that would be sent less than Options.MinLead before its play
// time) moves the timeline forward to Delay after now, by whole 20 ms: the
// boxes hear a gap, never a drift. A source faster than real time (a file
// piped unpaced, a server's burst on connect) is paced: no packet goes out
// earlier than Delay before its play time, and the source is not read
// meanwhile. Frames are grouped into packets of Options.PacketDuration.
// When the session ends an end packet carries the time its sound ends.
//
// The recording. What was published is also written, frame for frame, to
// an Ogg Opus file (audio.OggOpusWriter), with silence packets where the
// timeline has gaps, so it plays as the boxes played it. It goes to a
// temporary file renamed at the end; a failure to write (a full disk)
// abandons the recording, never the session.
//
// The relay. ffmpeg (a process group of its own, killed whole, address
// space bounded: ingest.Command) reads the URL at real-time pace and
// encodes Opus. When the source stops, or ffmpeg no longer decodes it (a
// codec change), ffmpeg starts again, with backoff, for up to
// Options.RetryWindow; the timeline goes on across the restarts.
//
// Concurrency. A Session runs once, Run or Relay, on the caller's
// goroutine, which publishes, records and sleeps; the Publisher and
// OnStart are called there. The source is read on one more goroutine, so
// that a session returns as soon as ctx ends even if its source blocks;
// for Run that goroutine ends when the source's Read returns (close the
// source after Run if it may block), for Relay when ffmpeg's output is
// closed, before Relay returns. Relay also owns its ffmpeg, a goroutine
// reading ffmpeg's messages and a watchdog (no sound for IOTimeout, or a
// burst of decode errors, stops ffmpeg), and waits for them. Progress may
// be called from any goroutine.
package live
