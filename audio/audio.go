package audio

import (
	"context"
	"io"
	"time"
)

// Format describes PCM as this package moves it: float32 little-endian,
// interleaved, at SampleRate frames per second.
type Format struct {
	SampleRate int `json:"sample_rate"`
	Channels   int `json:"channels"`
}

// DefaultFormat is what boxes play: 48 kHz stereo, as PulseAudio and most
// USB/I2S DACs on a Raspberry Pi run natively.
var DefaultFormat = Format{SampleRate: 48000, Channels: 2}

// BytesPerFrame is the size of one frame (one float32 per channel).
func (f Format) BytesPerFrame() int { return 4 * f.Channels }

// Duration is how long n bytes of PCM in this format play.
func (f Format) Duration(n int64) time.Duration {
	frames := n / int64(f.BytesPerFrame())
	return time.Duration(frames) * time.Second / time.Duration(f.SampleRate)
}

// Bytes is how many bytes of PCM play for d (whole frames).
func (f Format) Bytes(d time.Duration) int64 {
	frames := int64(d) * int64(f.SampleRate) / int64(time.Second)
	return frames * int64(f.BytesPerFrame())
}

// Info is what decoding a media file found.
type Info struct {
	Codec    string        `json:"codec"` // mp3, wav, ogg, flac, opus
	Source   Format        `json:"source"`
	Frames   int64         `json:"frames"` // in the source rate
	Duration time.Duration `json:"duration"`
}

// Sink plays PCM in its Format. Implementations: WAVSink, NullSink and
// otosink.Sink (the sound card).
type Sink interface {
	Format() Format
	// Play writes everything pcm yields and returns once it has been heard
	// (not merely buffered), or when ctx is done, stopping the sound quickly.
	// name identifies what is played (a plan item id) for sinks that record.
	Play(ctx context.Context, name string, pcm io.Reader) error
	Close() error
}

// TimedSink is a Sink that can make the first frame of pcm heard at a given
// moment: it opens its output early and writes the silence that puts the
// first frame there, through its own buffers (otosink.Sink).
type TimedSink interface {
	Sink
	// PlayAt is Play with the first frame heard at at (a time.Now()-based
	// time, so the monotonic clock measures the wait); if at has passed,
	// it starts at once.
	PlayAt(ctx context.Context, name string, at time.Time, pcm io.Reader) error
}
