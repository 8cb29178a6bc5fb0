package device

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/testnet"
	"github.com/loa-commune/loa/protocol"
)

// TestConnectsToTheNextBroker: a box given several brokers (the nodes of a
// cluster) whose first is down connects to the next one and follows its
// plan there.
func TestConnectsToTheNextBroker(t *testing.T) {
	ctl, ms, broker := setup(t)
	m := makeMedia(t, 440, 500*time.Millisecond)
	ms.add(m)
	it := item("news-1", t0.Add(time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, it)

	down := "tcp://" + testnet.FreePort(t) // nothing listens there
	startBox(t, boxOpts{broker: down + "," + broker, server: ms.URL})
	ctl.waitEvent(it.ID, protocol.EventReady)
	ctl.waitState(protocol.StateIdle)
}
