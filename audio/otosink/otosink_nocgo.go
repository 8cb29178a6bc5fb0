//go:build !cgo

package otosink

import (
	"context"
	"io"
	"time"

	"github.com/loa-commune/loa/audio"
)

var _ audio.TimedSink = (*Sink)(nil)

// Sink plays on the default ALSA device; in this build (no cgo) it cannot be
// created.
type Sink struct{}

// New fails: this build has no cgo, so no ALSA.
func New(f audio.Format) (*Sink, error) { return nil, ErrNoCgo }

// NewLazy returns a Sink whose Ready and Play fail with ErrNoCgo.
func NewLazy(f audio.Format) *Sink { return &Sink{} }

// Ready fails with ErrNoCgo.
func (s *Sink) Ready() error { return ErrNoCgo }

// Format is the PCM format Play expects.
func (s *Sink) Format() audio.Format { return audio.Format{} }

// Play fails with ErrNoCgo.
func (s *Sink) Play(ctx context.Context, name string, pcm io.Reader) error { return ErrNoCgo }

// Close does nothing.
func (s *Sink) Close() error { return nil }

// PlayAt fails with ErrNoCgo.
func (s *Sink) PlayAt(ctx context.Context, name string, at time.Time, pcm io.Reader) error {
	return ErrNoCgo
}

// Lead is how long before the start PlayAt should be called.
const Lead = 500 * time.Millisecond
