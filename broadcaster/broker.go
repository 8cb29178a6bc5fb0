package broadcaster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/internal/ratelimit"
	"github.com/loa-commune/loa/internal/summarylog"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/triggers"
)

// TokenLookup returns the stored token hash of a device.
type TokenLookup func(ctx context.Context, deviceID string) (string, error)

// GroupLookup returns the groups of a device.
type GroupLookup func(ctx context.Context, deviceID string) ([]string, error)

// embeddedBroker is mochi-mqtt listening on TCP, allowing only the
// controller and registered boxes.
type embeddedBroker struct {
	side     *aside // runs the hooks' database lookups
	server   *mqtt.Server
	listener *mochistop.Listener
	access   *accessHook
	limits   *limitHook
}

// maxPacketBytes bounds every packet the embedded broker reads, before it
// sets memory aside for it; a client that sends a bigger one is
// disconnected. The largest packets are the controller's plans (at most
// protocol.MaxPayload, or boxes refuse them) with their topic and
// properties; what boxes and sensors may send is bounded far lower, by
// Limits.MaxMessageBytes.
const maxPacketBytes = protocol.MaxPayload + 64<<10

// maxWritesPending bounds the messages queued for one client. mochi
// allocates the whole queue when a client connects (8,192 entries, 64 kB,
// by default: 640 MB at 10,000 boxes). A box is sent a handful of retained
// messages at most at once; what boxes send reaches the controller through
// inline subscriptions (subscribeInline), not through a queue.
const maxWritesPending = 64

// startBroker starts mochi on addr; with tlsConf, the listener speaks TLS.
func startBroker(addr string, tlsConf *tls.Config, topics protocol.Topics, controllerSecret string, lookup TokenLookup, groups GroupLookup, log *slog.Logger) (*embeddedBroker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0 // retained plans must not expire
	caps.MaximumPacketSize = maxPacketBytes
	caps.MaximumClientWritesPending = maxWritesPending
	every := DefaultLimits().LogEvery
	conns := summarylog.New(log, "broker closed a connection", "broker closed connections", every)
	ended := &refusals{last: map[string]string{}, ended: map[net.Conn]bool{}}
	mochiLog := slog.New(brokerLog{Handler: log.With("part", "broker").Handler(), refused: ended.add})
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: mochiLog, InlineClient: true})
	refused := summarylog.New(log, "broker refused a client", "broker refused clients", every)
	side := newAside(4)
	started := false
	defer func() {
		if !started {
			side.stop()
		}
	}()
	access := &accessHook{topics: topics, secret: controllerSecret, log: log, member: map[string]map[string]bool{},
		lookup: func(ctx context.Context, id string) (hash string, err error) {
			err = errStopping
			side.do(func() { hash, err = lookup(ctx, id) })
			return hash, err
		},
		groups: func(ctx context.Context, id string) (gs []string, err error) {
			err = errStopping
			side.do(func() { gs, err = groups(ctx, id) })
			return gs, err
		},
		refused: refused, refusedN: newReasonCounts(dropBadUsername, dropBadCredentials)}
	if err := srv.AddHook(access, nil); err != nil {
		return nil, fmt.Errorf("broker hook: %w", err)
	}
	limits := newLimitHook(topics, DefaultLimits(), log, refused, conns)
	limits.refusals = ended
	if err := srv.AddHook(limits, nil); err != nil {
		return nil, fmt.Errorf("broker limits hook: %w", err)
	}
	l := mochistop.NewListener("tcp", addr, tlsConf)
	l.ConnError = connEnded(conns, ended)
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("listen for MQTT on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	started = true
	return &embeddedBroker{side: side, server: srv, listener: l, access: access, limits: limits}, nil
}

func (b *embeddedBroker) Addr() string { return b.listener.Address() }

// Close stops the broker; its hooks' Stop logs the last drop summaries.
func (b *embeddedBroker) Close() error {
	defer b.side.stop()
	return mochistop.Close(b.server)
}

