//go:build cgo

package otosink

/*
#cgo pkg-config: alsa
#include <alsa/asoundlib.h>
#include <stdarg.h>
#include <stdio.h>

static char loa_alsa_msg[256];

// loa_alsa_error keeps ALSA's first message of a probe ("Unknown PCM
// nosuchcard") instead of printing it to stderr.
static void loa_alsa_error(const char *file, int line, const char *function, int err, const char *fmt, ...) {
	if (loa_alsa_msg[0] != 0) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(loa_alsa_msg, sizeof loa_alsa_msg, fmt, ap);
	va_end(ap);
}

// loa_probe opens and closes the PCM name for playback without waiting.
static int loa_probe(const char *name) {
	snd_pcm_t *h;
	loa_alsa_msg[0] = 0;
	snd_lib_error_set_handler(loa_alsa_error);
	int err = snd_pcm_open(&h, name, SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK);
	snd_lib_error_set_handler(NULL);
	if (err < 0) {
		return err;
	}
	snd_pcm_close(h);
	return 0;
}

static const char *loa_probe_msg(void) { return loa_alsa_msg; }
*/
import "C"

import (
	"unsafe"

	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebitengine/oto/v3"

	"github.com/loa-commune/loa/audio"
)

// BufferSize is the sound card buffer oto is asked for: the latency between
// oto's mixer and the speaker, and how much a Play waits after oto has
// taken its last sample. 60 ms keeps a preempted item audible for under
// 100 ms after the decision (the cut fades over ~30 ms on top of this)
// while leaving two 30 ms periods against underruns on a busy Pi.
const BufferSize = 60 * time.Millisecond

// drainMargin is added to BufferSize when waiting for the last samples to
// leave the card (ALSA rounds buffer sizes, and the mixer works a period at
// a time).
const drainMargin = 50 * time.Millisecond

// openTimeout bounds how long New waits for ALSA to open the device.
const openTimeout = 10 * time.Second

var _ audio.TimedSink = (*Sink)(nil)

// The one oto context of the process: oto can make only one, so it is made
// once ALSA's default device has answered a probe; until then a failed
// open can be tried again.
var (
	mu         sync.Mutex
	theContext *oto.Context
	theFormat  audio.Format
	theErr     error // oto failed: final for this process
)

// Sink plays on the default ALSA device.
type Sink struct {
	ctx    atomic.Pointer[oto.Context]
	format audio.Format
	closed atomic.Bool
}

// New opens the sound card for PCM in f (1 or 2 channels), or returns a
// Sink sharing the card already opened by an earlier New in the same
// format.
func New(f audio.Format) (*Sink, error) {
	c, err := shared(f)
	if err != nil {
		return nil, err
	}
	s := &Sink{format: f}
	s.ctx.Store(c)
	return s, nil
}

// NewLazy returns a Sink that opens the sound card when it is first needed
// (Ready, Play), and tries again on every later call while the card cannot
// be opened (absent, unplugged, a device name that does not exist): a box
// can run, say what is wrong and play once the card answers.
func NewLazy(f audio.Format) *Sink { return &Sink{format: f} }

// Ready opens the sound card if it is not open yet and reports why it
// cannot be used: it cannot be opened, or it failed since (oto cannot open
// it again in this process: audio.ErrOutputStopped, the program must
// restart).
func (s *Sink) Ready() error {
	c := s.ctx.Load()
	if c == nil {
		var err error
		if c, err = shared(s.format); err != nil {
			return err
		}
		s.ctx.Store(c)
	}
	if err := c.Err(); err != nil {
		return stoppedError{err}
	}
	return nil
}

// stoppedError is an oto context that failed; it is audio.ErrOutputStopped.
type stoppedError struct{ err error }

func (e stoppedError) Error() string {
	return fmt.Sprintf("it stopped working (%v); loa-agent restarts to open it again", e.err)
}

func (e stoppedError) Unwrap() []error { return []error{e.err, audio.ErrOutputStopped} }

// shared returns the process's oto context in f, making it if ALSA's
// default device opens.
func shared(f audio.Format) (*oto.Context, error) {
	if f.Channels < 1 || f.Channels > 2 || f.SampleRate <= 0 {
		return nil, fmt.Errorf("otosink: unsupported format %d Hz × %d channels (oto plays 1 or 2)", f.SampleRate, f.Channels)
	}
	mu.Lock()
	defer mu.Unlock()
	if theContext == nil && theErr == nil {
		if err := probe("default"); err != nil {
			return nil, err
		}
		theFormat = f
		theContext, theErr = open(f)
	}
	if theErr != nil {
		return nil, theErr
	}
	if f != theFormat {
		return nil, fmt.Errorf("otosink: the sound card is open at %d Hz × %d channels, not %d Hz × %d (one oto context per process)",
			theFormat.SampleRate, theFormat.Channels, f.SampleRate, f.Channels)
	}
	return theContext, nil
}

