//go:build !cgo

package opus

import (
	"errors"

	"github.com/loa-commune/loa/audio"
)

// ErrNoCgo is returned by NewDecoder in a build without cgo.
var ErrNoCgo = errors.New("opus: built without cgo: no libopus")

var _ audio.OpusPacketDecoder = (*Decoder)(nil)

// Decoder is a libopus decoder; in this build (no cgo) it cannot be
// created, and nothing is registered with package audio.
type Decoder struct{}

// NewDecoder fails: this build has no cgo, so no libopus.
func NewDecoder(channels int) (*Decoder, error) { return nil, ErrNoCgo }

// Decode fails with ErrNoCgo.
func (d *Decoder) Decode(packet []byte, pcm []float32) (int, error) { return 0, ErrNoCgo }

// Close does nothing.
func (d *Decoder) Close() error { return nil }

// Conceal fails: there is no libopus.
func (d *Decoder) Conceal(samples int, pcm []float32) (int, error) { return 0, ErrNoCgo }