// accessHook authenticates clients and keeps each box to its own topics.
type accessHook struct {
	mqtt.HookBase
	topics protocol.Topics
	secret string
	lookup TokenLookup
	groups GroupLookup
	log    *slog.Logger

	// refused logs refused clients: a storm of reconnects with bad
	// credentials is summarised, not logged once per attempt. refusedN
	// counts them by reason, for metrics.
	refused  *summarylog.Log
	refusedN reasonCounts

	// member caches each box's groups: mochi checks every delivery, and a
	// plan goes to every box at once. forget drops what changed.
	mu     sync.Mutex
	member map[string]map[string]bool

	// ready is set once the controller has subscribed to what boxes send:
	// until then a box's events would be acknowledged by the broker and
	// handed to no one, and the box would drop them from its outbox.
	ready atomic.Bool
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
	if !h.ready.Load() {
		return false // the box tries again in a moment
	}
	if protocol.ValidName(user) != nil {
		h.refused.Add("from "+hostOf(cl.Net.Remote), dropBadUsername, nil)
		h.refusedN.add(dropBadUsername)
		return false
	}
	hash, err := h.lookup(context.Background(), user)
	if err != nil || !auth.Check(pass, hash) {
		h.refused.Add(user+" from "+hostOf(cl.Net.Remote), dropBadCredentials, nil)
		h.refusedN.add(dropBadCredentials)
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
	case protocol.TopicPlanAll, protocol.TopicStream:
		// A live session is public sound; what a box plays of it is its
		// signed plan's choice, so any box may read any session.
		return true
	case protocol.TopicPlanGroup: // its own villages' plans only
		return !strings.ContainsAny(arg, "+#") && h.inGroup(user, arg)
	case protocol.TopicPlanDevice, protocol.TopicDeviceConfig, protocol.TopicTimeResponse:
		return arg == user
	}
	return false
}

// Limits bound what one box or sensor may publish through the embedded
// broker. What is over them, or what the controller would refuse anyway
// (a payload that does not decode), is dropped in the broker: it never
// reaches the controller's client, is never retained, and is logged as one
// summary line per LogEvery, not one line per message.
type Limits struct {
	// MessagesPerSec and MessageBurst are each client's rate over all its
	// topics: a box sends a heartbeat every 30 s, a burst of 8 time
	// requests a minute and a few events per item, but after a day offline
	// it sends its whole outbox at once.
	MessagesPerSec float64 `yaml:"messages_per_sec"`
	MessageBurst   int     `yaml:"message_burst"`
	// ReadingsPerSec and ReadingBurst are each sensor's rate on its trigger
	// topic; readings over it are dropped (a newer one follows).
	ReadingsPerSec float64 `yaml:"readings_per_sec"`
	ReadingBurst   int     `yaml:"reading_burst"`
	// MaxMessageBytes is the largest payload a box or sensor may publish;
	// their messages are well under a kilobyte.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// LogEvery: the first drop is logged at once, then at most one summary
	// line per LogEvery while drops go on.
	LogEvery time.Duration `yaml:"log_every"`
}

// DefaultLimits are many times what a working box or sensor sends.
func DefaultLimits() Limits {
	return Limits{
		MessagesPerSec: 10, MessageBurst: 500,
		ReadingsPerSec: 1, ReadingBurst: 10,
		MaxMessageBytes: 64 << 10,
		LogEvery:        time.Minute,
	}
}

// Validate checks every limit; the error names the field.
func (l Limits) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"messages_per_sec", l.MessagesPerSec}, {"readings_per_sec", l.ReadingsPerSec}} {
		if !(r.v > 0) || math.IsInf(r.v, 0) {
			errs = append(errs, fmt.Errorf("%s: %v is not a positive number", r.name, r.v))
		}
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"message_burst", l.MessageBurst}, {"reading_burst", l.ReadingBurst}} {
		if b.v < 1 {
			errs = append(errs, fmt.Errorf("%s: %d is less than 1", b.name, b.v))
		}
	}
	if l.MaxMessageBytes < 1 || l.MaxMessageBytes > protocol.MaxPayload {
		errs = append(errs, fmt.Errorf("max_message_bytes: %d is not within 1..%d", l.MaxMessageBytes, protocol.MaxPayload))
	}
	if l.LogEvery < time.Second {
		errs = append(errs, fmt.Errorf("log_every: %v is shorter than 1s", l.LogEvery))
	}
	return errors.Join(errs...)
}

// SetBrokerLimits changes the embedded broker's limits (DefaultLimits until
// then). With an external broker it does nothing: configure that broker.
// Call it after Open.
func (s *Service) SetBrokerLimits(l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if s.broker != nil {
		s.broker.limits.set(l)
	}
	return nil
}

