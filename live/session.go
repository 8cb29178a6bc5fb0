package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// opusRate is the rate every Opus stream is timed at.
const opusRate = 48000

// silenceSamples is the duration of audio.OpusSilence: gaps in the
// timeline are whole multiples of it, so the recording can hold them.
const silenceSamples = 960

// Publisher sends a session's stream packets to the boxes: MQTT QoS 0, not
// retained (the broadcaster implements it). An error is counted and logged;
// the session goes on.
type Publisher interface {
	PublishStream(topic string, payload []byte) error
}

// Config describes one session.
type Config struct {
	// ID is the session's id: its packets go on
	// protocol.NewTopics(Site).Stream(ID).
	ID   string
	Site string
	// Signers sign every packet: one key, or two while a rotation is
	// under way.
	Signers   []*protocol.Signer
	Publisher Publisher
	Options   Options
	// Recording is the file the session's sound is written to (Ogg Opus,
	// through a temporary file renamed at the end); empty: none.
	Recording string
	// Clock is nil for the system clock.
	Clock Clock
	// Logger is nil for slog.Default().
	Logger *slog.Logger
	// Location is the time zone of the times in end reasons (nil: Local).
	Location *time.Location
	// StartAt, if set, is when the session's sound starts (a relay booked
	// by a schedule, which the boxes know of from their plans): sound that
	// arrives earlier than Delay before it is not played, and no
	// announcement is made. Sound that comes later plays Delay after it
	// arrives.
	StartAt time.Time
	// OnStart, if set, is called once, on the session's goroutine, when
	// the first packet arrives, with the time the session's sound starts
	// (Options.Announce and Delay later) and the stream's channel count:
	// the caller tells the boxes of the session then. It should return
	// quickly.
	OnStart func(start time.Time, channels int)
}

// EndReason says, in one word, why a session ended.
type EndReason string

// Why sessions end.
const (
	// EndFinished: the source ended (the speaker stopped, a finite
	// programme played to its end), or ctx's deadline passed (a relay for
	// a set time).
	EndFinished EndReason = "finished"
	// EndStopped: the context was cancelled (staff stopped the session,
	// or the controller is shutting down); the reason gives the cause
	// (context.WithCancelCause), if any.
	EndStopped EndReason = "stopped"
	// EndMaxLength: the session reached Options.MaxSession.
	EndMaxLength EndReason = "max_length"
	// EndSourceLost: the source was cut off, sent a damaged stream, or (a
	// relay) stopped and did not come back within Options.RetryWindow.
	EndSourceLost EndReason = "source_lost"
)

// Summary is what a session published, and how it ended.
type Summary struct {
	// Start is the play time of the first packet (the first real sample
	// plays the source's pre-skip later); End is when the sound of the
	// last frame ends, the time the end packet carries.
	Start, End time.Time
	Channels   int
	// Packets and Frames count the stream packets published (the end
	// packet included) and the Opus frames in them; Bytes the payloads
	// handed to the Publisher, whether it failed or not.
	Packets, Frames, Bytes int64
	// PublishErrors counts packets the Publisher failed to send.
	PublishErrors int64
	// Gaps counts the times the timeline moved forward (a stalled source,
	// a relay's restart); GapTime is the silence they put in.
	Gaps    int
	GapTime time.Duration
	// Restarts counts a relay's ffmpeg runs after the first that made
	// sound.
	Restarts int
	// Ended and Reason say why it ended (Reason is a sentence for staff).
	Ended  EndReason
	Reason string
	// Recording is the recording's path once it is complete; empty when
	// there is none. RecordingError says why it was abandoned.
	Recording      string
	RecordingError error
}

// Session pumps one live session's sound to the boxes: it reads Opus
// packets (Run: an Ogg Opus stream such as live speech from the CLI;
// Relay: a radio stream through ffmpeg), stamps each with the time it must
// sound, groups them into signed stream packets and publishes them. A
// Session runs once.
type Session struct {
	cfg   Config
	opts  Options
	topic string
	clock Clock
	log   *slog.Logger
	loc   *time.Location

	packetSamples int
	delay         time.Duration

	// The timeline: timeline sample k plays at origin + k/48 kHz.
	started  bool
	origin   time.Time
	pos      int64 // timeline sample after the last frame taken
	channels int
	preSkip  int  // of the current source stream
	segment  bool // the current group opens a later source stream
	start    time.Time
	lastSeen time.Time // arrival of the last packet from the source
	// holdUntil: packets arriving before it are dropped (Options.Announce).
	holdUntil time.Time

	// The group of frames becoming the next stream packet.
	groupPos     int64
	frames       [][]byte
	arena        []byte
	groupSamples int

	seq        uint64
	failing    int64     // publish errors not logged yet
	failLogged time.Time // when one was last logged
	rec        *recorder
	newRecord  func(path string) (recordFile, string, error)

	mu   sync.Mutex
	sum  Summary
	used bool
}

