package protocol

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Live sessions (a live speech, a relayed radio programme) reach the boxes
// as a stream of small binary packets on loa/<site>/stream/<session>, MQTT
// QoS 0, not retained: a late packet is worth nothing, so nothing is resent.
// Each packet carries a few Opus frames and the controller time at which its
// first frame must sound, and is signed like every other message the
// controller sends (over the topic, so a packet cannot be moved to another
// session). The box plays a session only while a signed plan holds an item
// for it (PlanItem.Stream).

// Stream packet limits.
const (
	// MaxStreamFrames bounds the Opus frames of one packet.
	MaxStreamFrames = 50
	// MaxOpusFrame bounds one Opus packet (RFC 6716: at most 1275 bytes per
	// frame, six frames of 20 ms in a 120 ms packet).
	MaxOpusFrame = 1275 * 6
	// MaxStreamPacket bounds a packet on the wire.
	MaxStreamPacket = 64 << 10
)

// streamMagic starts every stream packet; the byte after it is the version.
const (
	streamMagic   = "LOAS"
	streamVersion = 1
	// streamHeader is magic, version, flags, channels, a zero byte, the
	// sequence (8) and the play time (8).
	streamHeader = 4 + 4 + 8 + 8
	streamEnd    = 1 // flags: the session ended at At; no frames
)

// StreamPacket is one packet of a session's stream.
type StreamPacket struct {
	// Seq counts the session's packets from 0; a gap is packets lost.
	Seq uint64
	// At is the controller time at which the first frame must sound; for
	// the end packet, the time the session's sound ends.
	At time.Time
	// Channels of the Opus stream (1 or 2).
	Channels int
	// Frames are Opus packets (RFC 6716), in order, back to back in time.
	Frames [][]byte
	// End marks the last packet: the session ended at At.
	End bool
}

// StreamRef names the live session an item plays instead of media.
type StreamRef struct {
	// Session is the session's id: its packets come on Topics.Stream(Session).
	Session string `json:"session"`
	// Channels of the Opus stream (1 or 2).
	Channels int `json:"channels"`
	// Ends is set once the session has ended: the box plays until then and
	// stops. Until it is set the item plays until its Expires at most.
	Ends time.Time `json:"ends,omitzero"`
}

// Validate checks a stream reference a box received.
func (s StreamRef) Validate() error {
	if err := ValidName(s.Session); err != nil {
		return fmt.Errorf("stream session: %w", err)
	}
	if s.Channels < 1 || s.Channels > 2 {
		return fmt.Errorf("stream of %d channels, want 1 or 2", s.Channels)
	}
	return nil
}

