package broadcaster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/protocol"
)

// TokenLookup returns the stored token hash of a device.
type TokenLookup func(ctx context.Context, deviceID string) (string, error)

// GroupLookup returns the groups of a device.
type GroupLookup func(ctx context.Context, deviceID string) ([]string, error)

// embeddedBroker is mochi-mqtt listening on TCP, allowing only the
// controller and registered boxes.
type embeddedBroker struct {
	server   *mqtt.Server
	listener *listeners.TCP
	access   *accessHook
}

func startBroker(addr string, topics protocol.Topics, controllerSecret string, lookup TokenLookup, groups GroupLookup, log *slog.Logger) (*embeddedBroker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0 // retained plans must not expire
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log.With("part", "broker"), InlineClient: false})
	access := &accessHook{topics: topics, secret: controllerSecret, lookup: lookup, groups: groups, log: log, member: map[string]map[string]bool{}}
	if err := srv.AddHook(access, nil); err != nil {
		return nil, fmt.Errorf("broker hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("listen for MQTT on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	return &embeddedBroker{server: srv, listener: l, access: access}, nil
}

func (b *embeddedBroker) Addr() string { return b.listener.Address() }

func (b *embeddedBroker) Close() error { return b.server.Close() }

// accessHook authenticates clients and keeps each box to its own topics.
type accessHook struct {
	mqtt.HookBase
	topics protocol.Topics
	secret string
	lookup TokenLookup
	groups GroupLookup
	log    *slog.Logger

	// member caches each box's groups: mochi checks every delivery, and a
	// plan goes to every box at once. forget drops what changed.
	mu     sync.Mutex
	member map[string]map[string]bool
}

// inGroup reports whether box id belongs to group g.
func (h *accessHook) inGroup(id, g string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.member[id]
	if !ok {
		groups, err := h.groups(context.Background(), id)
		if err != nil {
			return false // unknown box, or the store failed: refuse, retry next time
		}
		m = map[string]bool{}
		for _, x := range groups {
			m[x] = true
		}
		h.member[id] = m
	}
	return m[g]
}

// forget drops the cached groups of ids (all boxes when none).
func (h *accessHook) forget(ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(ids) == 0 {
		clear(h.member)
	}
	for _, id := range ids {
		delete(h.member, id)
	}
}

func (h *accessHook) ID() string { return "loa-access" }

func (h *accessHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, pass := string(pk.Connect.Username), string(pk.Connect.Password)
	if user == auth.ControllerUser {
		return auth.Equal(pass, h.secret)
	}
	if protocol.ValidName(user) != nil {
		h.log.Warn("broker refused a client with a bad username", "remote", cl.Net.Remote)
		return false
	}
	hash, err := h.lookup(context.Background(), user)
	if err != nil || !auth.Check(pass, hash) {
		h.log.Warn("broker refused a client", "device", user, "remote", cl.Net.Remote)
		return false
	}
	return true
}

func (h *accessHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if user == auth.ControllerUser {
		return true
	}
	kind, arg, err := h.topics.Parse(topic)
	if err != nil {
		return false
	}
	if write {
		switch kind {
		case protocol.TopicDeviceState, protocol.TopicDeviceEvents, protocol.TopicTimeRequest, protocol.TopicTrigger:
			return arg == user // a sensor is registered like a box; its id is its trigger source
		}
		return false
	}
	switch kind {
	case protocol.TopicPlanAll:
		return true
	case protocol.TopicPlanGroup: // its own villages' plans only
		return !strings.ContainsAny(arg, "+#") && h.inGroup(user, arg)
	case protocol.TopicPlanDevice, protocol.TopicDeviceConfig, protocol.TopicTimeResponse:
		return arg == user
	}
	return false
}
