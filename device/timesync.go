package device

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Time sync: the box estimates the offset between its clock and the
// controller's over the time topic, NTP-style but simpler. Each request
// carries the box's send time; the controller answers with its receive
// time. With t0 the send time, rtt the round trip measured on the box's
// monotonic clock and r the controller's time,
//
//	offset = r − (t0 + rtt/2)
//
// which is exact when both legs take as long. Legs are unequal mostly when a
// round trip is slow (a queue somewhere), so only the fastest samples count
// and the estimate is their median. Every schedule decision then uses the
// controller's time: local clock + offset (syncedClock).
const (
	// syncBurst requests go out, syncSpacing apart, after every connect and
	// every syncInterval.
	syncBurst    = 8
	syncSpacing  = 100 * time.Millisecond
	syncInterval = time.Minute
	// syncRetry is the interval until a first estimate is made (the answers
	// of a burst sent before the subscription took effect are lost).
	syncRetry = 5 * time.Second
	// syncKeep is how many recent samples the estimate uses.
	syncKeep = 32
	// syncMinSamples answers are needed before the estimate is used.
	syncMinSamples = 3
	// syncMaxRTT drops answers slower than this: they say little about the
	// offset, or answer a request of an earlier connection.
	syncMaxRTT = 5 * time.Second
	// syncLogStep: offset changes larger than this are logged.
	syncLogStep = 50 * time.Millisecond
)

// syncedClock is the controller's time as the box estimates it: the base
// clock plus the measured offset (zero until the first estimate).
type syncedClock struct {
	base   Clock
	offset atomic.Int64 // nanoseconds
	synced atomic.Bool
}

var _ Clock = (*syncedClock)(nil)

// Now returns the base clock's time corrected by the offset.
func (c *syncedClock) Now() time.Time { return c.base.Now().Add(c.Offset()) }

// NewTimer returns a timer of the base clock: durations need no correction.
func (c *syncedClock) NewTimer(d time.Duration) Timer { return c.base.NewTimer(d) }

// Offset is what is added to the base clock.
func (c *syncedClock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Synced reports whether an estimate from the controller is in use.
func (c *syncedClock) Synced() bool { return c.synced.Load() }

func (c *syncedClock) set(d time.Duration) {
	c.offset.Store(int64(d))
	c.synced.Store(true)
}

// timeSample is one answered request.
type timeSample struct {
	offset time.Duration
	rtt    time.Duration
}

// estimateOffset returns the median offset of the fastest round trips among
// samples: those within twice the fastest one (plus 1 ms for timer
// granularity), and never more than the fastest half unless fewer than
// syncMinSamples would remain. ok is false with fewer than syncMinSamples
// samples.
func estimateOffset(samples []timeSample) (offset time.Duration, ok bool) {
	if len(samples) < syncMinSamples {
		return 0, false
	}
	s := slices.Clone(samples)
	slices.SortFunc(s, func(x, y timeSample) int { return int(x.rtt - y.rtt) })
	limit := 2*s[0].rtt + time.Millisecond
	n := 0
	for n < len(s) && s[n].rtt <= limit {
		n++
	}
	n = min(n, max(len(s)/2, syncMinSamples))
	kept := make([]time.Duration, n)
	for i := range kept {
		kept[i] = s[i].offset
	}
	slices.Sort(kept)
	if n%2 == 1 {
		return kept[n/2], true
	}
	return (kept[n/2-1] + kept[n/2]) / 2, true
}

// timeSync sends time requests and turns the answers into the clock's
// offset. Requests go from its own goroutine (run); answers arrive on
// paho's goroutine (onResponse).
type timeSync struct {
	clock   *syncedClock
	changed chan struct{} // signalled when the offset moved by more than syncLogStep, or first set

	mu      sync.Mutex
	nextID  uint64
	sent    map[uint64]sentRequest
	samples []timeSample // newest last, at most syncKeep
}

// sentRequest is when a request left, on both clocks.
type sentRequest struct {
	wall time.Time // the base clock, as written in the request
	mono time.Time // time.Now(), for the round trip
}

func newTimeSync(c *syncedClock) *timeSync {
	return &timeSync{clock: c, changed: make(chan struct{}, 1), sent: map[uint64]sentRequest{}}
}

// request records a new request and returns its body.
func (s *timeSync) request() protocol.TimeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	r := sentRequest{wall: s.clock.base.Now(), mono: time.Now()}
	// Requests whose answers never came are forgotten.
	for id, old := range s.sent {
		if r.mono.Sub(old.mono) > syncMaxRTT {
			delete(s.sent, id)
		}
	}
	s.sent[s.nextID] = r
	return protocol.TimeRequest{ID: s.nextID, Sent: r.wall.UTC()}
}

