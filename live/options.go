package live

import (
	"fmt"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Options say how live sessions reach the boxes; the controller's config
// holds them under `live:`.
type Options struct {
	// Delay is how long after the controller receives a frame the boxes
	// play it: the jitter the network to the boxes may add without a gap.
	Delay time.Duration `yaml:"delay"`
	// MinLead is the least time ahead of its play time a packet may be
	// sent; a source later than that (a stall) moves the timeline forward
	// by a gap instead.
	MinLead time.Duration `yaml:"min_lead"`
	// Announce is how long the boxes are told of a session before its
	// sound starts: the plan that names it must reach them, and they must
	// subscribe to its stream, or they lose its first packets (QoS 0). The
	// sound that reaches the controller meanwhile is not played; `loa live`
	// tells the speaker when to begin.
	Announce time.Duration `yaml:"announce"`
	// PacketDuration is the sound one stream packet carries.
	PacketDuration time.Duration `yaml:"packet_duration"`
	// BitrateKbps and Channels are the Opus a relay encodes (live speech
	// comes encoded by the CLI).
	BitrateKbps int `yaml:"bitrate_kbps"`
	Channels    int `yaml:"channels"`
	// RetryWindow is how long a relay whose source stopped tries to get it
	// back before the session ends; 0 ends it at once.
	RetryWindow time.Duration `yaml:"retry_window"`
	// IOTimeout is how long a relay's source may send nothing (or ffmpeg
	// make no sound of it) before it counts as stopped.
	IOTimeout time.Duration `yaml:"io_timeout"`
	// MaxSession ends a session that runs longer.
	MaxSession time.Duration `yaml:"max_session"`
	// RecordingsKeepDays is how long the controller keeps what sessions
	// played.
	RecordingsKeepDays int `yaml:"recordings_keep_days"`
	// FFmpeg is the program a relay runs; MemoryMB the address space it
	// may map.
	FFmpeg   string `yaml:"ffmpeg"`
	MemoryMB int    `yaml:"memory_mb"`
}

// DefaultOptions: play 1.5 s after arrival (a 3G link's jitter), stream
// packets of 100 ms (ten a second per session on the broker), relays in
// mono Opus at 24 kbit/s (speech and AM-quality radio stay clear), a
// relay's source given a minute to come back, sessions of at most 4 hours,
// recordings kept 90 days.
func DefaultOptions() Options {
	return Options{
		Delay:              1500 * time.Millisecond,
		MinLead:            300 * time.Millisecond,
		Announce:           time.Second,
		PacketDuration:     100 * time.Millisecond,
		BitrateKbps:        24,
		Channels:           1,
		RetryWindow:        time.Minute,
		IOTimeout:          5 * time.Second,
		MaxSession:         4 * time.Hour,
		RecordingsKeepDays: 90,
		FFmpeg:             "ffmpeg",
		MemoryMB:           1024,
	}
}

// FieldError names the option that is wrong (its YAML name).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks the options; the error is a *FieldError.
func (o Options) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case o.Delay < 200*time.Millisecond || o.Delay > 30*time.Second:
		return bad("delay", "%v is not within 200ms..30s", o.Delay)
	case o.MinLead < 20*time.Millisecond || o.MinLead >= o.Delay:
		return bad("min_lead", "%v is not within 20ms..delay (%v)", o.MinLead, o.Delay)
	case o.PacketDuration < 20*time.Millisecond || o.PacketDuration > time.Second:
		return bad("packet_duration", "%v is not within 20ms..1s", o.PacketDuration)
	case o.Announce < 0 || o.Announce > time.Minute:
		return bad("announce", "%v is not within 0..1m", o.Announce)
	case o.PacketDuration > o.Delay-o.MinLead:
		return bad("packet_duration", "%v is longer than delay - min_lead (%v): every packet would come too late", o.PacketDuration, o.Delay-o.MinLead)
	case o.BitrateKbps < 6 || o.BitrateKbps > 256:
		return bad("bitrate_kbps", "%d is not within 6..256 (kbit/s)", o.BitrateKbps)
	case o.Channels != 1 && o.Channels != 2:
		return bad("channels", "%d: use 1 (mono) or 2 (stereo)", o.Channels)
	case o.RetryWindow < 0 || o.RetryWindow > time.Hour:
		return bad("retry_window", "%v is not within 0..1h", o.RetryWindow)
	case o.IOTimeout < time.Second || o.IOTimeout > time.Minute:
		return bad("io_timeout", "%v is not within 1s..1m", o.IOTimeout)
	case o.MaxSession < time.Minute || o.MaxSession > 24*time.Hour:
		return bad("max_session", "%v is not within 1m..24h", o.MaxSession)
	case o.RecordingsKeepDays < 1 || o.RecordingsKeepDays > 3650:
		return bad("recordings_keep_days", "%d is not within 1..3650", o.RecordingsKeepDays)
	case o.FFmpeg == "":
		return bad("ffmpeg", "empty: name the ffmpeg program (ffmpeg)")
	case o.MemoryMB < 256:
		return bad("memory_mb", "%d is under 256 (ffmpeg maps its libraries in that space)", o.MemoryMB)
	}
	return nil
}

// packetSamples is PacketDuration in samples at 48 kHz, within what one
// stream packet may carry.
func (o Options) packetSamples() int {
	return min(int(o.PacketDuration.Seconds()*opusRate+0.5), protocol.MaxStreamFrames*960)
}
