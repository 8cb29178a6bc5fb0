//go:build cgo

package otosink

import (
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

// The one oto context of the process.
var (
	once       sync.Once
	theContext *oto.Context
	theFormat  audio.Format
	theErr     error
)

// Sink plays on the default ALSA device.
type Sink struct {
	ctx    *oto.Context
	format audio.Format
	closed atomic.Bool
}

// New opens the sound card for PCM in f (1 or 2 channels), or returns a
// Sink sharing the card already opened by an earlier New in the same
// format.
func New(f audio.Format) (*Sink, error) {
	if f.Channels < 1 || f.Channels > 2 || f.SampleRate <= 0 {
		return nil, fmt.Errorf("otosink: unsupported format %d Hz × %d channels (oto plays 1 or 2)", f.SampleRate, f.Channels)
	}
	once.Do(func() {
		theFormat = f
		theContext, theErr = open(f)
	})
	if theErr != nil {
		return nil, theErr
	}
	if f != theFormat {
		return nil, fmt.Errorf("otosink: the sound card is open at %d Hz × %d channels, not %d Hz × %d (one oto context per process)",
			theFormat.SampleRate, theFormat.Channels, f.SampleRate, f.Channels)
	}
	return &Sink{ctx: theContext, format: f}, nil
}

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
	var p *oto.Player
	if !at.IsZero() {
		queued := func() int64 { return int64(p.BufferedSize()) }
		pcm = audio.NewStartAligner(s.format, at, pcm, queued, cardLatency, alignChunk, nil)
	}
	src := &gatedReader{r: pcm}
	p = s.ctx.NewPlayer(src)
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
	if err := s.ctx.Err(); err != nil {
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
