package device

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// Live sessions (a live speech, a relayed radio programme) reach the box as
// a plan item with Stream set and a stream of signed packets of Opus frames
// on Topics.Stream(session), each stamped with the controller time at which
// its first frame must sound. The box follows a session (subscribes, keeps a
// jitter buffer) from a little before the item's cue until the item is
// final. Positions in a session count samples at 48 kHz (Opus's rate) from
// the item's start; every box maps a frame's stamp to a position with the
// same rounding, so neighbouring boxes put each frame on the same sample.

// Live session timings.
const (
	// streamRate is Opus's decoding rate: positions count its samples.
	streamRate = 48000
	// streamGrid is the grid, from the item's start, on which a box that
	// joins a running session starts (the live point): the controller's
	// frames are 20 ms long, so a box that joins late starts on a frame.
	streamGrid = 20 * time.Millisecond
	// streamReadAhead is how far ahead of real time the player reads a
	// session for sinks that pull PCM as fast as it comes (files, null):
	// they get it no earlier than this before it sounds, and a frame that
	// arrives later than this before its time is too late.
	streamReadAhead = 200 * time.Millisecond
	// streamCardReadAhead is the read-ahead for a sound card (a
	// TimedSink): more than it reads ahead itself (otosink: its player's
	// 240 ms and the card's 90 ms), so the session never holds it back: a
	// card whose buffer ran dry would play the rest late.
	streamCardReadAhead = 400 * time.Millisecond
	// streamConcealMax is how long a gap libopus conceals (packet loss
	// concealment); the rest of a longer gap is silence.
	streamConcealMax = 120 * time.Millisecond
	// streamFillMax is the most concealment or silence made at a time, so
	// frames that arrive during a gap are played from the next step on.
	streamFillMax = 20 * time.Millisecond
	// streamPrime is how much sound before the live point a joining box
	// decodes without playing it, if its buffer has it, so the decoder's
	// state has settled when its first sample sounds.
	streamPrime = 200 * time.Millisecond
	// streamAheadMax: packets stamped further ahead of now are dropped
	// (the controller stamps them about 1.5 s ahead).
	streamAheadMax = 10 * time.Second
	// streamMaxBytes bounds one session's buffer.
	streamMaxBytes = 2 << 20
	// streamResync is the change of the clock's offset (time sync) that
	// moves a playing session to where the corrected clock says it is.
	streamResync = 20 * time.Millisecond
	// streamFollowLead is how long before an item's cue the box starts
	// following its session, so the subscription is in place and the
	// first packets are buffered when the sound starts.
	streamFollowLead = 5 * time.Second
)

// streamPos is the position of controller time t in a session whose
// position 0 is at origin: samples at 48 kHz, rounded half up. Every box
// computes the same position for the same stamp.
func streamPos(origin, t time.Time) int64 {
	d := int64(t.Sub(origin))
	sec, rem := d/int64(time.Second), d%int64(time.Second)
	if rem < 0 {
		sec, rem = sec-1, rem+int64(time.Second)
	}
	return sec*streamRate + (rem*streamRate+int64(time.Second)/2)/int64(time.Second)
}

// streamSamples is how many samples at 48 kHz d lasts (d under a day).
func streamSamples(d time.Duration) int64 { return int64(d) * streamRate / int64(time.Second) }

// streamDur is how long pos samples at 48 kHz last.
func streamDur(pos int64) time.Duration {
	sec, rem := pos/streamRate, pos%streamRate
	if rem < 0 {
		sec, rem = sec-1, rem+streamRate
	}
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/streamRate)
}

// streamFrame is one Opus packet of a session at its position.
type streamFrame struct {
	pos  int64 // first sample
	n    int64 // samples (from its table of contents)
	data []byte
}

// streamBuffer is the jitter buffer of one session: the frames received and
// not yet played, in order of position. paho's goroutine puts frames, the
// player takes them, the loop sets the end; its mutex guards everything.
type streamBuffer struct {
	session string
	origin  time.Time // position 0: the item's start

	mu     sync.Mutex
	frames []streamFrame // sorted by pos, no two at the same pos
	bytes  int
	read   int64 // the player has read up to here: frames ending before are late
	end    int64 // the session's end, once known
	hasEnd bool
	late   int64 // frames that came after their position was read
	full   int64 // frames dropped because the buffer was full
}

func newStreamBuffer(session string, origin time.Time) *streamBuffer {
	return &streamBuffer{session: session, origin: origin}
}

