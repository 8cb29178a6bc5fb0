package broadcaster

import (
	"context"
	"errors"
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
		if err := s.store.RecordState(s.ctx, id, st, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Error("store state", "err", err)
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

// Event batching: a commune's boxes answer an announcement together, so
// events are written in batches, one transaction each, instead of one
// transaction per event.
const (
	eventBatch = 256
	eventDelay = 20 * time.Millisecond
)

// ingestLoop writes events in batches until ctx is done, then writes what
// is left.
func (s *Service) ingestLoop() {
	defer s.wg.Done()
	var batch []store.DeviceEvent
	var flushAt <-chan time.Time
	flush := func() {
		if len(batch) == 0 {
			return
		}
		unknown, err := s.store.RecordEvents(context.Background(), batch)
		if err != nil {
			s.log.Error("store events", "events", len(batch), "err", err)
		}
		if unknown > 0 {
			s.log.Warn("events from unknown devices ignored", "events", unknown)
		}
		batch, flushAt = batch[:0], nil
	}
	for {
		select {
		case ev := <-s.events:
			batch = append(batch, ev)
			if len(batch) >= eventBatch {
				flush()
			} else if flushAt == nil {
				flushAt = time.After(eventDelay)
			}
		case <-flushAt:
			flush()
		case <-s.ctx.Done():
			for {
				select {
				case ev := <-s.events:
					batch = append(batch, ev)
				default:
					flush()
					return
				}
			}
		}
	}
}
