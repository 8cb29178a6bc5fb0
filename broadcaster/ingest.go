package broadcaster

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// inbound is a message from a box, not yet decoded.
type inbound struct {
	topic   string
	payload []byte
}

// receive takes a message from the embedded broker (subscribeInline) and
// queues it for decodeLoop; while the queue is full it holds back the box
// that sent it. Decoding here, on the box's connection goroutine, made every
// one of those goroutines' stacks grow: 50 MB at 1,000 boxes.
func (s *Service) receive(topic string, payload []byte) {
	select {
	case s.inbox <- inbound{topic, payload}:
	case <-s.ctx.Done():
	}
}

// decodeLoop ingests the queued messages in the order they came, until ctx
// is done.
func (s *Service) decodeLoop() {
	defer s.wg.Done()
	for {
		select {
		case m := <-s.inbox:
			s.ingest(m.topic, m.payload)
		case <-s.ctx.Done():
			return
		}
	}
}

// handle ingests one message from a box, through an external broker.
func (s *Service) handle(_ paho.Client, m paho.Message) { s.ingest(m.Topic(), m.Payload()) }

// ingest takes one message from a box. Bad messages are logged and dropped;
// they never change what is stored. It may block while the ingestion loop
// is behind, which holds back the sender rather than losing its message.
func (s *Service) ingest(topic string, payload []byte) {
	kind, id, err := s.topics.Parse(topic)
	if err != nil {
		s.log.Warn("message on an unknown topic", "topic", topic)
		s.count.reject(rejectUnknownTopic)
		return
	}
	log := s.log.With("device", id)
	if len(payload) == 0 {
		return // a cleared retained message
	}
	now := s.opts.Now()
	switch kind {
	case protocol.TopicDeviceState:
		var st protocol.State
		if _, err := protocol.Decode(payload, s.opts.Site, protocol.KindState, &st); err != nil {
			log.Warn("ignored a bad state message", "err", err)
			s.count.reject(rejectBadState)
			return
		}
		s.boxes.seen(id, st.Online, now)
		select {
		case s.states <- store.DeviceState{Device: id, State: st, Received: now}:
		case <-s.ctx.Done():
		}
	case protocol.TopicDeviceEvents:
		evs, err := protocol.DecodeEvents(payload, s.opts.Site)
		if err != nil {
			log.Warn("ignored a bad event message", "err", err)
			s.count.reject(rejectBadEvents)
			return
		}
		for _, ev := range evs {
			if ev.Type == protocol.EventRejected {
				log.Warn("a box rejected a message not from this controller", "reason", ev.Reason)
				s.count.boxRejections.Add(1)
				err := s.store.AddAudit(s.ctx, store.AuditEntry{At: now, Actor: "device:" + id, Action: store.AuditRejected, Details: ev.Reason})
				if err != nil {
					log.Error("audit a rejection", "err", err)
				}
				continue
			}
			select {
			case s.events <- store.DeviceEvent{Device: id, Event: ev, Received: now}:
			case <-s.ctx.Done():
				return
			}
		}
	case protocol.TopicTrigger:
		if s.opts.OnTrigger != nil {
			s.opts.OnTrigger(id, payload)
		}
	case protocol.TopicTimeRequest:
		var req protocol.TimeRequest
		if _, err := protocol.Decode(payload, s.opts.Site, protocol.KindTimeRequest, &req); err != nil {
			log.Warn("ignored a bad time request", "err", err)
			s.count.reject(rejectBadTimeReq)
			return
		}
		resp := protocol.TimeResponse{ID: req.ID, Sent: req.Sent, Received: now.UTC()}
		to := s.topics.TimeResponse(id)
		if answer, err := s.encode(to, protocol.KindTimeResponse, now, resp); err == nil {
			s.client.Publish(to, 0, false, answer) // best effort: the box asks again
		}
	}
}

// Batching: a commune's boxes answer an announcement together, and a
// province's thousands of boxes send a heartbeat every minute, so events and
// states are written in batches, one transaction each, instead of one
// transaction per message.
const (
	ingestBatch = 256
	ingestDelay = 20 * time.Millisecond
)

// ingestLoop writes events and states in batches until ctx is done, then
// writes what is left.
func (s *Service) ingestLoop() {
	defer s.wg.Done()
	var events []store.DeviceEvent
	var states []store.DeviceState
	var flushAt <-chan time.Time
	flush := func() {
		if len(events) > 0 {
			unknown, err := s.store.RecordEvents(context.Background(), events)
			if err != nil {
				s.log.Error("store events", "events", len(events), "err", err)
			}
			if unknown > 0 {
				s.log.Warn("events from unknown devices ignored", "events", unknown)
			}
			s.count.events.Add(int64(len(events)))
			s.count.answered(events)
			s.count.eventBatches.Add(1)
		}
		if len(states) > 0 {
			if _, err := s.store.RecordStates(context.Background(), states); err != nil {
				s.log.Error("store states", "states", len(states), "err", err)
			}
			s.count.states.Add(int64(len(states)))
			s.count.stateBatches.Add(1)
		}
		events, states, flushAt = events[:0], states[:0], nil
	}
	queued := func() {
		if len(events)+len(states) >= ingestBatch {
			flush()
		} else if flushAt == nil {
			flushAt = time.After(ingestDelay)
		}
	}
	for {
		select {
		case ev := <-s.events:
			events = append(events, ev)
			queued()
		case st := <-s.states:
			states = append(states, st)
			queued()
		case <-flushAt:
			flush()
		case <-s.ctx.Done():
			for {
				select {
				case ev := <-s.events:
					events = append(events, ev)
				case st := <-s.states:
					states = append(states, st)
				default:
					flush()
					return
				}
			}
		}
	}
}