// onResponse takes an answer received at the monotonic time at. It returns
// the new offset and whether it is in use.
func (s *timeSync) onResponse(r protocol.TimeResponse, at time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.sent[r.ID]
	if !ok || !req.wall.Equal(r.Sent) {
		return s.clock.Offset(), s.clock.Synced() // unknown, answered twice, or of another run
	}
	delete(s.sent, r.ID)
	rtt := at.Sub(req.mono)
	if rtt < 0 || rtt > syncMaxRTT {
		return s.clock.Offset(), s.clock.Synced()
	}
	s.samples = append(s.samples, timeSample{offset: r.Received.Sub(req.wall.Add(rtt / 2)), rtt: rtt})
	if len(s.samples) > syncKeep {
		s.samples = slices.Delete(s.samples, 0, len(s.samples)-syncKeep)
	}
	off, ok := estimateOffset(s.samples)
	if !ok {
		return s.clock.Offset(), s.clock.Synced()
	}
	old, was := s.clock.Offset(), s.clock.Synced()
	s.clock.set(off)
	if d := off - old; !was || d > syncLogStep || d < -syncLogStep {
		signal(s.changed)
	}
	return off, true
}

// runTimeSync sends a burst of requests after every connect (kick) and
// every syncInterval (syncRetry until synced), until ctx ends.
func (a *Agent) runTimeSync(ctx context.Context, kick <-chan struct{}) {
	t := time.NewTimer(syncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		for i := range syncBurst {
			if i > 0 && !sleepCtx(ctx, syncSpacing) {
				return
			}
			if !a.client.IsConnectionOpen() {
				break // the next connect kicks again
			}
			a.sendTimeRequest()
		}
		if a.clock.Synced() {
			t.Reset(syncInterval)
		} else {
			t.Reset(syncRetry)
		}
	}
}

// sendTimeRequest publishes one request, QoS 0: a late answer is worthless,
// so a lost one is not resent.
func (a *Agent) sendTimeRequest() {
	req := a.sync.request()
	b, err := protocol.Encode(protocol.KindTimeRequest, a.cfg.Site, req.ID, req.Sent, req)
	if err != nil {
		a.log.Error("encode time request", keyErr, err)
		return
	}
	a.client.Publish(a.topics.TimeRequest(a.cfg.ID), 0, false, b)
}

// onTimeResponse runs on paho's goroutine. Answers are signed like plans
// (a forged clock would move every start); a replayed one matches no
// outstanding request.
func (a *Agent) onTimeResponse(topic string, payload []byte) {
	at := time.Now()
	var r protocol.TimeResponse
	if _, err := a.trust.check(topic, payload, a.cfg.Site, protocol.KindTimeResponse, false, &r); err != nil {
		a.refuse(a.log.With(keyTopic, topic), "time response", topic, err, false, len(payload))
		return
	}
	old := a.clock.Offset()
	off, ok := a.sync.onResponse(r, at)
	if ok && (off-old > syncLogStep || old-off > syncLogStep) {
		a.log.Info("clock offset to the controller", "offset", off, "was", old)
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
