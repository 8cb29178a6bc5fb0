package broadcaster_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// lockedBuffer is a log's output, written from the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// TestBrokerLogsRefusalsInOneLine: a box cut off for publishing on
// another box's topic, and a box with a wrong password, each cost one
// short log line naming the client, its address and the reason, never a
// dump of the packet or its payload.
func TestBrokerLogsRefusalsInOneLine(t *testing.T) {
	var out lockedBuffer
	e := newEnvLog(t, slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := e.box(t, "loa-1")
	secret := "SECRET-PAYLOAD-" + strings.Repeat("x", 200)
	forged := encode(t, protocol.KindState, protocol.State{Online: true, State: protocol.StateError, Error: secret})
	c.Publish(topics.DeviceState("loa-2"), 1, true, forged).WaitTimeout(2 * time.Second)
	refusal := func() []string {
		var found []string
		for _, l := range out.lines() {
			if strings.Contains(l, "not_authorized") {
				found = append(found, l)
			}
		}
		return found
	}
	eventually(t, "the refusal logged", func() bool { return len(refusal()) > 0 })
	if _, err := e.dial("loa-1", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	eventually(t, "the wrong password logged", func() bool { return strings.Contains(strings.Join(out.lines(), "\n"), "bad_credentials") })

	got := refusal()
	if len(got) != 1 {
		t.Fatalf("the refusal took %d lines, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{"loa-1 (client id test-loa-1-", "127.0.0.1", "Publish " + topics.DeviceState("loa-2")} {
		if !strings.Contains(got[0], want) {
			t.Errorf("refusal line lacks %q: %s", want, got[0])
		}
	}
	for _, l := range out.lines() {
		if strings.Contains(l, "SECRET-PAYLOAD") || strings.Contains(l, "pk=") || strings.Contains(l, "error processing packet") || len(l) > 400 {
			t.Errorf("log line dumps a packet (%d bytes): %.300s", len(l), l)
		}
	}
}
