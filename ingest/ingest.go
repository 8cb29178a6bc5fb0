package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Errors callers branch on; each is wrapped with what ffmpeg said or found.
var (
	// ErrNoFFmpeg: ffmpeg is missing or lacks what Loa needs.
	ErrNoFFmpeg = errors.New("ffmpeg is not usable")
	// ErrNotAudio: ffmpeg cannot decode the file, or it has no sound track.
	ErrNotAudio = errors.New("not audio ffmpeg can decode")
	// ErrSilent: the sound track is silence (or near enough).
	ErrSilent = errors.New("the recording is silent")
	// ErrTooLong: the sound plays longer than Options.MaxDuration.
	ErrTooLong = errors.New("the recording is too long")
	// ErrTimeout: ffmpeg took longer than Options.Timeout.
	ErrTimeout = errors.New("ffmpeg took too long")
)

// SilentBelowLUFS is the integrated loudness under which a recording counts
// as silence: a quiet phone recording measures -40 to -30 LUFS, a muted
// microphone's hiss under -70.
const SilentBelowLUFS = -60

// Codec is the format boxes download.
const Codec = "opus"

// Options say how uploads become what boxes play.
type Options struct {
	// FFmpeg is the program (a name on PATH or a path).
	FFmpeg string `yaml:"ffmpeg"`
	// LoudnessLUFS is the integrated loudness every item is brought to,
	// TruePeakDBTP the highest true peak it may reach, LoudnessRange the
	// loudness range loudnorm keeps when it must compress (EBU R128).
	LoudnessLUFS  float64 `yaml:"loudness_lufs"`
	TruePeakDBTP  float64 `yaml:"true_peak_dbtp"`
	LoudnessRange float64 `yaml:"loudness_range"`
	// BitrateKbps and Channels are the Opus that boxes download.
	BitrateKbps int `yaml:"bitrate_kbps"`
	Channels    int `yaml:"channels"`
	// Timeout bounds each ffmpeg run; MemoryMB the address space each may
	// map (shared libraries included: ffmpeg needs about 400 MB to start).
	Timeout  time.Duration `yaml:"timeout"`
	MemoryMB int           `yaml:"memory_mb"`
	// MaxDuration is the longest sound accepted (the controller's
	// max_media_minutes).
	MaxDuration time.Duration `yaml:"-"`
}

// DefaultOptions: -16 LUFS and -1 dBTP (loud enough for a horn speaker,
// clear of clipping after the lossy encoding), Opus mono at 30 kbit/s (with
// the Ogg pages about 235 kB a minute, under 3G's budget of 240; speech
// stays clear), ffmpeg bounded to 5 minutes and 1 GiB.
func DefaultOptions() Options {
	return Options{
		FFmpeg:       "ffmpeg",
		LoudnessLUFS: -16, TruePeakDBTP: -1, LoudnessRange: 11,
		BitrateKbps: 30, Channels: 1,
		Timeout: 5 * time.Minute, MemoryMB: 1024, MaxDuration: 30 * time.Minute,
	}
}

// FieldError names the option that is wrong (its YAML name).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks the options against what loudnorm and libopus accept.
func (o Options) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case o.FFmpeg == "":
		return bad("ffmpeg", "empty: name the ffmpeg program (ffmpeg)")
	case !(o.LoudnessLUFS >= -40 && o.LoudnessLUFS <= -10):
		return bad("loudness_lufs", "%v is not within -40..-10 (LUFS; -16 suits horn speakers)", o.LoudnessLUFS)
	case !(o.TruePeakDBTP >= -9 && o.TruePeakDBTP <= 0):
		return bad("true_peak_dbtp", "%v is not within -9..0 (dBTP)", o.TruePeakDBTP)
	case !(o.LoudnessRange >= 1 && o.LoudnessRange <= 20):
		return bad("loudness_range", "%v is not within 1..20 (LU)", o.LoudnessRange)
	case o.BitrateKbps < 6 || o.BitrateKbps > 256:
		return bad("bitrate_kbps", "%d is not within 6..256 (kbit/s)", o.BitrateKbps)
	case o.Channels != 1 && o.Channels != 2:
		return bad("channels", "%d: use 1 (mono) or 2 (stereo)", o.Channels)
	case o.Timeout < time.Second:
		return bad("timeout", "%v is shorter than 1s", o.Timeout)
	case o.MemoryMB < 256:
		return bad("memory_mb", "%d is under 256 (ffmpeg maps its libraries in that space)", o.MemoryMB)
	case o.MaxDuration <= 0:
		return bad("max_duration", "%v must be positive", o.MaxDuration)
	}
	return nil
}

// Loudness is what loudnorm measured (EBU R128).
type Loudness struct {
	Integrated float64 // LUFS
	TruePeak   float64 // dBTP
	Range      float64 // LU
	Threshold  float64 // LUFS, the relative gate
	// offset is the gain the second pass adds before loudnorm's limiter
	// (ignored when one gain is enough): twice the first pass's
	// target_offset, since the limiter takes about half of any gain.
	offset float64
}

