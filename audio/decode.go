package audio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
)

// Codec names, as Stream.Codec and Info.Codec report them.
const (
	CodecMP3  = "mp3"
	CodecWAV  = "wav"
	CodecOGG  = "ogg"
	CodecFLAC = "flac"
	CodecOpus = "opus" // in Ogg
)

// Limits on what a media header may claim. A header outside them is treated
// as corrupt rather than trusted with allocations.
const (
	MinSampleRate = 8000
	MaxSampleRate = 192000
	MaxChannels   = 8
)

var (
	// ErrUnknownFormat is returned by Decode (and so Probe and Transcode) when
	// the input is none of MP3, WAV, OGG Vorbis, Ogg Opus or FLAC.
	ErrUnknownFormat = errors.New("unknown media format")
	// ErrTooLong is returned by Probe when the media plays longer than allowed.
	ErrTooLong = errors.New("media too long")
	// ErrNoAudio is returned by Probe and Transcode when the media decodes to
	// zero frames.
	ErrNoAudio = errors.New("media has no audio")
	// ErrClosed is returned by a sink's Play after Close.
	ErrClosed = errors.New("sink closed")
	// ErrOutputStopped is what a sink's readiness check wraps when its
	// output failed and cannot be opened again by this process (oto makes
	// one context per process): only a restart of the program can help.
	ErrOutputStopped = errors.New("the sound output stopped working")
)

// Stream is decoded audio: interleaved float32 samples in [-1, 1].
//
// Read fills p with whole frames (len(p) must be at least Format().Channels)
// and returns the number of samples (not frames) written. Like io.Reader it
// may return n > 0 together with an error; at the end it returns io.EOF.
// A Stream is used by one goroutine at a time.
type Stream interface {
	Format() Format
	Codec() string
	Read(p []float32) (int, error)
}

// Decode sniffs the format of r (MP3 with or without an ID3v2 tag, RIFF/WAVE
// PCM 8/16/24/32-bit integer or 32/64-bit float, OGG Vorbis, FLAC, Ogg Opus)
// and returns a Stream decoding it on the fly. It reads r from its current
// position. Opus needs a decoder registered with RegisterOpusDecoder (see
// audio/opus); without one it fails with an error wrapping ErrNoOpusDecoder.
//
// Errors say which codec failed ("decode flac: ..."); input that is none of
// the formats gives an error wrapping ErrUnknownFormat. Corrupt or truncated
// input gives an error, from Decode or from a later Read, never a panic.
// The Stream reads r as it goes: r must stay open and unshared until the
// Stream is done.
func Decode(r io.ReadSeeker) (Stream, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	br := newBufReadSeeker(r, start)
	codec, offset, err := sniff(br)
	if err != nil {
		return nil, err
	}
	if _, err := br.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("decode %s: %w", codec, err)
	}
	src := &offsetReadSeeker{rs: br, base: offset}
	var s Stream
	err = guard(codec, func() error {
		var err error
		switch codec {
		case CodecMP3:
			s, err = newMP3Stream(src)
		case CodecWAV:
			s, err = newWAVStream(src)
		case CodecOGG:
			s, err = newOGGStream(src)
		case CodecOpus:
			s, err = newOpusStream(src)
		case CodecFLAC:
			s, err = newFLACStream(src)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	f := s.Format()
	if err := checkFormat(f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", codec, err)
	}
	return &safeStream{s: s}, nil
}

func checkFormat(f Format) error {
	if f.Channels < 1 || f.Channels > MaxChannels {
		return fmt.Errorf("unsupported channel count %d (1..%d)", f.Channels, MaxChannels)
	}
	if f.SampleRate < MinSampleRate || f.SampleRate > MaxSampleRate {
		return fmt.Errorf("unsupported sample rate %d (%d..%d)", f.SampleRate, MinSampleRate, MaxSampleRate)
	}
	return nil
}

// guard runs fn, turning a panic in a third-party decoder into an error, and
// prefixes any error with the codec.
func guard(codec string, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decode %s: corrupt input (decoder panic in %s: %v)", codec, panicOrigin(), p)
		}
	}()
	if err := fn(); err != nil {
		return codecError(codec, noEOF(err))
	}
	return nil
}

// codecError says which codec failed, and that an unexpected end of the
// data means the media is truncated.
func codecError(codec string, err error) error {
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("decode %s: truncated: %w", codec, err)
	}
	return fmt.Errorf("decode %s: %w", codec, err)
}

