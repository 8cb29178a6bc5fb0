package device

import (
	"math/rand/v2"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// boxState is what the box is doing, as the heartbeat reports it.
func (a *Agent) boxState(now time.Time) string {
	switch {
	case !a.plausible(now):
		return protocol.StateWaitingForTime
	case a.queue.state != queueIdle:
		return protocol.StatePlaying
	case a.hasError():
		return protocol.StateError
	}
	return protocol.StateIdle
}

// currentState builds the heartbeat body.
func (a *Agent) currentState(now time.Time) protocol.State {
	st := protocol.State{
		Online:     true,
		State:      a.boxState(now),
		Volume:     a.volume(),
		UptimeSec:  int64(time.Since(a.started) / time.Second),
		Version:    Version,
		CacheBytes: a.cacheBytes,
		At:         now.UTC(),
	}
	if a.clock.Synced() {
		ms := a.clock.Offset().Milliseconds()
		st.ClockOffsetMS = &ms
	}
	if a.queue.state != queueIdle {
		st.Playing = a.queue.current.item.ID
	}
	st.Arch = a.arch
	if a.updStatus != nil {
		u := *a.updStatus
		st.Update = &u
	}
	st.TimeSource = a.timeSourceName()
	st.Problems = a.problemList()
	st.Error = errorLine(st.Problems)
	return st
}

// heartbeat publishes the state when it changed, and every heartbeat
// interval (±10 %) anyway.
func (a *Agent) heartbeat(now time.Time) {
	st := a.currentState(now)
	changed := st.State != a.published.State || st.Playing != a.published.Playing ||
		st.Volume != a.published.Volume || st.Error != a.published.Error || !sameUpdate(st.Update, a.published.Update) ||
		problemsKey(st.Problems) != problemsKey(a.published.Problems) || st.TimeSource != a.published.TimeSource
	interval := a.heartbeatInterval()
	// A clock step (NTP) can leave nextBeat far off: then beat now.
	due := !a.haveBeat || !now.Before(a.nextBeat) || a.nextBeat.Sub(now) > 2*interval
	if changed || due {
		a.publishState(now)
	}
}

// heartbeatInterval is the controller's choice if it made one, else the
// configured one.
func (a *Agent) heartbeatInterval() time.Duration {
	if a.config != nil && a.config.Config.HeartbeatSec > 0 {
		return time.Duration(a.config.Config.HeartbeatSec) * time.Second
	}
	return a.cfg.Heartbeat
}

// publishState sends the state now (after a change or on connect).
func (a *Agent) publishState(now time.Time) {
	a.publish(a.currentState(now))
	a.haveBeat = true
	a.nextBeat = now.Add(jitter(a.heartbeatInterval()))
}

func (a *Agent) publish(st protocol.State) {
	if st.State != a.published.State {
		a.log.Info("state", keyState, st.State, "playing", st.Playing)
	}
	a.published = st
	if !a.client.IsConnectionOpen() {
		// Offline: do not pile stale heartbeats into the session; the state
		// goes out on connect.
		return
	}
	st.TemperatureC = a.temperature()
	b, err := a.encodeState(st)
	if err != nil {
		a.log.Error("encode state", keyErr, err)
		return
	}
	a.out.push(op{kind: opPublish, topics: []string{a.topics.DeviceState(a.cfg.ID)}, payload: b, retained: true})
}

func (a *Agent) encodeState(st protocol.State) ([]byte, error) {
	return protocol.Encode(protocol.KindState, a.cfg.Site, a.nextSeq(), st.At, st)
}

// jitter spreads d by ±10 %, so a village of boxes does not beat in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

func sameUpdate(x, y *protocol.UpdateStatus) bool {
	return x == nil && y == nil || x != nil && y != nil && *x == *y
}