var errStreamAhead = errors.New("stamped too far ahead")

// put adds a packet's frames (or its end), received at controller time now.
// Frames already read, or before now, are late and dropped; so are frames
// after the end. A packet stamped more than streamAheadMax ahead is
// dropped whole.
func (b *streamBuffer) put(p protocol.StreamPacket, now time.Time) error {
	if p.At.Sub(now) > streamAheadMax {
		return fmt.Errorf("%w (%v ahead)", errStreamAhead, p.At.Sub(now).Round(time.Millisecond))
	}
	pos := streamPos(b.origin, p.At)
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.End {
		b.setEndLocked(pos)
		return nil
	}
	// Nothing before now is ever played (a box joins ahead of now); a
	// second's margin covers a clock estimate that moved since the play began.
	stale := max(b.read, streamPos(b.origin, now.Add(-time.Second)))
	b.pruneLocked(stale)
	for _, f := range p.Frames {
		n, err := audio.OpusPacketSamples(f)
		if err != nil {
			// The positions of this frame's successors are unknown.
			return fmt.Errorf("frame at %v: %w", streamDur(pos), err)
		}
		fr := streamFrame{pos: pos, n: int64(n), data: f}
		pos += int64(n)
		switch {
		case fr.pos+fr.n <= stale:
			b.late++
			continue
		case b.hasEnd && fr.pos >= b.end:
			continue
		case b.bytes+len(f) > streamMaxBytes:
			b.full++
			continue
		}
		i := sort.Search(len(b.frames), func(i int) bool { return b.frames[i].pos >= fr.pos })
		if i < len(b.frames) && b.frames[i].pos == fr.pos {
			continue // a duplicate
		}
		b.frames = slices.Insert(b.frames, i, fr)
		b.bytes += len(f)
	}
	return nil
}

// pruneLocked drops the frames that end at or before pos.
func (b *streamBuffer) pruneLocked(pos int64) {
	i := 0
	for i < len(b.frames) && b.frames[i].pos+b.frames[i].n <= pos {
		b.bytes -= len(b.frames[i].data)
		i++
	}
	if i > 0 {
		b.frames = slices.Delete(b.frames, 0, i)
	}
}

// setEnd sets the session's end (the earliest one heard of wins) and drops
// the frames from there on.
func (b *streamBuffer) setEnd(pos int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setEndLocked(pos)
}

func (b *streamBuffer) setEndLocked(pos int64) {
	if b.hasEnd && b.end <= pos {
		return
	}
	b.end, b.hasEnd = pos, true
	i := sort.Search(len(b.frames), func(i int) bool { return b.frames[i].pos >= pos })
	for _, f := range b.frames[i:] {
		b.bytes -= len(f.data)
	}
	b.frames = b.frames[:i]
}

// endPos is the session's end, if known.
func (b *streamBuffer) endPos() (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end, b.hasEnd
}

// endTime is the session's end as a controller time, if known.
func (b *streamBuffer) endTime() (time.Time, bool) {
	pos, ok := b.endPos()
	if !ok {
		return time.Time{}, false
	}
	return b.origin.Add(streamDur(pos)), true
}

// join starts a read at pos: it returns the frames that end at most prime
// samples before pos, for the decoder to settle on, and drops everything
// before pos (a frame across pos stays, to be trimmed).
func (b *streamBuffer) join(pos, prime int64) []streamFrame {
	b.mu.Lock()
	defer b.mu.Unlock()
	var warm []streamFrame
	for _, f := range b.frames {
		if f.pos+f.n > pos {
			break
		}
		if f.pos >= pos-prime {
			warm = append(warm, f)
		}
	}
	b.pruneLocked(pos)
	b.read = pos
	return warm
}

// take returns the frame that covers pos, if one does; otherwise how many
// samples from pos, up to most, no frame covers (the gap to fill). Frames
// that end at or before pos came too late and are dropped.
func (b *streamBuffer) take(pos, most int64) (f streamFrame, ok bool, gap int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read = max(b.read, pos)
	i := 0
	for i < len(b.frames) && b.frames[i].pos+b.frames[i].n <= pos {
		b.bytes -= len(b.frames[i].data)
		b.late++
		i++
	}
	b.frames = slices.Delete(b.frames, 0, i)
	if len(b.frames) > 0 && b.frames[0].pos <= pos {
		f = b.frames[0]
		b.bytes -= len(f.data)
		b.frames = slices.Delete(b.frames, 0, 1)
		b.read = max(b.read, f.pos+f.n)
		return f, true, 0
	}
	gap = most
	if len(b.frames) > 0 {
		gap = min(gap, b.frames[0].pos-pos)
	}
	return streamFrame{}, false, gap
}