// streamSignedBytes is what a stream packet's signatures cover: the topic
// and every byte of the packet before them, length-prefixed.
func streamSignedBytes(topic string, body []byte) []byte {
	b := make([]byte, 0, len(body)+len(topic)+32)
	for _, f := range [][]byte{[]byte("loa-stream-v1"), []byte(topic), body} {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return b
}

// EncodeStreamPacket writes p for topic, signed by every signer.
func EncodeStreamPacket(topic string, p StreamPacket, signers ...*Signer) ([]byte, error) {
	switch {
	case p.Channels < 1 || p.Channels > 2:
		return nil, fmt.Errorf("stream packet of %d channels", p.Channels)
	case len(p.Frames) > MaxStreamFrames:
		return nil, fmt.Errorf("stream packet of %d frames, at most %d", len(p.Frames), MaxStreamFrames)
	case p.End && len(p.Frames) > 0:
		return nil, errors.New("an end packet carries no frames")
	case len(signers) == 0 || len(signers) > maxSignatures:
		return nil, fmt.Errorf("stream packet with %d signers", len(signers))
	}
	b := make([]byte, streamHeader, 256)
	copy(b, streamMagic)
	b[4] = streamVersion
	if p.End {
		b[5] = streamEnd
	}
	b[6] = byte(p.Channels)
	binary.BigEndian.PutUint64(b[8:], p.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(p.At.UnixMicro()))
	b = append(b, byte(len(p.Frames)))
	for _, f := range p.Frames {
		if len(f) == 0 || len(f) > MaxOpusFrame {
			return nil, fmt.Errorf("opus frame of %d bytes", len(f))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
	}
	for _, f := range p.Frames {
		b = append(b, f...)
	}
	msg := streamSignedBytes(topic, b)
	b = append(b, byte(len(signers)))
	for _, s := range signers {
		id, _ := hex.DecodeString(s.id)
		b = append(b, id...)
		b = append(b, ed25519.Sign(s.key, msg)...)
	}
	if len(b) > MaxStreamPacket {
		return nil, fmt.Errorf("stream packet of %d bytes, at most %d", len(b), MaxStreamPacket)
	}
	return b, nil
}

// streamSigSize is a signature's key id (8 bytes) and signature.
const streamSigSize = 8 + ed25519.SignatureSize

// DecodeStreamPacket reads a packet received on topic and checks that a key
// in keys signed it. Errors wrap ErrBadMessage (not a stream packet) or
// ErrForged (not signed by a trusted key).
func DecodeStreamPacket(data []byte, topic string, keys Keyring) (StreamPacket, error) {
	var p StreamPacket
	bad := func(format string, a ...any) (StreamPacket, error) {
		return StreamPacket{}, fmt.Errorf("%w: stream packet: %s", ErrBadMessage, fmt.Sprintf(format, a...))
	}
	switch {
	case len(data) > MaxStreamPacket:
		return bad("%d bytes, at most %d", len(data), MaxStreamPacket)
	case len(data) < streamHeader+2 || string(data[:4]) != streamMagic:
		return bad("not a stream packet")
	case data[4] != streamVersion:
		return bad("version %d, want %d", data[4], streamVersion)
	case data[5]&^streamEnd != 0 || data[7] != 0:
		return bad("unknown flags")
	}
	p.End = data[5]&streamEnd != 0
	p.Channels = int(data[6])
	if p.Channels < 1 || p.Channels > 2 {
		return bad("%d channels", p.Channels)
	}
	p.Seq = binary.BigEndian.Uint64(data[8:])
	at := int64(binary.BigEndian.Uint64(data[16:]))
	if at <= 0 || at > 1<<53 {
		return bad("play time out of range")
	}
	p.At = time.UnixMicro(at).UTC()
	n := int(data[streamHeader])
	if n > MaxStreamFrames || p.End && n > 0 {
		return bad("%d frames", n)
	}
	off := streamHeader + 1
	if len(data) < off+2*n {
		return bad("ends inside its frame table")
	}
	lens := make([]int, n)
	total := 0
	for i := range n {
		lens[i] = int(binary.BigEndian.Uint16(data[off+2*i:]))
		if lens[i] == 0 || lens[i] > MaxOpusFrame {
			return bad("frame of %d bytes", lens[i])
		}
		total += lens[i]
	}
	off += 2 * n
	if len(data) < off+total+1 {
		return bad("ends inside its frames")
	}
	body := data[:off+total]
	p.Frames = make([][]byte, n)
	for i, l := range lens {
		p.Frames[i] = data[off : off+l : off+l]
		off += l
	}
	sigs := int(data[off])
	off++
	switch {
	case sigs == 0:
		return StreamPacket{}, fmt.Errorf("%w: unsigned", ErrForged)
	case sigs > maxSignatures:
		return StreamPacket{}, fmt.Errorf("%w: %d signatures, at most %d", ErrForged, sigs, maxSignatures)
	case len(data) != off+sigs*streamSigSize:
		return bad("%d bytes after its frames, want %d signatures", len(data)-off, sigs)
	}
	msg := streamSignedBytes(topic, body)
	known := false
	for i := range sigs {
		s := data[off+i*streamSigSize : off+(i+1)*streamSigSize]
		pub, ok := keys[hex.EncodeToString(s[:8])]
		if !ok {
			continue
		}
		known = true
		if ed25519.Verify(pub, msg, s[8:]) {
			return p, nil
		}
	}
	if !known {
		return StreamPacket{}, fmt.Errorf("%w: signed by no trusted key", ErrForged)
	}
	return StreamPacket{}, fmt.Errorf("%w: bad signature (altered, or meant for another session)", ErrForged)
}