// hostOf is the host of a remote address: a client reconnecting from new
// ports is still one client.
func hostOf(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// Reasons a message, a client or a connection was dropped, as the logs
// name them.
const (
	dropOverRate       = "over_rate"
	dropReadingsRate   = "readings_over_rate"
	dropOversized      = "oversized"
	dropMalformed      = "malformed"
	dropBadUsername    = "bad_username"
	dropBadCredentials = "bad_credentials"
	dropPacketTooLarge = "packet_too_large"
	dropBadConnect     = "bad_connect"
	dropConnError      = "connection_error"
)

// connEnded sorts the error a connection ended with into conns: a flood
// of junk connections would repeat the same line. Refused logins are left
// out: the access hook logs them; so are sessions that ended in an error,
// which the limit hook logs (OnDisconnect).
func connEnded(conns *summarylog.Log, ended *refusals) func(net.Conn, error) {
	return func(c net.Conn, err error) {
		msg := err.Error()
		switch {
		case ended.wasEnded(c):
		case strings.Contains(msg, packets.ErrBadUsernameOrPassword.Reason):
		case strings.Contains(msg, packets.ErrPacketTooLarge.Reason):
			conns.Add("", dropPacketTooLarge, err)
		case strings.HasPrefix(msg, "read connection"):
			conns.Add("from "+hostOf(c.RemoteAddr().String()), dropBadConnect, err)
		default:
			conns.Add("from "+hostOf(c.RemoteAddr().String()), dropConnError, err)
		}
	}
}

// limitHook drops what boxes and sensors publish over their Limits, and
// what does not decode, before the broker delivers or retains it.
type limitHook struct {
	mqtt.HookBase
	topics  protocol.Topics
	site    string
	limits  atomic.Pointer[Limits]
	now     func() time.Time
	drops   *summarylog.Log
	refused *summarylog.Log // the access hook's, stopped with this one
	conns   *summarylog.Log // the broker's log's, likewise
	// refusals are what mochi refused of each client (brokerlog.go).
	refusals *refusals
	// dropped counts drops by reason, for metrics.
	dropped reasonCounts

	mu      sync.Mutex
	clients map[string]*clientRate // by username: one box, however many connections
	swept   time.Time
}

// clientRate is one client's token buckets.
type clientRate struct {
	all, readings ratelimit.Bucket
	seen          time.Time
}

func newLimitHook(topics protocol.Topics, l Limits, log *slog.Logger, refused, conns *summarylog.Log) *limitHook {
	h := &limitHook{
		topics: topics, site: strings.TrimPrefix(topics.Root(), "loa/"), now: time.Now,
		drops:   summarylog.New(log, "broker dropped a message from a box", "broker dropped messages from boxes", l.LogEvery),
		refused: refused, conns: conns,
		clients: map[string]*clientRate{},
		dropped: newReasonCounts(dropOversized, dropOverRate, dropReadingsRate, dropMalformed),
	}
	h.limits.Store(&l)
	return h
}

func (h *limitHook) set(l Limits) {
	h.limits.Store(&l)
	for _, d := range []*summarylog.Log{h.drops, h.refused, h.conns} {
		d.SetEvery(l.LogEvery)
	}
}

func (h *limitHook) ID() string { return "loa-limits" }

func (h *limitHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnDisconnect }

// Stop logs the last summaries when the broker stops.
func (h *limitHook) Stop() error {
	for _, d := range []*summarylog.Log{h.drops, h.refused, h.conns} {
		d.Stop()
	}
	return nil
}

// OnPublish runs after the ACL check, so the topic is the client's own.
// Cheap checks come first, so a flood costs little: size, then rate, then
// decoding. A dropped message is acknowledged (the client need not send it
// again), except an answer-back event over the rate: that one is left
// unacknowledged, so the box keeps it in its outbox and sends it again on
// its next connection.
func (h *limitHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	user := string(cl.Properties.Username)
	if cl.Net.Inline || user == auth.ControllerUser {
		return pk, nil
	}
	l := h.limits.Load()
	kind, _, err := h.topics.Parse(pk.TopicName)
	if err != nil {
		return pk, nil // the ACL check refuses it
	}
	if len(pk.Payload) > l.MaxMessageBytes {
		h.drop(user, dropOversized, fmt.Errorf("%d bytes on %s, more than %d", len(pk.Payload), kind, l.MaxMessageBytes))
		return pk, packets.CodeSuccessIgnore
	}
	if reason := h.take(user, kind == protocol.TopicTrigger, l); reason != "" {
		h.drop(user, reason, nil)
		if kind == protocol.TopicDeviceEvents && pk.FixedHeader.Qos > 0 {
			return pk, packets.ErrRejectPacket
		}
		return pk, packets.CodeSuccessIgnore
	}
	if len(pk.Payload) == 0 {
		return pk, nil // clears a retained message; the controller ignores it
	}
	if err := h.decode(kind, pk.Payload); err != nil {
		h.drop(user, dropMalformed, fmt.Errorf("%s: %w", kind, err))
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// drop logs and counts a dropped message.
func (h *limitHook) drop(user, reason string, err error) {
	h.drops.Add(user, reason, err)
	h.dropped.add(reason)
}

// take takes a token for a message of user, and one for a reading on its
// trigger topic; it returns why not, or "".
func (h *limitHook) take(user string, reading bool, l *Limits) string {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep(now, l)
	c := h.clients[user]
	if c == nil {
		c = &clientRate{}
		h.clients[user] = c
	}
	c.seen = now
	if reading && c.readings.Take(now, l.ReadingsPerSec, l.ReadingBurst) > 0 {
		return dropReadingsRate
	}
	if c.all.Take(now, l.MessagesPerSec, l.MessageBurst) > 0 {
		return dropOverRate
	}
	return ""
}

// sweep drops, at most once a minute, the buckets of clients idle for so
// long that they are full again: a fresh bucket is the same.
func (h *limitHook) sweep(now time.Time, l *Limits) {
	if now.Sub(h.swept) < time.Minute {
		return
	}
	h.swept = now
	idle := time.Duration(max(float64(l.MessageBurst)/l.MessagesPerSec, float64(l.ReadingBurst)/l.ReadingsPerSec) * float64(time.Second))
	for user, c := range h.clients {
		if now.Sub(c.seen) > idle {
			delete(h.clients, user)
		}
	}
}

// decode checks a payload as the controller's ingest (and, for readings,
// its sensors) will: what fails here would only be logged and dropped there.
func (h *limitHook) decode(kind protocol.TopicKind, payload []byte) error {
	var err error
	switch kind {
	case protocol.TopicDeviceState:
		_, err = protocol.Decode(payload, h.site, protocol.KindState, &protocol.State{})
	case protocol.TopicDeviceEvents:
		_, err = protocol.DecodeEvents(payload, h.site)
	case protocol.TopicTimeRequest:
		_, err = protocol.Decode(payload, h.site, protocol.KindTimeRequest, &protocol.TimeRequest{})
	case protocol.TopicTrigger:
		_, err = triggers.DecodeReading(payload, h.site)
	}
	return err
}

// subscribeInline hands every message matching filters to fn inside the
// broker, on the goroutine of the client that sent it. Nothing is queued in
// the broker, so nothing is dropped: while fn blocks, that client's further
// messages wait in its connection. fn should only hand the message on: the
// deeper it calls, the larger every client's stack grows.
func (b *embeddedBroker) subscribeInline(filters []string, fn func(topic string, payload []byte)) error {
	for i, f := range filters {
		err := b.server.Subscribe(f, i+1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			fn(pk.TopicName, bytes.Clone(pk.Payload))
		})
		if err != nil {
			return fmt.Errorf("subscribe to %s in the broker: %w", f, err)
		}
	}
	return nil
}

var errStopping = errors.New("the broker is stopping")

// aside runs calls on a few long-lived goroutines and waits for them. The
// access hook looks boxes up in SQLite (modernc: C translated to Go), which
// needs a deep stack; on a client's connection goroutine that grew its
// stack for good, about 20 kB per connected box.
type aside struct {
	calls chan func()
	done  chan struct{}
	once  sync.Once
}

func newAside(n int) *aside {
	a := &aside{calls: make(chan func()), done: make(chan struct{})}
	for range n {
		go func() { // ends with stop
			for {
				select {
				case fn := <-a.calls:
					fn()
				case <-a.done:
					return
				}
			}
		}()
	}
	return a
}

// do runs fn aside and returns when it has; after stop, it does nothing.
func (a *aside) do(fn func()) {
	ran := make(chan struct{})
	select {
	case a.calls <- func() { fn(); close(ran) }:
		<-ran
	case <-a.done:
	}
}

func (a *aside) stop() { a.once.Do(func() { close(a.done) }) }
