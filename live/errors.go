package live

import "errors"

// Errors callers branch on. Relay's are wrapped with ffmpeg's first
// problem line; a missing ffmpeg gives ingest.ErrNoFFmpeg.
var (
	// ErrBadURL: a relay's address is not an http or https URL.
	ErrBadURL = errors.New("not a stream address (http:// or https://)")
	// ErrSourceUnreachable: the server could not be reached, or did not
	// give the stream (connection refused, timed out, HTTP 404...).
	ErrSourceUnreachable = errors.New("the source cannot be reached")
	// ErrNotAStream: the source sent something that is not sound ffmpeg
	// can play (a web page, a stream without a sound track), or, for
	// Run, not an Ogg Opus stream.
	ErrNotAStream = errors.New("not a sound stream")
)
