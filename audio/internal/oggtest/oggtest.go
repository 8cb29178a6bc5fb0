package oggtest

import (
	"encoding/binary"
	"slices"
)

// Page flags (RFC 3533 section 6).
const (
	Continued = 0x01
	BOS       = 0x02
	EOS       = 0x04
)

// CRC is the Ogg checksum of b: CRC-32, polynomial 0x04c11db7, most
// significant bit first, initial value 0, no final inversion.
func CRC(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc ^= uint32(c) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Lace returns the lacing values and body that carry packets, each ending
// on a value under 255.
func Lace(packets ...[]byte) (lacing, body []byte) {
	for _, p := range packets {
		n := len(p)
		for ; n >= 255; n -= 255 {
			lacing = append(lacing, 255)
		}
		lacing = append(lacing, byte(n))
		body = append(body, p...)
	}
	return lacing, body
}

// Page is an Ogg page (up to 255 lacing values).
type Page struct {
	Flags   byte
	Granule int64
	Serial  uint32
	Seq     uint32
	Lacing  []byte
	Body    []byte
}

// Bytes encodes the page with its checksum.
func (p Page) Bytes() []byte {
	b := []byte("OggS\x00")
	b = append(b, p.Flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Granule))
	b = binary.LittleEndian.AppendUint32(b, p.Serial)
	b = binary.LittleEndian.AppendUint32(b, p.Seq)
	b = append(b, 0, 0, 0, 0, byte(len(p.Lacing)))
	b = append(b, p.Lacing...)
	b = append(b, p.Body...)
	binary.LittleEndian.PutUint32(b[22:], CRC(b))
	return b
}

// OpusHead is an identification header (RFC 7845 section 5.1).
func OpusHead(channels int, preSkip uint16, gainQ8 int16, family byte) []byte {
	b := []byte("OpusHead\x01")
	b = append(b, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, preSkip)
	b = binary.LittleEndian.AppendUint32(b, 48000)
	b = binary.LittleEndian.AppendUint16(b, uint16(gainQ8))
	return append(b, family)
}

// OpusTags is a comment header with a vendor string and no comments.
func OpusTags() []byte {
	return []byte("OpusTags\x07\x00\x00\x00oggtest\x00\x00\x00\x00")
}

// Packet is an Opus packet of one CELT frame of the given duration (120,
// 240, 480 or 960 samples at 48 kHz) with payload bytes after its TOC byte.
func Packet(samples int, payload ...byte) []byte {
	config := map[int]byte{120: 16, 240: 17, 480: 18, 960: 19}[samples]
	if config == 0 {
		panic("oggtest: no CELT frame of that duration")
	}
	return append([]byte{config << 3}, payload...)
}

// Stream is an Ogg Opus file as the RFC wants it: OpusHead alone on the
// first page, OpusTags on the second, then the audio pages, each holding
// whole packets, the last one marked end of stream. The granule position
// of each audio page counts the samples (of samples per packet) up to its
// last packet, plus start; end, if not negative, replaces the last one.
func Stream(head []byte, samples int, pages [][][]byte, start, end int64) []byte {
	var out []byte
	seq := uint32(0)
	add := func(flags byte, granule int64, packets ...[]byte) {
		lacing, body := Lace(packets...)
		out = append(out, Page{Flags: flags, Granule: granule, Serial: 0x10a, Seq: seq, Lacing: lacing, Body: body}.Bytes()...)
		seq++
	}
	add(BOS, 0, head)
	add(0, 0, OpusTags())
	granule := start
	for i, packets := range pages {
		granule += int64(samples * len(packets))
		var flags byte
		g := granule
		if i == len(pages)-1 {
			flags = EOS
			if end >= 0 {
				g = end
			}
		}
		add(flags, g, packets...)
	}
	return out
}

// FixCRCs returns a copy of b with the checksum of every whole page that
// follows another from the start recomputed, so that a fuzzer's mutations
// reach past the checksum test.
func FixCRCs(b []byte) []byte {
	b = slices.Clone(b)
	for at := 0; at+27 <= len(b) && string(b[at:at+4]) == "OggS"; {
		n := int(b[at+26])
		if at+27+n > len(b) {
			break
		}
		size := 27 + n
		for _, l := range b[at+27 : at+27+n] {
			size += int(l)
		}
		if at+size > len(b) {
			break
		}
		page := b[at : at+size]
		clear(page[22:26])
		binary.LittleEndian.PutUint32(page[22:], CRC(page))
		at += size
	}
	return b
}

// Packets returns the packets of the first logical stream of the Ogg file
// b, as far as b holds whole pages; checksums are not checked.
func Packets(b []byte) [][]byte {
	var out [][]byte
	var pkt []byte
	var serial uint32
	for first := true; len(b) >= 27 && string(b[:4]) == "OggS"; first = false {
		n := int(b[26])
		if len(b) < 27+n {
			break
		}
		lacing := b[27 : 27+n]
		body := b[27+n:]
		size := 27 + n
		for _, l := range lacing {
			size += int(l)
		}
		if len(b) < size {
			break
		}
		if first {
			serial = binary.LittleEndian.Uint32(b[14:])
		}
		if binary.LittleEndian.Uint32(b[14:]) == serial {
			for _, l := range lacing {
				pkt = append(pkt, body[:l]...)
				body = body[l:]
				if l < 255 {
					out = append(out, pkt)
					pkt = nil
				}
			}
		}
		b = b[size:]
	}
	return out
}
