package audio

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

var _ Sink = (*WAVSink)(nil)

// WAVSink "plays" each item into <dir>/<name>.wav: 32-bit IEEE float WAV in
// its format. A file is written under a temporary name and renamed when
// done, so a file with the final name is always whole. It is safe for
// concurrent use (Plays of the same name race for the last rename).
type WAVSink struct {
	dir    string
	format Format
	paced  bool
	closed atomic.Bool
}

// maxWAVData is the most PCM a RIFF file's 32-bit sizes can describe.
const maxWAVData = 0xFFFFFFFF - 58

// NewWAVSink returns a sink writing WAV files into dir (created if needed).
// If paced, Play takes as long as the sound would play and stops on
// cancellation mid-item, like a sound card.
func NewWAVSink(dir string, f Format, paced bool) (*WAVSink, error) {
	if !validFormat(f) {
		return nil, fmt.Errorf("wav sink: invalid format %+v", f)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wav sink: %w", err)
	}
	return &WAVSink{dir: dir, format: f, paced: paced}, nil
}

// Format is the PCM format Play expects.
func (s *WAVSink) Format() Format { return s.format }

// Path is the file Play writes for name.
func (s *WAVSink) Path(name string) string {
	return filepath.Join(s.dir, SanitizeName(name)+".wav")
}

// Play writes pcm to Path(name). If ctx ends first, the file holds what was
// played so far and Play returns ctx.Err(). If reading pcm or writing fails,
// no file is left.
func (s *WAVSink) Play(ctx context.Context, name string, pcm io.Reader) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	final := s.Path(name)
	tmp, err := os.CreateTemp(s.dir, "."+filepath.Base(final)+".*.tmp")
	if err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	defer func() {
		if err != nil && !isCtxErr(err) {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 64<<10)
	if _, err := w.Write(wavHeader(s.format, 0)); err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	var werr error
	n, perr := pump(ctx, s.format, pcm, s.paced, func(b []byte) error {
		if _, werr = w.Write(b); werr != nil {
			return werr
		}
		return nil
	})
	if werr != nil {
		return fmt.Errorf("play %s: write %s: %w", name, tmp.Name(), werr)
	}
	if perr != nil && !isCtxErr(perr) {
		return fmt.Errorf("play %s: read pcm: %w", name, perr)
	}
	if n > maxWAVData {
		return fmt.Errorf("play %s: %d bytes is too long for a WAV file", name, n)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	if _, err := tmp.WriteAt(wavHeader(s.format, n), 0); err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("play %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("play %s: %w", name, err)
	}
	return perr
}

// Close makes later Plays fail with ErrClosed.
func (s *WAVSink) Close() error {
	s.closed.Store(true)
	return nil
}

// SanitizeName turns an item name into a safe file name: letters, digits,
// '-', '_' and '.' are kept, anything else (path separators included)
// becomes '_'; leading dots are dropped, and an empty result is "item".
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 200 {
			break
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if s == "" {
		return "item"
	}
	return s
}

// wavHeader is the header of an IEEE float WAV file with dataBytes of PCM:
// RIFF, an 18-byte fmt chunk (format tag 3), a fact chunk, the data chunk
// header.
func wavHeader(f Format, dataBytes int64) []byte {
	h := make([]byte, 58)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(50+dataBytes+dataBytes&1))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 18)
	le.PutUint16(h[20:], wavFormatFloat)
	le.PutUint16(h[22:], uint16(f.Channels))
	le.PutUint32(h[24:], uint32(f.SampleRate))
	le.PutUint32(h[28:], uint32(f.SampleRate*f.BytesPerFrame()))
	le.PutUint16(h[32:], uint16(f.BytesPerFrame()))
	le.PutUint16(h[34:], 32)
	le.PutUint16(h[36:], 0) // cbSize
	copy(h[38:], "fact")
	le.PutUint32(h[42:], 4)
	le.PutUint32(h[46:], uint32(dataBytes/int64(f.BytesPerFrame())))
	copy(h[50:], "data")
	le.PutUint32(h[54:], uint32(dataBytes))
	return h
}

// WriteWAV writes pcm (float32 little-endian PCM in f, whole frames) to w
// as a 32-bit IEEE float WAV file.
func WriteWAV(w io.Writer, f Format, pcm []byte) error {
	if !validFormat(f) {
		return fmt.Errorf("write wav: invalid format %+v", f)
	}
	if len(pcm)%f.BytesPerFrame() != 0 || int64(len(pcm)) > maxWAVData {
		return errors.New("write wav: pcm is not whole frames or too long")
	}
	if _, err := w.Write(wavHeader(f, int64(len(pcm)))); err != nil {
		return fmt.Errorf("write wav: %w", err)
	}
	if _, err := w.Write(pcm); err != nil {
		return fmt.Errorf("write wav: %w", err)
	}
	return nil
}

// ReadWAV reads a whole WAV file (PCM 8/16/24/32-bit integer or 32/64-bit
// float, plain or extensible) into interleaved float32 samples.
func ReadWAV(r io.Reader) (Format, []float32, error) {
	s, err := newWAVStream(r)
	if err != nil {
		return Format{}, nil, fmt.Errorf("read wav: %w", err)
	}
	var out []float32
	buf := make([]float32, 4096*s.format.Channels)
	for {
		n, err := s.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return s.format, out, nil
		}
		if err != nil {
			return s.format, out, fmt.Errorf("read wav: %w", err)
		}
	}
}
