package device

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// The box obeys only the controller: every plan, config and time answer
// must carry a signature by a key it trusts (protocol.Verify) over the
// topic it came on, and plans and configs a sequence newer than the last
// one accepted on that topic, so that a genuine message captured and
// replayed later changes nothing. What is refused is reported to the
// controller as a "rejected" event (at most one per topic per
// rejectReportEvery), which the controller writes to its audit log.

// rejectReportEvery bounds the rejection events per topic, so a flood of
// forged messages does not become a flood of events.
const rejectReportEvery = time.Minute

// trust holds the keys the box trusts and the last sequence accepted per
// topic. It is used on paho's goroutine and updated by the loop.
type trust struct {
	mu   sync.Mutex
	keys protocol.Keyring
	last map[string]uint64
}

// errDuplicate marks a message already accepted (a retained message
// delivered again): it is dropped without a report.
var errDuplicate = errors.New("already accepted")

func newTrust(keys protocol.Keyring) *trust { return &trust{keys: keys, last: map[string]uint64{}} }

// setKeys replaces the trusted keys (a signed config announced new ones)
// and reports whether they changed.
func (t *trust) setKeys(k protocol.Keyring) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := len(k) != len(t.keys)
	for id := range k {
		if _, ok := t.keys[id]; !ok {
			changed = true
		}
	}
	t.keys = k
	return changed
}

// keyring returns the keys trusted now.
func (t *trust) keyring() protocol.Keyring {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys
}

// accepted records that seq was accepted on topic: once a message passed
// every check, and at start from the state file.
func (t *trust) accepted(topic string, seq uint64) {
	t.mu.Lock()
	t.last[topic] = max(t.last[topic], seq)
	t.mu.Unlock()
}

// check decodes a message on topic into v if a trusted key signed it and,
// when ordered, its sequence is newer than the last accepted there (the
// caller calls accepted once it has checked the rest). The error wraps
// protocol.ErrForged for a forgery, errReplay for an older sequence,
// errDuplicate for a repeat, otherwise protocol.ErrBadMessage.
func (t *trust) check(topic string, data []byte, site string, kind protocol.Kind, ordered bool, v any) (protocol.Envelope, error) {
	t.mu.Lock()
	keys := t.keys
	t.mu.Unlock()
	e, err := protocol.DecodeSigned(data, topic, site, kind, keys, v)
	if err != nil || !ordered {
		return e, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch last := t.last[topic]; {
	case e.Seq == last:
		return e, errDuplicate
	case e.Seq < last:
		return e, fmt.Errorf("%w: sequence %d is older than %d, the last accepted (a replay)", errReplay, e.Seq, last)
	}
	return e, nil
}

var errReplay = errors.New("replayed")

// rejected reports whether err means the message was not the
// controller's: forged or replayed.
func rejected(err error) bool {
	return errors.Is(err, protocol.ErrForged) || errors.Is(err, errReplay)
}

// trustedKeys is what the box trusts at start: the keys of the last signed
// config when the config file still names the keys it was provisioned with
// (a rotation may have moved on since), else the file's keys (the box was
// provisioned again).
func trustedKeys(cfg Config, st *savedState) (protocol.Keyring, []string) {
	keys := cfg.ControllerKeys
	if st.Config != nil && len(st.Config.Config.ControllerKeys) > 0 && slices.Equal(st.ProvisionedKeys, cfg.ControllerKeys) {
		keys = st.Config.Config.ControllerKeys
	}
	k, err := protocol.NewKeyring(keys...)
	if err != nil { // the state file's keys were checked when accepted
		k, _ = protocol.NewKeyring(cfg.ControllerKeys...)
		keys = cfg.ControllerKeys
	}
	return k, keys
}

// reportRejection sends a rejected event for topic, at most once per
// rejectReportEvery; it runs on the loop.
func (a *Agent) reportRejection(topic, reason string) {
	now := a.clock.Now()
	if last, ok := a.rejectedAt[topic]; ok && now.Sub(last) < rejectReportEvery && now.After(last) {
		return
	}
	a.rejectedAt[topic] = now
	a.emit(protocol.Event{Type: protocol.EventRejected, At: now.UTC(), Reason: topic + ": " + reason})
}
