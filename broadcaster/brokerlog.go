package broadcaster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiProcessError is the message mochi logs a refused packet with, the
// packet whole in its "pk" attribute: every field and the payload as
// bytes, 3 kB and more a line.
const mochiProcessError = "error processing packet"

// brokerLog is the handler of mochi's own log. It drops mochi's line for a
// refused packet, after handing the packet to refused (the limit hook logs
// the refusal in one line when the client is cut off), and shortens any
// other packet attribute (mochi's debug lines) to its type, topic and size.
type brokerLog struct {
	slog.Handler
	refused func(clientID string, pk packets.Packet)
}

func (h brokerLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == mochiProcessError {
		var client string
		var pk packets.Packet
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "client":
				client = a.Value.String()
			case "pk":
				pk, _ = a.Value.Any().(packets.Packet)
			}
			return true
		})
		h.refused(client, pk)
		return nil
	}
	short := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := a.Value.Any().(packets.Packet); ok {
			a = slog.String(a.Key, packetSummary(pk))
		}
		short.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, short)
}

func (h brokerLog) WithAttrs(as []slog.Attr) slog.Handler {
	return brokerLog{h.Handler.WithAttrs(as), h.refused}
}

func (h brokerLog) WithGroup(name string) slog.Handler {
	return brokerLog{h.Handler.WithGroup(name), h.refused}
}

// packetSummary names a packet in a few words: "Publish loa/x/device/b/state
// (212 bytes)".
func packetSummary(pk packets.Packet) string {
	s := packets.PacketNames[pk.FixedHeader.Type]
	if s == "" {
		s = fmt.Sprintf("packet type %d", pk.FixedHeader.Type)
	}
	if pk.TopicName != "" {
		s += " " + pk.TopicName
	}
	if n := len(pk.Payload); n > 0 {
		s += fmt.Sprintf(" (%d bytes)", n)
	}
	return s
}

// refusals remembers, per client, the packet mochi last refused, until the
// client's connection ends (a refused packet ends it).
type refusals struct {
	mu   sync.Mutex
	last map[string]string // client id → packetSummary
	// ended are connections whose end the limit hook logged already (or
	// found clean), so connEnded leaves them out.
	ended map[net.Conn]bool
}

func (r *refusals) add(client string, pk packets.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.last) < 10_000 { // bounded whatever mochi does
		r.last[client] = packetSummary(pk)
	}
}

func (r *refusals) take(client string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.last[client]
	delete(r.last, client)
	return s
}

func (r *refusals) markEnded(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended[c] = true
}

func (r *refusals) wasEnded(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := r.ended[c]
	delete(r.ended, c)
	return ok
}

// OnDisconnect logs, in one line, why a box's session ended in an error:
// its user (the box id), client id, address, the reason and the packet
// refused, if any.
func (h *limitHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	refused := h.refusals.take(cl.ID)
	if err == nil || cl.Net.Inline || cl.Net.Conn == nil {
		return
	}
	h.refusals.markEnded(cl.Net.Conn)
	reason := dropConnError
	var code packets.Code
	if errors.As(err, &code) {
		reason = strings.ReplaceAll(code.Reason, " ", "_")
	}
	if refused != "" {
		err = fmt.Errorf("%w: refused %s", err, refused)
	}
	h.conns.Add(fmt.Sprintf("%s (client id %s) from %s", cl.Properties.Username, cl.ID, hostOf(cl.Net.Remote)), reason, err)
}