// Result describes a rendered file.
type Result struct {
	// Codec is the original's codec as ffmpeg names it (mp3, aac, opus, wmav2...).
	Codec string
	// Duration is how long the sound plays.
	Duration time.Duration
	// Source is the original's loudness, as the box's channel layout hears
	// it; Output is the loudness after normalisation.
	Source, Output Loudness
	// Normalization is loudnorm's way: "linear" (one gain) or "dynamic"
	// (when one gain would push the peaks over TruePeakDBTP).
	Normalization string
}

// Pipeline renders uploads for the boxes.
type Pipeline struct {
	opts Options
	// slots bounds the renders at once: each keeps a core busy, and the
	// controller must stay responsive while staff upload.
	slots chan struct{}
}

// MaxParallel is how many files a Pipeline renders at once; more wait.
const MaxParallel = 2

// New returns a Pipeline; opts must be valid.
func New(opts Options) *Pipeline {
	return &Pipeline{opts: opts, slots: make(chan struct{}, MaxParallel)}
}

// acquire waits for a render slot; release gives it back.
func (p *Pipeline) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) release() { <-p.slots }

// Check makes sure ffmpeg runs and has the loudnorm filter and the libopus
// encoder. Its errors wrap ErrNoFFmpeg.
func (p *Pipeline) Check(ctx context.Context) error {
	for _, c := range []struct{ list, name string }{{"-filters", "loudnorm"}, {"-encoders", "libopus"}} {
		out, err := p.run(ctx, p.opts.FFmpeg, "-hide_banner", "-loglevel", "error", c.list)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNoFFmpeg, p.opts.FFmpeg, err)
		}
		if !hasWord(out.stdout, c.name) {
			return fmt.Errorf("%w: %s has no %s", ErrNoFFmpeg, p.opts.FFmpeg, c.name)
		}
	}
	return nil
}

func hasWord(text []byte, word string) bool {
	for _, f := range strings.Fields(string(text)) {
		if f == word {
			return true
		}
	}
	return false
}

// Render reads the recording at src, measures it, and writes the
// normalised Ogg Opus for the boxes to dst. On error dst may hold a partial
// file for the caller to remove.
func (p *Pipeline) Render(ctx context.Context, src, dst string) (Result, error) {
	if err := p.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer p.release()
	var res Result
	var err error
	if res.Codec, res.Duration, res.Source, err = p.measure(ctx, src); err != nil {
		return res, err
	}
	if res.Output, res.Normalization, err = p.encode(ctx, src, dst, res.Source, res.Duration); err != nil {
		return res, err
	}
	// loudnorm's dynamic mode (when one gain would push the peaks over the
	// limit: most speech brought up to -16 LUFS) can land off the target,
	// while linear files land on it. Then one more pass with twice the
	// shortfall added brings it within a few tenths.
	miss := p.opts.LoudnessLUFS - res.Output.Integrated
	if res.Normalization != "dynamic" || math.Abs(miss) <= maxMissLU {
		return res, nil
	}
	retry := dst + ".retry"
	defer os.Remove(retry)
	in := res.Source
	in.offset += 2 * miss
	out, norm, err := p.encode(ctx, src, retry, in, res.Duration)
	if err != nil || math.Abs(p.opts.LoudnessLUFS-out.Integrated) >= math.Abs(miss) {
		return res, nil // the first rendition stands
	}
	if err := os.Rename(retry, dst); err != nil {
		return res, fmt.Errorf("keep the rendition: %w", err)
	}
	res.Output, res.Normalization = out, norm
	return res, nil
}

// maxMissLU is how far from the target a rendition may land before Render
// corrects it with another pass.
const maxMissLU = 0.3

// layout is the channel layout boxes get, as ffmpeg names it.
func (p *Pipeline) layout() string {
	if p.opts.Channels == 2 {
		return "stereo"
	}
	return "mono"
}

// decodeArgs start an ffmpeg run on the first sound track of src, read at
// most a second past MaxDuration (so a 4-hour file costs no more than the
// longest one accepted).
func (p *Pipeline) decodeArgs(src string) []string {
	limit := p.opts.MaxDuration + time.Second
	return []string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info",
		"-i", src, "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", seconds(limit)}
}

