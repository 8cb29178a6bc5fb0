package audio

import (
	"bytes"
	"errors"
	"io"

	"github.com/jfreymuth/oggvorbis"
)

// oggStream decodes OGG Vorbis with jfreymuth/oggvorbis.
type oggStream struct {
	r      *oggvorbis.Reader
	format Format
}

func newOGGStream(r io.ReadSeeker) (Stream, error) {
	var head [512]byte
	n, _ := io.ReadFull(r, head[:])
	if bytes.Contains(head[:n], []byte("OpusHead")) {
		// Decode takes Ogg Opus only as the file's first stream.
		return nil, errors.New("Opus after another stream in one Ogg file is not supported")
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	// Without Seek, oggvorbis does not read the file's end for a length.
	or, err := oggvorbis.NewReader(readerOnly{r})
	if err != nil {
		return nil, err
	}
	return &oggStream{r: or, format: Format{SampleRate: or.SampleRate(), Channels: or.Channels()}}, nil
}

func (s *oggStream) Format() Format { return s.format }
func (s *oggStream) Codec() string  { return CodecOGG }

func (s *oggStream) Read(p []float32) (int, error) { return s.r.Read(p) }
