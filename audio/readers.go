package audio

import (
	"errors"
	"io"
)

// bufReadSeeker buffers reads from an io.ReadSeeker (decoders read a byte
// at a time) and keeps seeks inside the buffer cheap. Position 0 is where the
// underlying reader stood when it was wrapped.
type bufReadSeeker struct {
	rs    io.ReadSeeker
	start int64 // underlying offset of logical 0
	buf   []byte
	bufAt int64 // logical offset of buf[0]
	r     int   // read index in buf
	under int64 // logical offset of the underlying reader, -1 if unknown
	size  int64 // logical size, -1 until asked
}

const bufReadSize = 32 << 10

func newBufReadSeeker(rs io.ReadSeeker, start int64) *bufReadSeeker {
	return &bufReadSeeker{rs: rs, start: start, buf: make([]byte, 0, bufReadSize), under: 0, size: -1}
}

func (b *bufReadSeeker) pos() int64 { return b.bufAt + int64(b.r) }

func (b *bufReadSeeker) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r < len(b.buf) {
		n := copy(p, b.buf[b.r:])
		b.r += n
		return n, nil
	}
	at := b.pos()
	if b.under != at {
		if _, err := b.rs.Seek(b.start+at, io.SeekStart); err != nil {
			b.under = -1
			return 0, err
		}
		b.under = at
	}
	if len(p) >= cap(b.buf) {
		n, err := b.rs.Read(p)
		if n < 0 {
			n = 0
		}
		b.under += int64(n)
		b.buf, b.bufAt, b.r = b.buf[:0], at+int64(n), 0
		return n, err
	}
	n, err := b.rs.Read(b.buf[:cap(b.buf)])
	if n < 0 {
		n = 0
	}
	b.under += int64(n)
	b.buf, b.bufAt, b.r = b.buf[:n], at, 0
	m := copy(p, b.buf)
	b.r = m
	if m > 0 {
		return m, nil
	}
	return 0, err
}

func (b *bufReadSeeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.pos() + offset
	case io.SeekEnd:
		if b.size < 0 {
			end, err := b.rs.Seek(0, io.SeekEnd)
			if err != nil {
				b.under = -1
				return 0, err
			}
			b.size = end - b.start
			b.under = b.size
		}
		abs = b.size + offset
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	if abs >= b.bufAt && abs <= b.bufAt+int64(len(b.buf)) {
		b.r = int(abs - b.bufAt)
		return abs, nil
	}
	b.buf, b.bufAt, b.r = b.buf[:0], abs, 0
	return abs, nil
}

// offsetReadSeeker shows rs from base on, as if base were offset 0.
type offsetReadSeeker struct {
	rs   io.ReadSeeker
	base int64
}

func (o *offsetReadSeeker) Read(p []byte) (int, error) { return o.rs.Read(p) }

func (o *offsetReadSeeker) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		offset += o.base
	}
	n, err := o.rs.Seek(offset, whence)
	if err != nil {
		return 0, err
	}
	if n < o.base {
		return 0, errors.New("seek: before start of media")
	}
	return n - o.base, nil
}

// readerOnly hides Seek from decoders that would otherwise scan the whole
// file up front.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