// measure decodes the whole file once: the codec of its first sound track,
// its length, and its loudness as loudnorm's first pass measures it in the
// boxes' layout.
func (p *Pipeline) measure(ctx context.Context, src string) (string, time.Duration, Loudness, error) {
	filter := fmt.Sprintf("aresample=48000,aformat=channel_layouts=%s,loudnorm=I=%s:TP=%s:LRA=%s:print_format=json",
		p.layout(), num(p.opts.LoudnessLUFS), num(p.opts.TruePeakDBTP), num(p.opts.LoudnessRange))
	args := append(p.decodeArgs(src), "-af", filter, "-f", "null", "-progress", "pipe:1", "-")
	out, err := p.run(ctx, p.opts.FFmpeg, args...)
	if err == nil {
		err = decodeErrors(out.stderr)
	}
	if err != nil {
		return "", 0, Loudness{}, p.decodeError(ctx, src, err, out)
	}
	codec := inputCodec(out.stderr)
	d := progressDuration(out.stdout)
	if d <= 0 {
		return codec, 0, Loudness{}, fmt.Errorf("%w: ffmpeg found no sound in it", ErrNotAudio)
	}
	if d > p.opts.MaxDuration {
		return codec, d, Loudness{}, fmt.Errorf("%w: it plays more than %v", ErrTooLong, p.opts.MaxDuration)
	}
	m, err := loudnormJSON(out.stderr)
	if err != nil {
		return codec, d, Loudness{}, err
	}
	l := Loudness{Integrated: m.float("input_i"), TruePeak: m.float("input_tp"), Range: m.float("input_lra"), Threshold: m.float("input_thresh"), offset: 2 * m.float("target_offset")}
	if !(l.Integrated >= SilentBelowLUFS) { // -inf for digital silence
		return codec, d, l, fmt.Errorf("%w: its loudness is %s LUFS", ErrSilent, m["input_i"])
	}
	return codec, d, l, nil
}

// encode runs loudnorm's second pass with the measured values (a single
// gain when the peaks allow it) and encodes Ogg Opus.
func (p *Pipeline) encode(ctx context.Context, src, dst string, in Loudness, d time.Duration) (Loudness, string, error) {
	filter := fmt.Sprintf("aresample=48000,aformat=channel_layouts=%s,"+
		"loudnorm=I=%s:TP=%s:LRA=%s:measured_I=%s:measured_TP=%s:measured_LRA=%s:measured_thresh=%s:offset=%s:linear=true:print_format=json,"+
		"aresample=48000", p.layout(), num(p.opts.LoudnessLUFS), num(p.opts.TruePeakDBTP), num(p.opts.LoudnessRange),
		num(in.Integrated), num(in.TruePeak), num(in.Range), num(in.Threshold), num(in.offset))
	// Twice the bitrate's size plus a margin: VBR of a loud passage, the
	// Ogg pages and headers.
	maxBytes := int64(2*p.opts.BitrateKbps*1000/8)*int64(d/time.Second+1) + 1<<20
	args := append(p.decodeArgs(src), "-af", filter, "-c:a", "libopus", "-b:a", strconv.Itoa(p.opts.BitrateKbps)+"k",
		// bitexact: no random stream serial, so one upload always gives
		// the same bytes (and hash).
		"-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
		"-fs", strconv.FormatInt(maxBytes, 10), "-f", "ogg", "-y", dst)
	out, err := p.run(ctx, p.opts.FFmpeg, args...)
	if err == nil {
		err = decodeErrors(out.stderr)
	}
	if err != nil {
		return Loudness{}, "", p.decodeError(ctx, src, err, out)
	}
	m, err := loudnormJSON(out.stderr)
	if err != nil {
		return Loudness{}, "", err
	}
	if st, err := os.Stat(dst); err != nil || st.Size() == 0 || st.Size() >= maxBytes {
		return Loudness{}, "", fmt.Errorf("ffmpeg wrote no usable Opus file (%v)", err)
	}
	l := Loudness{Integrated: m.float("output_i"), TruePeak: m.float("output_tp"), Range: m.float("output_lra"), Threshold: m.float("output_thresh")}
	return l, m["normalization_type"], nil
}

// decodeError turns a failed run into the error staff see: a timeout, or
// what ffmpeg said about the file.
func (p *Pipeline) decodeError(ctx context.Context, src string, err error, out output) error {
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrNotAudio), errors.Is(err, ErrNoFFmpeg):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	if bytes.Contains(out.stderr, []byte("matches no streams")) { // -map 0:a:0
		return fmt.Errorf("%w: the file has no sound track", ErrNotAudio)
	}
	if msg := firstProblem(out.stderr); msg != "" {
		// The path is a temporary file's: meaningless to staff.
		msg = strings.TrimPrefix(msg, src+": ")
		return fmt.Errorf("%w: ffmpeg: %s", ErrNotAudio, msg)
	}
	return fmt.Errorf("%w: ffmpeg: %v", ErrNotAudio, err)
}

// seconds formats d for ffmpeg's -t.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// num formats a loudness value for a filter argument.
func num(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		v = -99
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// DecodeWAV decodes the sound of src (at most MaxDuration of it) into a
// 16-bit PCM WAV file at dst with the given rate and channels: for joining
// recordings on the controller, which has no decoder of its own.
func (p *Pipeline) DecodeWAV(ctx context.Context, src, dst string, rate, channels int) error {
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer p.release()
	args := append(p.decodeArgs(src), "-ar", strconv.Itoa(rate), "-ac", strconv.Itoa(channels),
		"-c:a", "pcm_s16le", "-map_metadata", "-1", "-f", "wav", "-y", dst)
	out, err := p.run(ctx, p.opts.FFmpeg, args...)
	if err == nil {
		err = decodeErrors(out.stderr)
	}
	if err != nil {
		return p.decodeError(ctx, src, err, out)
	}
	return nil
}