// counts returns the late and full drops so far.
func (b *streamBuffer) counts() (late, full int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.late, b.full
}

// streamSet holds the jitter buffers of the sessions the box follows. The
// loop creates and drops them (syncStreams); paho's goroutine looks them up
// to put packets; the player holds the one it plays.
type streamSet struct {
	mu   sync.Mutex
	bufs map[string]*streamBuffer
}

func newStreamSet() *streamSet { return &streamSet{bufs: map[string]*streamBuffer{}} }

// get returns the buffer of session, or nil if the box does not follow it.
func (s *streamSet) get(session string) *streamBuffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bufs[session]
}

// sessions lists the sessions followed.
func (s *streamSet) sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.bufs))
	for k := range s.bufs {
		out = append(out, k)
	}
	return out
}

// streamWant is a session the box must follow: its origin (the item's
// start) and its end if the plan says it.
type streamWant struct {
	origin time.Time
	ends   time.Time
}

// sync makes the set follow exactly want, keeping the buffers of sessions
// it already follows (a new one if the origin moved), and reports whether
// the sessions followed changed.
func (s *streamSet) sync(want map[string]streamWant) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for session := range s.bufs {
		if _, ok := want[session]; !ok {
			delete(s.bufs, session)
			changed = true
		}
	}
	for session, w := range want {
		b := s.bufs[session]
		if b == nil || !b.origin.Equal(w.origin) {
			if b == nil {
				changed = true
			}
			b = newStreamBuffer(session, w.origin)
			s.bufs[session] = b
		}
		if !w.ends.IsZero() {
			b.setEnd(streamPos(b.origin, w.ends))
		}
	}
	return changed
}

// ensure returns the buffer of the item's session, making it if needed.
func (s *streamSet) ensure(it protocol.PlanItem) *streamBuffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bufs[it.Stream.Session]
	if b == nil {
		b = newStreamBuffer(it.Stream.Session, it.Start)
		s.bufs[it.Stream.Session] = b
	}
	return b
}

// onStreamPacket takes a packet on a session's topic. It runs on paho's
// goroutine: it checks the signature, and puts a valid packet in the
// session's buffer if the box follows it. A forged packet is reported like
// any message not from the controller (at most one rejected event per topic
// a minute) and never played.
func (a *Agent) onStreamPacket(topic, session string, payload []byte) {
	p, err := protocol.DecodeStreamPacket(payload, topic, a.trust.keyring())
	if err != nil {
		a.streamRefused.Add(session, "not a valid packet", err)
		if errors.Is(err, protocol.ErrForged) {
			a.inbox.put(inMsg{topic: rejectPrefix + topic, rejection: err.Error()})
		}
		return
	}
	b := a.streams.get(session)
	if b == nil {
		return // a session the box does not (or no longer) follow
	}
	if err := b.put(p, a.clock.Now()); err != nil {
		a.streamRefused.Add(session, "packet dropped", err)
	}
}

// streamUntil is the latest a stream item can start (or rejoin): a box
// needs cueLead to start, and the session ends at its plan end, at its end
// packet or at the item's expiry, whichever is first.
func (a *Agent) streamUntil(it protocol.PlanItem) time.Time {
	end := it.Expires
	if e := it.Stream.Ends; !e.IsZero() && e.Before(end) {
		end = e
	}
	if b := a.streams.get(it.Stream.Session); b != nil {
		if e, ok := b.endTime(); ok && e.Before(end) {
			end = e
		}
	}
	return later(it.Start, end.Add(-cueLead))
}

// syncStreams follows the sessions of the stream items that are not final
// and whose cue is at most streamFollowLead away (or that are on the
// output), and no other: it makes and drops their buffers, passes them the
// end the plan gives, and subscribes to their topics.
func (a *Agent) syncStreams(now time.Time) {
	want := map[string]streamWant{}
	plausible := a.plausible(now)
	for id, it := range a.live {
		if it.Stream == nil {
			continue
		}
		rec := a.items[id]
		if rec == nil || rec.Status.Final() {
			continue
		}
		if !a.queue.onOutput(id) && (!plausible || now.Before(it.Start.Add(-cueLead-streamFollowLead))) {
			continue
		}
		w, ok := want[it.Stream.Session]
		if ok && !it.Start.Before(w.origin) {
			continue // two items of one session: the earlier one's origin
		}
		want[it.Stream.Session] = streamWant{origin: it.Start, ends: it.Stream.Ends}
	}
	if a.streams.sync(want) {
		a.syncSubs()
	}
}