// probe opens and closes the PCM name, so that oto (which can open only
// once per process, and then falls back to any other device it finds) is
// started only on a device that answers. ALSA's own message is kept for
// the error rather than printed.
func probe(name string) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if rc := C.loa_probe(cname); rc < 0 {
		msg := C.GoString(C.loa_probe_msg())
		reason := C.GoString(C.snd_strerror(rc))
		if msg != "" && msg != reason {
			reason = msg + " (" + reason + ")"
		}
		return noCardError(reason)
	}
	return nil
}

// noCardError is ALSA's reason; it is ErrNoCard.
type noCardError string

func (e noCardError) Error() string        { return string(e) }
func (e noCardError) Is(target error) bool { return target == ErrNoCard }

func open(f audio.Format) (*oto.Context, error) {
	c, ready, err := oto.NewContext(&oto.NewContextOptions{
		SampleRate:   f.SampleRate,
		ChannelCount: f.Channels,
		Format:       oto.FormatFloat32LE,
		BufferSize:   BufferSize,
	})
	if err != nil {
		return nil, fmt.Errorf("otosink: open sound card: %w", err)
	}
	select {
	case <-ready:
	case <-time.After(openTimeout):
		return nil, fmt.Errorf("otosink: open sound card: ALSA did not answer in %v", openTimeout)
	}
	if err := c.Err(); err != nil {
		return nil, fmt.Errorf("otosink: open sound card: %w", err)
	}
	return c, nil
}

// Format is the PCM format Play expects.
func (s *Sink) Format() audio.Format { return s.format }

// Play plays pcm (float32 little-endian in Format) and returns once its last
// sample has left the sound card's buffer. If ctx ends first, it fades the
// sound out over one buffer period, stops it and returns ctx.Err(); pcm is
// not read after Play returns.
func (s *Sink) Play(ctx context.Context, name string, pcm io.Reader) error {
	return s.play(ctx, name, pcm, time.Time{})
}

// PlayAt is Play with the first sample of pcm heard at at: the player opens
// at once and plays the silence that puts the first sample there, counting
// what oto and the card hold (see cardLatency). Call it at least lead
// before at for a sample-accurate start.
func (s *Sink) PlayAt(ctx context.Context, name string, at time.Time, pcm io.Reader) error {
	return s.play(ctx, name, pcm, at)
}

// Timing of an aligned start.
const (
	// playerBuffer is how far oto's player reads ahead of the mixer: four
	// times the card's buffer rides out a busy moment of the Go runtime
	// (oto's default is 500 ms), and keeps the aligner's reads close to the
	// card's rhythm.
	playerBuffer = 4 * BufferSize
	// cardLatency is how long a sample takes from the moment oto's mixer
	// takes it to the speaker: the mixer takes a period (half the buffer)
	// and writes it behind a full card buffer.
	cardLatency = BufferSize + BufferSize/2
	// alignChunk is the most silence one read returns while the start is
	// still far: the decision falls within one chunk of the start.
	alignChunk = 5 * time.Millisecond
	// Lead is how long before the start PlayAt should be called.
	Lead = 500 * time.Millisecond
)

func (s *Sink) play(ctx context.Context, name string, pcm io.Reader, at time.Time) error {
	if s.closed.Load() {
		return audio.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Ready(); err != nil {
		return fmt.Errorf("play %s: sound card: %w", name, err)
	}
	octx := s.ctx.Load()
	var p *oto.Player
	if !at.IsZero() {
		queued := func() int64 { return int64(p.BufferedSize()) }
		pcm = audio.NewStartAligner(s.format, at, pcm, queued, cardLatency, alignChunk, nil)
	}
	src := &gatedReader{r: pcm}
	p = octx.NewPlayer(src)
	defer p.Close()
	p.SetBufferSize(int(s.format.Bytes(playerBuffer)))
	p.Play()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for p.IsPlaying() {
		select {
		case <-ctx.Done():
			// oto ramps a volume change over the next mixed period.
			p.SetVolume(0)
			time.Sleep(BufferSize / 2)
			p.Pause()
			src.close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	src.close()
	if err := p.Err(); err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	if err := octx.Err(); err != nil {
		return fmt.Errorf("play %s: sound card: %w", name, err)
	}
	// IsPlaying()==false means the mixer has the last samples, not the
	// speaker: wait for them to go through the card's buffer.
	t := time.NewTimer(BufferSize + drainMargin)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return nil
}

// Close makes later Plays fail with audio.ErrClosed. The sound card stays
// open for the process (oto cannot close it); New returns it again.
func (s *Sink) Close() error {
	s.closed.Store(true)
	return nil
}

// gatedReader stops reading its source once closed, even if oto's mixer
// goroutine asks for more after Play has returned.
type gatedReader struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.EOF
	}
	return g.r.Read(p)
}

func (g *gatedReader) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