// panicOrigin names the function that panicked, for the error message; it
// must be called from a deferred function that recovered.
func panicOrigin() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case inPanic && !strings.HasPrefix(f.Function, "runtime."):
			return f.Function
		}
		if !more {
			return "unknown"
		}
	}
}

// safeStream wraps a codec's stream: it recovers panics, prefixes errors with
// the codec, keeps whole frames, and stays failed after an error.
type safeStream struct {
	s   Stream
	err error
}

func (s *safeStream) Format() Format { return s.s.Format() }
func (s *safeStream) Codec() string  { return s.s.Codec() }

func (s *safeStream) Read(p []float32) (n int, err error) {
	if s.err != nil {
		return 0, s.err
	}
	ch := s.s.Format().Channels
	p = p[:len(p)/ch*ch]
	if len(p) == 0 {
		return 0, nil
	}
	defer func() {
		if r := recover(); r != nil {
			n = 0
			err = fmt.Errorf("decode %s: corrupt input (decoder panic in %s: %v)", s.s.Codec(), panicOrigin(), r)
		} else if err != nil && err != io.EOF {
			err = codecError(s.s.Codec(), err)
		}
		if err != nil {
			s.err = err
		}
	}()
	for i := 0; i < 64; i++ {
		n, err = s.s.Read(p)
		if n < 0 || n > len(p) || n%ch != 0 {
			return 0, errors.New("decoder returned an invalid count")
		}
		for i, v := range p[:n] {
			p[i] = sanitize(v)
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, errors.New("decoder made no progress")
}

// sniff finds the codec of the media at the start of r and the offset where
// its decoder should begin (past any ID3v2 tags).
func sniff(r io.ReadSeeker) (codec string, offset int64, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return "", 0, fmt.Errorf("decode: %w", err)
	}
	if size == 0 {
		return "", 0, fmt.Errorf("decode: empty input: %w", ErrUnknownFormat)
	}
	var hdr [12]byte
	for tags := 0; ; tags++ {
		if _, err := r.Seek(offset, io.SeekStart); err != nil {
			return "", 0, fmt.Errorf("decode: %w", err)
		}
		n, err := io.ReadFull(r, hdr[:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return "", 0, fmt.Errorf("decode: %w", err)
		}
		b := hdr[:n]
		tagSize, ok := id3v2Size(b)
		if !ok {
			break
		}
		if tags >= 8 || offset+tagSize > size {
			return "", 0, fmt.Errorf("decode mp3: ID3v2 tag larger than the file")
		}
		offset += tagSize
	}
	b := hdr[:]
	switch {
	case bytes.HasPrefix(b, []byte("fLaC")):
		return CodecFLAC, offset, nil
	case bytes.HasPrefix(b, []byte("OggS")):
		if isOggOpus(r, offset) {
			return CodecOpus, offset, nil
		}
		return CodecOGG, offset, nil
	case bytes.HasPrefix(b, []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WAVE")):
		return CodecWAV, offset, nil
	}
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("decode: %w", err)
	}
	if at, ok := findMP3Sync(r, offset, size); ok {
		return CodecMP3, at, nil
	}
	if offset > 0 {
		return "", 0, fmt.Errorf("decode mp3: no MPEG audio frame after the ID3 tag")
	}
	return "", 0, fmt.Errorf("decode: %w", ErrUnknownFormat)
}

// isOggOpus reports whether the first packet of the Ogg page at offset is
// an Opus header; anything else is left to the Vorbis decoder.
func isOggOpus(r io.ReadSeeker, offset int64) bool {
	var b [oggHeaderSize + 255 + 8]byte
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	n, _ := io.ReadFull(r, b[:])
	if n < oggHeaderSize {
		return false
	}
	at := oggHeaderSize + int(b[26])
	return n >= at+8 && string(b[at:at+8]) == "OpusHead"
}

// id3v2Size reports the total size of an ID3v2 tag starting at b.
func id3v2Size(b []byte) (int64, bool) {
	if len(b) < 10 || string(b[:3]) != "ID3" || b[3] == 0xFF || b[4] == 0xFF {
		return 0, false
	}
	var size int64
	for _, c := range b[6:10] {
		if c&0x80 != 0 {
			return 0, false
		}
		size = size<<7 | int64(c)
	}
	size += 10
	if b[5]&0x10 != 0 { // footer present
		size += 10
	}
	return size, true
}
