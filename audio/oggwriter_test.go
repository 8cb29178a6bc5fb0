package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/loa-commune/loa/audio/internal/oggtest"
)

func TestOggOpusWriter(t *testing.T) {
	useFakeOpus(t)
	for _, tc := range []struct {
		name     string
		channels int
		packets  [][]byte
	}{
		{"none", 1, nil},
		{"one", 1, packets(1, 960)},
		// 150 packets of 20 ms: three pages of a second at most.
		{"three seconds", 2, packets(150, 960)},
		// Packets of 600 bytes need three lacing values each: pages end
		// before 255.
		{"long packets", 1, func() [][]byte {
			var ps [][]byte
			for i := range 120 {
				p := oggtest.Packet(120, byte(i), 1, 2, 3)
				ps = append(ps, append(p, make([]byte, 600)...))
			}
			return ps
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewOggOpusWriter(&buf, tc.channels, 312, 7, "loa test")
			if err != nil {
				t.Fatal(err)
			}
			samples := 0
			for _, p := range tc.packets {
				if err := w.WritePacket(p); err != nil {
					t.Fatal(err)
				}
				n, _ := OpusPacketSamples(p)
				samples += n
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.WritePacket(oggtest.Packet(960, 1)); err == nil {
				t.Error("WritePacket after Close did not fail")
			}
			data := buf.Bytes()

			// The packets read back, page checksums and sequence checked.
			op, err := NewOpusPackets(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if op.Channels() != tc.channels || op.PreSkip() != 312 {
				t.Errorf("channels %d, pre-skip %d; want %d, 312", op.Channels(), op.PreSkip(), tc.channels)
			}
			var got [][]byte
			for {
				p, _, err := op.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, slices.Clone(p))
			}
			if !slices.EqualFunc(got, tc.packets, bytes.Equal) {
				t.Errorf("read back %d packets, wrote %d (or they differ)", len(got), len(tc.packets))
			}

			// Every page fits the rules; the last one alone ends the stream.
			pages := splitPages(t, data)
			for i, pg := range pages {
				flags := pg[5]
				if (flags&oggBOS != 0) != (i == 0) || (flags&oggEOS != 0) != (i == len(pages)-1) {
					t.Errorf("page %d of %d: flags %#x", i, len(pages), flags)
				}
				if dur := pageSamples(pg); dur > oggPageSamples+960 {
					t.Errorf("page %d holds %d samples", i, dur)
				}
			}
			if g := int64(binary.LittleEndian.Uint64(pages[len(pages)-1][6:])); g != int64(312+samples) {
				t.Errorf("last granule position %d, want %d", g, 312+samples)
			}

			// Decoded: the pre-skip dropped, as long as what was written.
			if len(tc.packets) == 0 {
				return
			}
			s, err := Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			decoded := 0
			pcm := make([]float32, 4096)
			for {
				n, err := s.Read(pcm)
				decoded += n
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if want := (samples - 312) * tc.channels; decoded != max(want, 0) {
				t.Errorf("decoded %d samples, want %d", decoded, want)
			}
		})
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("no space left on device")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestOggOpusWriterErrors(t *testing.T) {
	if _, err := NewOggOpusWriter(io.Discard, 3, 0, 0, ""); err == nil {
		t.Error("three channels accepted")
	}
	if _, err := NewOggOpusWriter(&failWriter{}, 1, 312, 0, ""); err == nil {
		t.Error("a failed header write was not reported")
	}
	w, err := NewOggOpusWriter(&failWriter{after: 200}, 1, 312, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(nil); err == nil {
		t.Error("an empty packet was accepted")
	}
	var werr error
	for _, p := range packets(200, 960) {
		if werr = w.WritePacket(p); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Error("a failed page write was not reported")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write succeeded")
	}
}

// pageSamples is the sound of the packets on an Ogg Opus page.
func pageSamples(pg []byte) int {
	n := int(pg[26])
	lacing, body := pg[oggHeaderSize:oggHeaderSize+n], pg[oggHeaderSize+n:]
	total, start, size := 0, 0, 0
	for _, l := range lacing {
		size += int(l)
		if l < 255 {
			if s, err := OpusPacketSamples(body[start : start+size]); err == nil {
				total += s
			}
			start += size
			size = 0
		}
	}
	return total
}
