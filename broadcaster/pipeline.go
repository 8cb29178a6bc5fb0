package broadcaster

import (
	"errors"
	"fmt"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxInflight bounds the retained messages published and not yet confirmed
// by the broker.
const maxInflight = 256

// pipeline publishes retained QoS 1 messages without waiting for each
// confirmation in turn: one round trip per plan made 10,000 plans take
// seconds, and far longer on a broker across a network. Confirmations are
// awaited in order, at most maxInflight behind. After the first failure
// (the broker is gone) the rest are not sent: the next replan, or the
// republish after a reconnect, sends them.
type pipeline struct {
	client  paho.Client
	queue   []inflight
	err     error
	skipped int
}

type inflight struct {
	tok   paho.Token
	topic string
	done  func(error)
}

func (s *Service) newPipeline() *pipeline { return &pipeline{client: s.client} }

// publish sends payload retained on topic; done runs with the outcome once
// the broker has confirmed it (or it failed, or was not sent).
func (p *pipeline) publish(topic string, payload []byte, done func(error)) {
	if len(p.queue) >= maxInflight {
		p.settle(p.queue[0])
		p.queue = p.queue[1:]
	}
	if p.err != nil {
		p.skipped++
		done(p.err)
		return
	}
	p.queue = append(p.queue, inflight{p.client.Publish(topic, 1, true, payload), topic, done})
}

func (p *pipeline) settle(m inflight) {
	if p.err != nil && !m.tok.WaitTimeout(0) {
		// Already failing: do not wait 10 s more for each message.
		m.done(p.err)
		return
	}
	err := waitToken(m.tok)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("publish %s: %w", m.topic, err)
	}
	m.done(err)
}

// wait settles every message still in flight and returns the first failure.
func (p *pipeline) wait() error {
	for _, m := range p.queue {
		p.settle(m)
	}
	p.queue = nil
	if p.err != nil && p.skipped > 0 {
		return errors.Join(p.err, fmt.Errorf("%d more messages not sent", p.skipped))
	}
	return p.err
}
