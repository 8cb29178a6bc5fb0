package broadcaster

import (
	"errors"
	"fmt"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// streamPublishWait bounds how long a stream packet may wait to be handed
// to the broker connection; a packet later than that is worth nothing.
const streamPublishWait = time.Second

// Signers are the keys a live session's packets are signed with: the same
// as plans' (two while a rotation is under way).
func (s *Service) Signers() []*protocol.Signer {
	if s.opts.Keys == nil {
		return nil
	}
	return s.opts.Keys.Signers()
}

// Topics are the site's topic names.
func (s *Service) Topics() protocol.Topics { return s.topics }

// PublishStream sends one packet of a live session (already signed) at
// QoS 0, not retained: a lost or late packet is concealed by the boxes,
// never sent again.
func (s *Service) PublishStream(topic string, payload []byte) error {
	if s.client == nil {
		return errors.New("not connected to the broker")
	}
	tok := s.client.Publish(topic, 0, false, payload)
	if !tok.WaitTimeout(streamPublishWait) {
		s.count.streamFailed.Add(1)
		return fmt.Errorf("publish to %s: the broker connection is not taking packets", topic)
	}
	if err := tok.Error(); err != nil {
		s.count.streamFailed.Add(1)
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	s.count.streamPackets.Add(1)
	s.count.streamBytes.Add(int64(len(payload)))
	return nil
}
