package broadcaster

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// handle ingests one message from a box. Bad messages are logged and
// dropped; they never change what is stored.
func (s *Service) handle(_ paho.Client, m paho.Message) {
	kind, id, err := s.topics.Parse(m.Topic())
	if err != nil {
		s.log.Warn("message on an unknown topic", "topic", m.Topic())
		return
	}
	log := s.log.With("device", id)
	if len(m.Payload()) == 0 {
		return // a cleared retained message
	}
	now := s.opts.Now()
	switch kind {
	case protocol.TopicDeviceState:
		var st protocol.State
		if _, err := protocol.Decode(m.Payload(), s.opts.Site, protocol.KindState, &st); err != nil {
			log.Warn("ignored a bad state message", "err", err)
			return
		}
		select {
		case s.states <- store.DeviceState{Device: id, State: st, Received: now}:
		case <-s.ctx.Done():
		}
	case protocol.TopicDeviceEvents:
		var ev protocol.Event
		if _, err := protocol.Decode(m.Payload(), s.opts.Site, protocol.KindEvent, &ev); err != nil {
			log.Warn("ignored a bad event message", "err", err)
			return
		}
		if ev.Type == protocol.EventRejected {
			log.Warn("a box rejected a message not from this controller", "reason", ev.Reason)
			err := s.store.AddAudit(s.ctx, store.AuditEntry{At: now, Actor: "device:" + id, Action: store.AuditRejected, Details: ev.Reason})
			if err != nil {
				log.Error("audit a rejection", "err", err)
			}
			return
		}
		select {
		case s.events <- store.DeviceEvent{Device: id, Event: ev, Received: now}:
		case <-s.ctx.Done():
		}
	case protocol.TopicTrigger:
		if s.opts.OnTrigger != nil {
			s.opts.OnTrigger(id, m.Payload())
		}
	case protocol.TopicTimeRequest:
		var req protocol.TimeRequest
		if _, err := protocol.Decode(m.Payload(), s.opts.Site, protocol.KindTimeRequest, &req); err != nil {
			log.Warn("ignored a bad time request", "err", err)
			return
		}
		resp := protocol.TimeResponse{ID: req.ID, Sent: req.Sent, Received: now.UTC()}
		topic := s.topics.TimeResponse(id)
		if payload, err := s.encode(topic, protocol.KindTimeResponse, now, resp); err == nil {
			s.client.Publish(topic, 0, false, payload) // best effort: the box asks again
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
