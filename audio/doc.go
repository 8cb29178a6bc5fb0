// Package audio turns media files into sound: decoders for MP3, WAV, OGG
// Vorbis, FLAC and Ogg Opus, resampling and channel mixing to the box's
// output format, volume gain, synthesized tones (chime, siren, alert tones),
// fades, and sinks that play PCM (a WAV file per item, a paced null sink).
// The sound-card sink lives in audio/otosink because it needs cgo, and the
// controller must build without.
//
// Everything here is safe for use by one goroutine at a time per value; sinks
// document their own rules.
//
// The pieces, in the order media flows through them:
//
//   - Decode sniffs the format and returns a Stream of float32 samples;
//     Probe decodes a whole file to validate and measure it (the
//     controller decodes uploads with ffmpeg instead: package ingest);
//     Transcode turns a file into PCM in the box's Format (the agent's
//     cache), streaming with bounded memory.
//   - Remix changes the channel count; NewResampler changes the rate with
//     a windowed-sinc polyphase filter.
//   - NewGainReader applies VolumeGain(volume) to PCM on its way to a sink.
//   - Chime, Siren, AlertTone (a distinct alert per kind of danger) and
//     Silence synthesize PCM on the box; a Fader fades PCM in, and out on
//     demand, so a cut never clicks.
//   - WAVSink, NullSink (and otosink.Sink) play PCM; ReadWAV and WriteWAV
//     read and write the WAV files involved.
//
// PCM between these parts is float32 little-endian, interleaved, in a
// Format. Decoders are pure Go (go-mp3, oggvorbis, mewkiz/flac and a WAV
// reader here), guarded so that corrupt input yields an error naming the
// codec, never a panic. Opus is the exception: the Ogg layer (pages,
// pre-skip, end trimming, output gain) is here, but the packets go to
// libopus, registered with RegisterOpusDecoder by audio/opus, which needs
// cgo and so only the agent imports. MP3 encoder delay and padding are
// trimmed when the file has a LAME/Xing tag, so a decoded MP3 is as long as
// its source; Opus pre-skip and end padding likewise.
package audio
