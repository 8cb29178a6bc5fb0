package loadtest

import (
	"bytes"
	"slices"
	"sync"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// cardReadAhead is how far ahead of real time a box with a sound card reads
// a session (device.streamCardReadAhead): a frame that arrives later than
// this before its play time is too late for it, though not for a box that
// writes to a file.
const cardReadAhead = 400 * time.Millisecond

// streamCache decodes each stream packet once for all the simulated boxes
// of a run, and checks its signature as a box does
// (protocol.DecodeStreamPacket): every box gets the same bytes, and a
// thousand boxes verifying each packet on the bench machine's two cores
// would take them from the broker and the controller being measured (one
// box's cost: BenchmarkDecodeStreamPacket).
type streamCache struct {
	keys protocol.Keyring
	mu   sync.Mutex
	seqs map[uint64]*cachedPacket
	top  uint64
}

// cachedPacket is one packet's decoding: the frames' offsets from its
// stamp, or why it does not decode.
type cachedPacket struct {
	once  sync.Once
	raw   []byte
	topic string
	p     protocol.StreamPacket
	offs  []time.Duration
	err   error
}

func newStreamCache(keys protocol.Keyring) *streamCache {
	return &streamCache{keys: keys, seqs: map[uint64]*cachedPacket{}}
}

// streamSeq is the sequence number in a packet's header, if it has one.
func streamSeq(b []byte) (uint64, bool) {
	if len(b) < 16 {
		return 0, false
	}
	var s uint64
	for _, c := range b[8:16] {
		s = s<<8 | uint64(c)
	}
	return s, true
}

// decode returns payload's packet, received on topic, and the offset of
// each of its frames from its stamp.
func (c *streamCache) decode(topic string, payload []byte) (protocol.StreamPacket, []time.Duration, error) {
	seq, ok := streamSeq(payload)
	if !ok {
		_, err := protocol.DecodeStreamPacket(payload, topic, c.keys)
		return protocol.StreamPacket{}, nil, err
	}
	c.mu.Lock()
	e := c.seqs[seq]
	if e == nil {
		e = &cachedPacket{raw: bytes.Clone(payload), topic: topic}
		c.seqs[seq] = e
		if seq > c.top {
			c.top = seq
			for s := range c.seqs { // keep the last few seconds' packets
				if s+200 < seq {
					delete(c.seqs, s)
				}
			}
		}
	}
	c.mu.Unlock()
	if !bytes.Equal(e.raw, payload) || e.topic != topic {
		// Not the packet cached under this number: decode it alone.
		p, err := protocol.DecodeStreamPacket(payload, topic, c.keys)
		if err != nil {
			return p, nil, err
		}
		offs, err := frameOffsets(p)
		return p, offs, err
	}
	e.once.Do(func() {
		e.p, e.err = protocol.DecodeStreamPacket(e.raw, topic, c.keys)
		if e.err == nil {
			e.offs, e.err = frameOffsets(e.p)
		}
	})
	return e.p, e.offs, e.err
}

// frameOffsets are the play times of p's frames after its stamp.
func frameOffsets(p protocol.StreamPacket) ([]time.Duration, error) {
	offs := make([]time.Duration, len(p.Frames))
	var samples int64
	for i, f := range p.Frames {
		offs[i] = time.Duration(samples * int64(time.Second) / 48000)
		n, err := audio.OpusPacketSamples(f)
		if err != nil {
			return nil, err
		}
		samples += int64(n)
	}
	return offs, nil
}

// streamArrival is one packet at one box.
type streamArrival struct {
	seq  uint64
	at   time.Time
	lead time.Duration // its first frame's play time minus its arrival
}

// streamRecv is what one simulated box received of a session, on either
// transport.
type streamRecv struct {
	cache *streamCache

	mu       sync.Mutex
	arrivals []streamArrival
	seen     []bool // by sequence number
	dups     int64
	frames   int64
	late     int64 // frames that arrived after their play time
	lateCard int64 // frames that arrived less than cardReadAhead before it
	bad      int64 // packets that did not decode or verify
	wire     int64 // bytes on the wire, the transport's framing included
	payload  int64
	ended    bool // the end packet arrived
}

func newStreamRecv(cache *streamCache) *streamRecv { return &streamRecv{cache: cache} }

// onPacket takes a packet that arrived at now on topic; wire is what it
// cost on the transport.
func (r *streamRecv) onPacket(topic string, payload []byte, now time.Time, wire int) {
	p, offs, err := r.cache.decode(topic, payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wire += int64(wire)
	r.payload += int64(len(payload))
	if err != nil {
		r.bad++
		return
	}
	if p.End {
		r.ended = true
		return
	}
	if p.Seq < 1<<24 {
		if int(p.Seq) >= len(r.seen) {
			r.seen = slices.Grow(r.seen, int(p.Seq)+1-len(r.seen))[:p.Seq+1]
		}
		if r.seen[p.Seq] {
			r.dups++
			return
		}
		r.seen[p.Seq] = true
	}
	r.arrivals = append(r.arrivals, streamArrival{seq: p.Seq, at: now, lead: p.At.Sub(now)})
	for _, off := range offs {
		lead := p.At.Add(off).Sub(now)
		if lead < 0 {
			r.late++
		}
		if lead < cardReadAhead {
			r.lateCard++
		}
	}
	r.frames += int64(len(offs))
}

func (r *streamRecv) hasEnded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

func (r *streamRecv) packets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals)
}

// mqttPublishSize is a QoS 0 PUBLISH on the wire: the fixed header, the
// remaining length, the topic (length-prefixed) and the payload.
func mqttPublishSize(topic string, payload int) int {
	rest := 2 + len(topic) + payload
	n := 1 + 1
	for r := rest; r >= 128; r >>= 7 {
		n++
	}
	return n + rest
}
