// Package ingest turns what people upload into what boxes play. It runs
// ffmpeg, the reference decoder, as a subprocess with bounded time, memory
// and output: a first pass decodes the first sound track whole, names its
// codec and measures its loudness (EBU R128, ffmpeg's loudnorm filter); a
// second pass applies the measured gain and encodes one light format for
// the boxes (Ogg Opus, mono, 30 kbit/s).
//
// Nothing here touches the media store: a Pipeline reads one file and
// writes another. A Pipeline is safe for concurrent use; each call owns its
// subprocesses and waits for them (killing the whole process group on a
// deadline), so no process outlives the call.
package ingest