// New returns a session; cfg.Options must be valid.
func New(cfg Config) (*Session, error) {
	if err := protocol.ValidName(cfg.ID); err != nil {
		return nil, fmt.Errorf("live session id: %w", err)
	}
	if len(cfg.Signers) < 1 || len(cfg.Signers) > 2 {
		return nil, fmt.Errorf("live session %s: %d signers, want 1 or 2", cfg.ID, len(cfg.Signers))
	}
	if cfg.Publisher == nil {
		return nil, fmt.Errorf("live session %s: no publisher", cfg.ID)
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, fmt.Errorf("live options: %w", err)
	}
	s := &Session{
		cfg:           cfg,
		opts:          cfg.Options,
		topic:         protocol.NewTopics(cfg.Site).Stream(cfg.ID),
		clock:         cfg.Clock,
		log:           cfg.Logger,
		loc:           cfg.Location,
		packetSamples: cfg.Options.packetSamples(),
		delay:         cfg.Options.Delay,
		newRecord:     createRecordFile,
	}
	if s.clock == nil {
		s.clock = SystemClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("session", cfg.ID)
	if s.loc == nil {
		s.loc = time.Local
	}
	return s, nil
}

// Topic is the MQTT topic the session's packets go to.
func (s *Session) Topic() string { return s.topic }

// Progress is the summary so far; safe to call from any goroutine.
func (s *Session) Progress() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// claim makes sure a Session runs once.
func (s *Session) claim() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used {
		return errors.New("live: a session runs once")
	}
	s.used = true
	return nil
}

// Run plays the Ogg Opus stream src (live speech, encoded by the CLI) until
// it ends, ctx ends or the session reaches its maximum length, and returns
// what was published. Before any sound was published it returns an error
// (ErrNotAStream, or ctx's) and publishes nothing.
//
// src is read on another goroutine, so that Run returns as soon as ctx
// ends; that goroutine ends when src's Read returns.
func (s *Session) Run(ctx context.Context, src io.Reader) (Summary, error) {
	if err := s.claim(); err != nil {
		return Summary{}, err
	}
	err := s.feed(ctx, src, nil)
	if s.start.IsZero() {
		// Nothing was published.
		switch {
		case ctx.Err() != nil:
			return Summary{}, ctx.Err()
		case err == nil:
			return Summary{}, fmt.Errorf("%w: the stream held no sound", ErrNotAStream)
		default:
			return Summary{}, fmt.Errorf("%w: %v", ErrNotAStream, err)
		}
	}
	switch {
	case err == nil:
		return s.finish(EndFinished, "the source ended"), nil
	case errors.Is(err, errMaxLength):
		return s.finish(EndMaxLength, "the session reached its maximum length of "+spoken(s.opts.MaxSession)), nil
	case ctx.Err() != nil:
		return s.finish(stopped(ctx)), nil
	default:
		return s.finish(EndSourceLost, fmt.Sprintf("the source stopped at %s: %v", s.clockTime(s.lastSeen), err)), nil
	}
}

// stopped says why ctx ended a session: its deadline (a session for a set
// time) finishes it; a cancel stops it, for the cause given, if any.
func stopped(ctx context.Context) (EndReason, string) {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		return EndFinished, "its time was over"
	case cause == nil || errors.Is(cause, context.Canceled):
		return EndStopped, "the session was stopped"
	}
	return EndStopped, "the session was stopped: " + cause.Error()
}

// errMaxLength ends a feed at Options.MaxSession.
var errMaxLength = errors.New("maximum session length reached")

