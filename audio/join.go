package audio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// SpeechFormat is what the controller writes for spoken media it prepares
// itself (exercise prefixes, text to speech): mono 22.05 kHz, as espeak-ng
// speaks, in 16-bit WAV so a box on a slow link downloads 44 kB per second.
var SpeechFormat = Format{SampleRate: 22050, Channels: 1}

// Join decodes each part, converts it to f and writes them one after the
// other, with gap of silence between, as a 16-bit PCM WAV file.
func Join(w io.Writer, f Format, gap time.Duration, parts ...io.ReadSeeker) (Info, error) {
	var pcm bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			pcm.Write(Silence(f, gap))
		}
		if _, err := Transcode(p, f, &pcm); err != nil {
			return Info{}, fmt.Errorf("join part %d: %w", i+1, err)
		}
	}
	samples := Floats(pcm.Bytes())
	if err := writeWAV16(w, f, samples); err != nil {
		return Info{}, err
	}
	frames := int64(len(samples) / f.Channels)
	return Info{Codec: CodecWAV, Source: f, Frames: frames, Duration: f.Duration(int64(pcm.Len()))}, nil
}

// writeWAV16 writes samples as a 16-bit PCM WAV file (rounded, clamped).
func writeWAV16(w io.Writer, f Format, samples []float32) error {
	data := 2 * len(samples)
	if int64(data) > maxWAVData {
		return fmt.Errorf("write wav: %d bytes is too long", data)
	}
	hdr := make([]byte, 44)
	copy(hdr[0:], "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:], uint32(36+data))
	copy(hdr[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(hdr[16:], 16)
	binary.LittleEndian.PutUint16(hdr[20:], 1) // PCM
	binary.LittleEndian.PutUint16(hdr[22:], uint16(f.Channels))
	binary.LittleEndian.PutUint32(hdr[24:], uint32(f.SampleRate))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(f.SampleRate*f.Channels*2))
	binary.LittleEndian.PutUint16(hdr[32:], uint16(f.Channels*2))
	binary.LittleEndian.PutUint16(hdr[34:], 16)
	copy(hdr[36:], "data")
	binary.LittleEndian.PutUint32(hdr[40:], uint32(data))
	out := make([]byte, data)
	for i, v := range samples {
		s := math.Round(float64(max(-1, min(1, v))) * 32767)
		binary.LittleEndian.PutUint16(out[2*i:], uint16(int16(s)))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(out)
	return err
}
