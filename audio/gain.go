package audio

import (
	"encoding/binary"
	"io"
	"math"
)

// VolumeGain maps a volume of 0..100 (as set per box or per item) to an
// amplitude factor: (volume/100)², which sounds roughly even across the
// range. Volumes outside 0..100 are clamped.
func VolumeGain(volume int) float32 {
	v := float32(min(max(volume, 0), 100)) / 100
	return v * v
}

// NewGainReader returns a reader of pcm (float32 little-endian samples)
// with every sample multiplied by gain and clamped to [-1, 1]; NaN becomes
// silence. Reads of any size work, including ones that split a sample; a
// partial sample at the very end of pcm is dropped.
func NewGainReader(pcm io.Reader, gain float32) io.Reader {
	return &gainReader{r: pcm, gain: gain, raw: make([]byte, 16<<10), out: make([]byte, 16<<10)}
}

type gainReader struct {
	r     io.Reader
	gain  float32
	raw   []byte // read from r; raw[:tail] holds a partial sample
	tail  int
	out   []byte // scaled samples
	ready []byte // part of out not yet returned
	err   error
}

func (g *gainReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for empty := 0; len(g.ready) == 0; empty++ {
		if g.err != nil {
			return 0, g.err
		}
		if empty == 100 {
			return 0, io.ErrNoProgress
		}
		g.fill()
	}
	n := copy(p, g.ready)
	g.ready = g.ready[n:]
	return n, nil
}

// fill reads from the source and scales the whole samples read.
func (g *gainReader) fill() {
	n, err := g.r.Read(g.raw[g.tail:])
	total := g.tail + max(n, 0)
	whole := total - total%4
	for i := 0; i < whole; i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(g.raw[i:])) * g.gain
		binary.LittleEndian.PutUint32(g.out[i:], math.Float32bits(sanitize(v)))
	}
	g.ready = g.out[:whole]
	g.tail = copy(g.raw, g.raw[whole:total])
	g.err = err
}