// feed pumps one Ogg Opus stream into the timeline: nil when it ended
// cleanly, errMaxLength, ctx's error, or why the stream broke. Packets
// already taken are published before it returns (unless ctx ended).
// onPacket, if set, is called as each packet arrives.
func (s *Session) feed(ctx context.Context, src io.Reader, onPacket func()) error {
	rd := newPacketReader(src)
	defer rd.stop()
	head, err := rd.read(ctx)
	if err != nil {
		return err
	}
	if s.started && head.channels != s.channels {
		return fmt.Errorf("the source changed from %d to %d channels", s.channels, head.channels)
	}
	s.preSkip = head.preSkip
	s.segment = s.started
	for {
		if err := rd.request(ctx); err != nil {
			return err
		}
		p, err := rd.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if ferr := s.flush(ctx); ferr != nil {
				return ferr
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
		now := s.clock.Now()
		s.lastSeen = now
		if onPacket != nil {
			onPacket()
		}
		if !s.started {
			s.started = true
			s.channels = head.channels
			// The first real sample (after the encoder's pre-skip)
			// plays Delay after the first packet arrived; with an
			// announcement, the first packet after it plays Delay
			// after it arrives (the held ones take the pre-skip with
			// them). Play times go on the wire in whole microseconds,
			// as every Opus frame's duration is.
			lead := s.delay - samplesDuration(int64(s.preSkip))
			switch {
			case !s.cfg.StartAt.IsZero() && now.Add(s.delay).Before(s.cfg.StartAt):
				// Booked: the sound starts at StartAt, what comes before
				// is not played.
				s.holdUntil = s.cfg.StartAt.Add(-s.delay)
				lead = s.cfg.StartAt.Sub(now)
			case s.opts.Announce > 0:
				s.holdUntil = now.Add(s.opts.Announce)
				lead = s.opts.Announce + s.delay
			}
			s.origin = now.Add(lead).Truncate(time.Microsecond)
			if s.cfg.OnStart != nil {
				s.cfg.OnStart(s.origin, s.channels)
			}
		}
		if !s.holdUntil.IsZero() {
			if now.Before(s.holdUntil) {
				continue // the boxes are still learning of the session
			}
			// The first packet played: Delay after it arrived, and not
			// before the start announced (silence until then).
			s.holdUntil = time.Time{}
			if at := now.Add(s.delay).Truncate(time.Microsecond); at.After(s.origin) {
				s.origin = at
			}
		}
		if err := s.take(ctx, p.data, p.samples); err != nil {
			return err
		}
	}
}

// take adds a packet to the group, publishing the group first when the
// packet would not fit, and after when it is full.
func (s *Session) take(ctx context.Context, pkt []byte, samples int) error {
	fits := len(s.frames) < protocol.MaxStreamFrames &&
		len(s.arena)+2*len(s.frames)+len(pkt)+2 <= protocol.MaxStreamPacket-packetOverhead
	if !fits {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	if len(s.frames) == 0 {
		s.groupPos = s.pos
		s.arena = s.arena[:0]
	}
	// Frames point into the arena, which must not move under them.
	if cap(s.arena)-len(s.arena) < len(pkt) {
		arena := make([]byte, len(s.arena), 2*cap(s.arena)+len(pkt))
		copy(arena, s.arena)
		off := 0
		for i, f := range s.frames {
			s.frames[i] = arena[off : off+len(f) : off+len(f)]
			off += len(f)
		}
		s.arena = arena
	}
	off := len(s.arena)
	s.arena = append(s.arena, pkt...)
	s.frames = append(s.frames, s.arena[off:len(s.arena):len(s.arena)])
	s.groupSamples += samples
	s.pos += int64(samples)
	if s.groupSamples >= s.packetSamples {
		return s.flush(ctx)
	}
	return nil
}

// packetOverhead bounds a stream packet's header and two signatures.
const packetOverhead = 32 + 1 + 2*(8+64)

// stamp is the play time of timeline sample k.
func (s *Session) stamp(k int64) time.Time { return s.origin.Add(samplesDuration(k)) }

func samplesDuration(n int64) time.Duration {
	return time.Duration(n * int64(time.Second) / opusRate)
}

// flush publishes the group: moved forward if it came too late (a gap),
// not before Delay ahead of its play time (pacing a source faster than
// real time), signed, recorded.
func (s *Session) flush(ctx context.Context) error {
	if len(s.frames) == 0 {
		return nil
	}
	now := s.clock.Now()
	at := s.stamp(s.groupPos)
	switch {
	case s.segment:
		// A later source stream (a relay's ffmpeg started again): its
		// first real sample plays at the live point, after a gap.
		s.rebase(at, now.Add(s.delay-samplesDuration(int64(s.preSkip))))
		s.segment = false
	case at.Sub(now) < s.opts.MinLead:
		// A stall: the boxes would get this too late. They hear a gap
		// instead, never a drift.
		s.rebase(at, now.Add(s.delay))
	}
	at = s.stamp(s.groupPos)
	if !s.start.IsZero() && at.Sub(s.start) >= s.opts.MaxSession {
		s.frames = s.frames[:0]
		s.groupSamples = 0
		return errMaxLength
	}
	if wait := at.Add(-s.delay).Sub(now); wait > 0 {
		if err := s.clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
	if s.start.IsZero() {
		s.start = at
		s.openRecording()
	}
	s.publish(protocol.StreamPacket{Seq: s.seq, At: at, Channels: s.channels, Frames: s.frames})
	s.record(s.frames)
	end := s.stamp(s.groupPos + int64(s.groupSamples))
	s.mu.Lock()
	if s.sum.Start.IsZero() {
		s.sum.Start, s.sum.Channels = at, s.channels
	}
	s.sum.Frames += int64(len(s.frames))
	s.sum.End = end
	s.mu.Unlock()
	s.frames = s.frames[:0]
	s.groupSamples = 0
	return nil
}

// rebase moves the timeline so that the group playing at at plays at
// target instead, if that is later: by whole 20 ms, so that the recording
// can hold the gap as silence packets.
func (s *Session) rebase(at, target time.Time) {
	if !target.After(at) {
		return
	}
	gap := int64(target.Sub(at)) * opusRate / int64(time.Second)
	gap = (gap + silenceSamples - 1) / silenceSamples * silenceSamples
	// The group's first frame moves from timeline sample groupPos to
	// groupPos+gap, and plays gap later.
	s.origin = at.Add(samplesDuration(gap)).Add(-samplesDuration(s.groupPos + gap)).Truncate(time.Microsecond)
	s.groupPos += gap
	s.pos += gap
	s.recordGap(gap)
	s.mu.Lock()
	s.sum.Gaps++
	s.sum.GapTime += samplesDuration(gap)
	s.mu.Unlock()
	s.log.Info("live: the timeline moved forward", "gap", samplesDuration(gap), "lead", at.Sub(s.clock.Now()))
}

// publish signs p and hands it to the publisher.
func (s *Session) publish(p protocol.StreamPacket) {
	payload, err := protocol.EncodeStreamPacket(s.topic, p, s.cfg.Signers...)
	if err != nil {
		// Only a bug gets here: every frame came through OpusPackets.
		s.log.Error("live: encode stream packet", "seq", p.Seq, "err", err)
		return
	}
	s.seq++
	perr := s.cfg.Publisher.PublishStream(s.topic, payload)
	s.mu.Lock()
	s.sum.Packets++
	s.sum.Bytes += int64(len(payload))
	if perr != nil {
		s.sum.PublishErrors++
	}
	s.mu.Unlock()
	if perr != nil {
		// The first failure at once, then at most one line a minute.
		s.failing++
		if now := s.clock.Now(); s.failLogged.IsZero() || now.Sub(s.failLogged) >= time.Minute {
			s.log.Warn("live: publish stream packets", "seq", p.Seq, "failed", s.failing, "err", perr)
			s.failing, s.failLogged = 0, now
		}
	}
}

// finish sends the end packet, completes the recording and returns the
// summary.
func (s *Session) finish(why EndReason, reason string) Summary {
	s.mu.Lock()
	end := s.sum.End
	s.mu.Unlock()
	if !end.IsZero() {
		s.publish(protocol.StreamPacket{Seq: s.seq, At: end, Channels: s.channels, End: true})
	}
	path, rerr := s.closeRecording()
	s.mu.Lock()
	s.sum.Ended, s.sum.Reason = why, reason
	s.sum.Recording = path
	if rerr != nil {
		s.sum.RecordingError = rerr
	}
	sum := s.sum
	s.mu.Unlock()
	s.log.Info("live: session ended", "ended", why, "reason", reason, "packets", sum.Packets,
		"gaps", sum.Gaps, "restarts", sum.Restarts, "publish_errors", sum.PublishErrors)
	return sum
}

// spoken formats d for a sentence staff read: "60 s", "1.5 s", "90 min",
// "4 h".
func spoken(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	case d >= 2*time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// clockTime formats t for a sentence staff read.
func (s *Session) clockTime(t time.Time) string {
	if t.IsZero() {
		t = s.clock.Now()
	}
	return t.In(s.loc).Format("15:04:05")
}

// packetReader reads an Ogg Opus stream's packets on its own goroutine, one
// when asked, so that the session can give up on a source that blocks.
type packetReader struct {
	req  chan struct{}
	resp chan readResult
}

type readResult struct {
	data              []byte // valid until the next request
	samples           int
	channels, preSkip int // the headers, in the first result
	err               error
}

func newPacketReader(src io.Reader) *packetReader {
	r := &packetReader{req: make(chan struct{}), resp: make(chan readResult, 1)}
	go func() {
		op, err := audio.NewOpusPackets(src)
		if err != nil {
			r.resp <- readResult{err: err}
			return
		}
		r.resp <- readResult{channels: op.Channels(), preSkip: op.PreSkip()}
		for range r.req {
			p, n, err := op.Next()
			r.resp <- readResult{data: p, samples: n, err: err}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// request asks for the next packet.
func (r *packetReader) request(ctx context.Context) error {
	select {
	case r.req <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read waits for the headers (first) or the packet requested.
func (r *packetReader) read(ctx context.Context) (readResult, error) {
	select {
	case res := <-r.resp:
		return res, res.err
	case <-ctx.Done():
		return readResult{}, ctx.Err()
	}
}

// stop lets the goroutine end once its read returns.
func (r *packetReader) stop() { close(r.req) }
