// Package audio turns media files into sound: decoders for MP3, WAV, OGG
// Vorbis and FLAC, resampling and channel mixing to the box's output format,
// volume gain, synthesized tones (chime, siren), and sinks that play PCM
// (a WAV file per item, a paced null sink). The sound-card sink lives in
// audio/otosink because it needs cgo, and the controller must build without.
//
// Everything here is safe for use by one goroutine at a time per value; sinks
// document their own rules.
package audio