// streamJob is what the player needs to play a session.
type streamJob struct {
	buf      *streamBuffer
	channels int
	join     time.Time     // controller time of the first sample
	startPos int64         // its position
	endPos   int64         // the item's expiry: the latest end
	late     bool          // joined a running session: fades in
	ahead    time.Duration // the read-ahead
	// offset is the clock's offset (time sync) now; offset0 is the one
	// join was decided with.
	offset  func() time.Duration
	offset0 time.Duration
	stats   *streamStats
}

// streamStats is what one play of a session sounded, written by the player
// when the play ends and read by the loop after.
type streamStats struct {
	mu     sync.Mutex
	heard  int64 // samples at 48 kHz from frames
	missed int64 // concealed or silent
	until  time.Time
	done   bool
}

func (s *streamStats) set(heard, missed int64, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heard, s.missed, s.until, s.done = heard, missed, until, true
}

func (s *streamStats) get() (heard, missed int64, until time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heard, s.missed, s.until, s.done
}

// newStreamJob decides where a play of a stream item starts: at its start
// if that is still ahead, else at the live point, the first instant on the
// session's grid at least cueLead from now, so the output can place it
// exactly; never from the beginning of a running session.
func (a *Agent) newStreamJob(c candidate, rec *itemRecord, now time.Time) (*streamJob, reason) {
	it := c.item
	buf := a.streams.ensure(it)
	j := &streamJob{buf: buf, channels: it.Stream.Channels, join: it.Start, ahead: streamReadAhead,
		offset: a.clock.Offset, offset0: a.clock.Offset(), stats: &streamStats{}}
	if _, ok := a.sink.(audio.TimedSink); ok {
		j.ahead = streamCardReadAhead
	}
	var why reason
	if !it.Start.After(now) {
		j.late = true
		k := (now.Add(cueLead).Sub(it.Start) + streamGrid - 1) / streamGrid
		j.join = it.Start.Add(k * streamGrid)
		in := seconds(j.join.Sub(it.Start).Milliseconds())
		switch {
		case c.preempted:
			why = because(protocol.WhyRejoinPreempted, in)
		case c.started:
			why = because(protocol.WhyRejoinRestart, in)
		default:
			why = because(protocol.WhyJoining, in)
		}
	}
	j.startPos = streamPos(buf.origin, j.join)
	j.endPos = streamPos(buf.origin, it.Expires)
	if !rec.StreamUntil.IsZero() && j.join.After(rec.StreamUntil) {
		rec.OffMS += j.join.Sub(rec.StreamUntil).Milliseconds()
	}
	return j, why
}

// foldStreamRun adds what the play of a stream item that just ended
// sounded to its record.
func (a *Agent) foldStreamRun() {
	run := a.streamRun
	a.streamRun = nil
	if run == nil {
		return
	}
	heard, missed, until, ok := run.stats.get()
	rec := a.items[run.id]
	if !ok || rec == nil {
		return
	}
	rec.HeardMS += streamDur(heard).Milliseconds()
	rec.MissedMS += streamDur(missed).Milliseconds()
	if !until.IsZero() {
		rec.StreamUntil = until.UTC()
	}
	a.dirty = true
}

// streamRun is the stream item on the output and its stats.
type streamRun struct {
	id    string
	stats *streamStats
}

// streamReason adds to the reason of a stream item's final answer how much
// of the session it sounded: "missed 2.4 s of 60.0 s".
func streamReason(rec *itemRecord, t protocol.EventType, why reason) reason {
	if t != protocol.EventPlayed {
		return why
	}
	if rec.MissedMS > 0 {
		why = why.and(because(protocol.WhyStreamMissed, seconds(rec.MissedMS), seconds(rec.MissedMS+rec.HeardMS)))
	}
	if rec.OffMS >= 100 {
		why = why.and(because(protocol.WhyStreamOff, seconds(rec.OffMS)))
	}
	return why
}

// seconds writes milliseconds as seconds with one decimal: "2.4".
func seconds(ms int64) string { return fmt.Sprintf("%.1f", float64(ms)/1000) }
