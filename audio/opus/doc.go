// Package opus decodes Opus packets with libopus, the reference decoder,
// and registers itself with audio.RegisterOpusDecoder when imported, so
// that audio.Decode (and so Probe and Transcode) plays Ogg Opus:
//
//	import _ "github.com/loa-commune/loa/audio/opus"
//
// It needs cgo and libopus (pkg-config opus; Debian: libopus-dev, and
// libopus-dev:arm64 to cross-build the agent), which is why it lives apart
// from package audio: the controller builds with CGO_ENABLED=0 and has no
// Opus decoder. Built without cgo this package registers nothing and
// NewDecoder fails with ErrNoCgo.
//
// A Decoder is used by one goroutine at a time; separate Decoders are
// independent.
package opus
