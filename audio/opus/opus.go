//go:build cgo

package opus

/*
#cgo pkg-config: opus
#include <opus.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/loa-commune/loa/audio"
)

func init() {
	audio.RegisterOpusDecoder(func(channels int) (audio.OpusPacketDecoder, error) {
		d, err := NewDecoder(channels)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return d, nil
	})
}

var _ audio.OpusConcealer = (*Decoder)(nil)

// Decoder is a libopus decoder at 48 kHz.
type Decoder struct {
	st       *C.OpusDecoder
	channels int
	cleanup  runtime.Cleanup
}

// NewDecoder makes a decoder for 1 or 2 channels at 48 kHz. Close frees
// its C memory; a Decoder dropped without Close is freed by the garbage
// collector, later.
func NewDecoder(channels int) (*Decoder, error) {
	if channels < 1 || channels > 2 {
		return nil, fmt.Errorf("opus: %d channels, want 1 or 2", channels)
	}
	var cerr C.int
	st := C.opus_decoder_create(48000, C.int(channels), &cerr)
	if cerr != C.OPUS_OK || st == nil {
		return nil, fmt.Errorf("opus: create decoder: %s", strerror(cerr))
	}
	d := &Decoder{st: st, channels: channels}
	d.cleanup = runtime.AddCleanup(d, func(st *C.OpusDecoder) { C.opus_decoder_destroy(st) }, st)
	return d, nil
}

// Decode decodes one packet into pcm, interleaved, and returns the samples
// per channel. pcm must hold audio.OpusMaxFrame samples per channel.
func (d *Decoder) Decode(packet []byte, pcm []float32) (int, error) {
	switch {
	case d.st == nil:
		return 0, errors.New("opus: decoder closed")
	case len(packet) == 0:
		// libopus would conceal a lost packet instead.
		return 0, errors.New("opus: empty packet")
	case len(pcm) < audio.OpusMaxFrame*d.channels:
		return 0, fmt.Errorf("opus: output buffer of %d samples, want %d", len(pcm), audio.OpusMaxFrame*d.channels)
	case len(packet) > 1<<30:
		return 0, errors.New("opus: packet too long")
	}
	n := C.opus_decode_float(d.st, (*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)),
		(*C.float)(unsafe.Pointer(&pcm[0])), C.int(audio.OpusMaxFrame), 0)
	// The cleanup must not free st while libopus is using it.
	runtime.KeepAlive(d)
	if n < 0 {
		return 0, fmt.Errorf("opus: %s", strerror(n))
	}
	return int(n), nil
}

// Conceal writes samples per channel of libopus's concealment of a lost
// packet into pcm (interleaved), continuing the decoder's sound smoothly;
// samples must be a multiple of 2.5 ms (120) up to audio.OpusMaxFrame.
func (d *Decoder) Conceal(samples int, pcm []float32) (int, error) {
	switch {
	case d.st == nil:
		return 0, errors.New("opus: decoder closed")
	case samples <= 0 || samples > audio.OpusMaxFrame || samples%120 != 0:
		return 0, fmt.Errorf("opus: cannot conceal %d samples", samples)
	case len(pcm) < samples*d.channels:
		return 0, fmt.Errorf("opus: output buffer of %d samples, want %d", len(pcm), samples*d.channels)
	}
	n := C.opus_decode_float(d.st, nil, 0, (*C.float)(unsafe.Pointer(&pcm[0])), C.int(samples), 0)
	runtime.KeepAlive(d)
	if n < 0 {
		return 0, fmt.Errorf("opus: conceal: %s", strerror(n))
	}
	return int(n), nil
}

// Close frees the decoder; later Decodes fail.
func (d *Decoder) Close() error {
	if d.st != nil {
		d.cleanup.Stop()
		C.opus_decoder_destroy(d.st)
		d.st = nil
	}
	return nil
}

func strerror(code C.int) string { return C.GoString(C.opus_strerror(code)) }
