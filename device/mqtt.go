package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/pki"
	"github.com/loa-commune/loa/protocol"
)

// MQTT session settings.
const (
	mqttKeepAlive        = 30 * time.Second
	mqttConnectTimeout   = 20 * time.Second
	mqttRetryInterval    = 5 * time.Second
	mqttMaxReconnectWait = 2 * time.Minute
	mqttOpTimeout        = 20 * time.Second
	qosAtLeastOnce       = 1
)

// newMQTTOptions builds the paho options of the box's persistent session.
func (a *Agent) newMQTTOptions(will []byte) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions()
	// paho tries the brokers in this order on every connect and reconnect.
	brokers := a.cfg.BrokerURLs()
	for _, b := range brokers {
		o.AddBroker(b)
	}
	o.SetClientID("loa-" + a.cfg.Site + "-" + a.cfg.ID)
	o.SetUsername(a.cfg.ID)
	o.SetPassword(a.cfg.Token)
	o.SetCleanSession(false) // the broker keeps our subscriptions and queued QoS 1 messages
	o.SetAutoReconnect(true)
	o.SetConnectRetry(true) // Connect keeps trying; QoS 1 publishes queue meanwhile
	o.SetConnectRetryInterval(mqttRetryInterval)
	o.SetMaxReconnectInterval(mqttMaxReconnectWait)
	o.SetConnectTimeout(mqttConnectTimeout)
	o.SetKeepAlive(mqttKeepAlive)
	o.SetWriteTimeout(mqttOpTimeout)
	o.SetOrderMatters(true) // our handler never blocks, so ordered delivery is safe
	// New checked the TLS settings; a file may have gone since.
	if tc, err := a.cfg.tlsConfig(a.tlsTime); err != nil {
		a.log.Error("TLS settings; trusting no broker", keyErr, err)
		o.SetTLSConfig(&tls.Config{MinVersion: pki.MinVersion, RootCAs: x509.NewCertPool()})
	} else {
		o.SetTLSConfig(tc)
		// Each broker's certificate is checked for its own name, also
		// behind a proxy (all_proxy), where paho does not set it.
		o.SetConnectionAttemptHandler(func(broker *url.URL, tc *tls.Config) *tls.Config {
			if tc == nil {
				return nil
			}
			tc = tc.Clone()
			tc.ServerName = broker.Hostname()
			return tc
		})
	}
	o.SetBinaryWill(a.topics.DeviceState(a.cfg.ID), will, qosAtLeastOnce, true)
	// With a persistent session the broker may deliver before we subscribe again.
	o.SetDefaultPublishHandler(a.onMQTTMessage)
	// trying is the broker paho is trying (it says so before each attempt),
	// so the log names the one that answered.
	var trying atomic.Pointer[string]
	first := strings.Join(brokers, ",")
	trying.Store(&first)
	o.SetOnConnectHandler(func(mqtt.Client) {
		a.log.Info("connected to broker", keyBroker, *trying.Load())
		signal(a.connected)
		signal(a.syncKick)
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		a.gate.set(false)
		a.log.Warn("lost broker connection; reconnecting", keyBroker, *trying.Load(), keyErr, err)
	})
	o.SetStore(&gateStore{Store: mqtt.NewMemoryStore(), gate: a.gate, connected: func() bool { return a.client.IsConnectionOpen() }})
	// paho's backoff is the same on every box; a random wait before each
	// reconnect attempt (reconnect.go) keeps the boxes of a district from
	// coming back in the same second when the broker restarts. The first
	// connect at start is not delayed.
	backoff := DefaultReconnectPolicy().Handler(a.done, func(attempt int, d time.Duration) {
		a.log.Debug("reconnecting to broker", keyBroker, strings.Join(brokers, ","), "attempt", attempt, "wait", d)
	})
	o.SetConnectionNotificationHandler(func(c mqtt.Client, n mqtt.ConnectionNotification) {
		if b, ok := n.(mqtt.ConnectionNotificationBroker); ok && b.Broker != nil {
			u := b.Broker.String()
			trying.Store(&u)
		}
		backoff(c, n)
	})
	return o
}

// tlsTime is when the broker's and the media server's certificates are
// checked: the controller's time as measured, or, while the clock is not
// plausible (a Pi that booted in 1970 and has not synced yet), the earliest
// time the box believes. Loa's certificates are valid from before that
// (pki.NotBefore), so such a box still reaches the controller and learns
// the time from it; expiry counts again once the clock is right.
func (a *Agent) tlsTime() time.Time {
	if now := a.clock.Now(); a.plausible(now) {
		return now
	}
	return a.cfg.minValidTime()
}

// sessionGate holds the outbox back from the moment paho (re)connects until
// paho has taken the snapshot of its store that it resends. paho's resume()
// races with packets published in that window (it marks them DUP while they
// are being written, and may send them twice: eclipse-paho/paho.mqtt.golang
// issue 703), so nothing is published then. While the gate is closed the
// operations wait in the outbox.
type sessionGate struct {
	mu   sync.Mutex
	open bool
	wake chan struct{}
}

func newSessionGate() *sessionGate { return &sessionGate{wake: make(chan struct{}, 1)} }

func (g *sessionGate) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	signal(g.wake)
}

func (g *sessionGate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// gateStore is paho's memory store; paho lists it (All) when it resumes a
// session, right after the connection is up, and that opens the gate.
type gateStore struct {
	mqtt.Store
	gate      *sessionGate
	connected func() bool
}

// All lists the stored packets and, when called on a live connection (by
// resume), opens the gate.
func (s *gateStore) All() []string {
	keys := s.Store.All()
	if s.connected() {
		s.gate.set(true)
	}
	return keys
}

// signal wakes whoever waits on c without ever blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (a *Agent) onMQTTMessage(_ mqtt.Client, m mqtt.Message) {
	a.handleMessage(m.Topic(), m.Payload(), m.Retained())
}

// inMsg is a decoded, valid message waiting for the loop.
type inMsg struct {
	topic  string
	kind   protocol.TopicKind
	arg    string // group name for plan/group
	env    protocol.Envelope
	plan   *protocol.Plan
	config *protocol.DeviceConfig
	// rejection says why a message on topic (less rejectPrefix) was
	// refused as not the controller's.
	rejection string
}

// handleMessage decodes one MQTT message and queues it for the loop. It runs
// on paho's goroutine, so it never blocks and never touches loop state;
// whatever does not decode is logged and dropped.
func (a *Agent) handleMessage(topic string, payload []byte, retained bool) {
	kind, arg, err := a.topics.Parse(topic)
	if err != nil {
		a.log.Warn("ignoring message on unknown topic", keyTopic, topic, keyErr, err)
		return
	}
	if kind == protocol.TopicStream {
		// Live session packets bypass the inbox, which keeps only the
		// newest message per topic: they go to the session's buffer.
		a.onStreamPacket(topic, arg, payload)
		return
	}
	log := a.log.With(keyTopic, topic)
	m := inMsg{topic: topic, kind: kind, arg: arg}
	switch kind {
	case protocol.TopicPlanAll, protocol.TopicPlanGroup, protocol.TopicPlanDevice:
		if kind == protocol.TopicPlanDevice && arg != a.cfg.ID {
			log.Warn("ignoring plan for another device")
			return
		}
		var p protocol.Plan
		env, err := a.trust.check(topic, payload, a.cfg.Site, protocol.KindPlan, true, &p)
		if err != nil {
			a.refuse(log, "plan", topic, err, retained, len(payload))
			return
		}
		if want := planTarget(kind, arg, a.cfg.ID); p.Target != want {
			log.Warn("ignoring plan whose target does not match its topic", "target", p.Target, "want", want)
			return
		}
		a.trust.accepted(topic, env.Seq)
		m.env, m.plan = env, &p
	case protocol.TopicDeviceConfig:
		if arg != a.cfg.ID {
			log.Warn("ignoring config for another device")
			return
		}
		var c protocol.DeviceConfig
		env, err := a.trust.check(topic, payload, a.cfg.Site, protocol.KindConfig, true, &c)
		if err != nil {
			a.refuse(log, "device config", topic, err, retained, len(payload))
			return
		}
		a.trust.accepted(topic, env.Seq)
		m.env, m.config = env, &c
	case protocol.TopicTimeResponse:
		if arg == a.cfg.ID {
			a.onTimeResponse(topic, payload)
		}
		return
	default:
		log.Warn("ignoring message on a topic the agent does not read")
		return
	}
	a.inbox.put(m)
}

// refuse logs a message that is not applied; one that is not the
// controller's goes to the loop to be reported (a replay only when live:
// a retained message may legitimately arrive after a newer live one).
func (a *Agent) refuse(log *slog.Logger, what, topic string, err error, retained bool, size int) {
	switch {
	case errors.Is(err, errDuplicate):
		log.Debug("ignoring "+what+" already applied", keyErr, err)
	case rejected(err):
		log.Warn("rejecting "+what+" not from the controller", keyErr, err, keyBytes, size)
		if !retained || !errors.Is(err, errReplay) {
			a.inbox.put(inMsg{topic: rejectPrefix + topic, rejection: err.Error()})
		}
	default:
		log.Warn("ignoring "+what, keyErr, err, keyBytes, size)
	}
}

// rejectPrefix keys rejections in the inbox apart from the messages of the
// same topic.
const rejectPrefix = "rejected "

// planTopic is the topic of a plan target ("all", "group/<g>", "device/<id>").
func (a *Agent) planTopic(target string) string {
	if g, ok := strings.CutPrefix(target, "group/"); ok {
		return a.topics.PlanGroup(g)
	}
	if target == "all" {
		return a.topics.PlanAll()
	}
	return a.topics.PlanDevice(a.cfg.ID)
}

// planTarget is the Plan.Target a plan on this topic must carry.
func planTarget(kind protocol.TopicKind, arg, id string) string {
	switch kind {
	case protocol.TopicPlanGroup:
		return "group/" + arg
	case protocol.TopicPlanDevice:
		return "device/" + id
	}
	return "all"
}

// inbox hands decoded messages from paho's goroutine to the loop. It keeps
// the newest message per topic only (plans and configs are whole states), so
// it is bounded by the number of topics and never blocks the sender.
type inbox struct {
	mu      sync.Mutex
	pending map[string]inMsg
	order   []string
	ready   chan struct{} // signalled when pending becomes non-empty
}

func newInbox() *inbox {
	return &inbox{pending: map[string]inMsg{}, ready: make(chan struct{}, 1)}
}

func (b *inbox) put(m inMsg) {
	b.mu.Lock()
	old, ok := b.pending[m.topic]
	switch {
	case !ok:
		b.order = append(b.order, m.topic)
		b.pending[m.topic] = m
	case m.newerThan(old):
		b.pending[m.topic] = m
	}
	b.mu.Unlock()
	signal(b.ready)
}

// newerThan orders two messages of the same topic.
func (m inMsg) newerThan(o inMsg) bool {
	if m.plan != nil && o.plan != nil {
		h := heldPlan{Seq: o.env.Seq, Plan: protocol.Plan{Generated: o.plan.Generated}}
		return h.olderThan(m.plan.Generated, m.env.Seq)
	}
	if m.config != nil && o.config != nil {
		h := heldConfig{Issued: o.env.Issued, Seq: o.env.Seq}
		return h.olderThan(m.env.Issued, m.env.Seq)
	}
	return true
}

// take returns what is pending, configs first (a plan for a group the box
// just joined must find the new config in place), then in arrival order.
func (b *inbox) take() []inMsg {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]inMsg, 0, len(b.order))
	for _, t := range b.order {
		out = append(out, b.pending[t])
	}
	clear(b.pending)
	b.order = b.order[:0]
	slices.SortStableFunc(out, func(x, y inMsg) int {
		switch {
		case x.config != nil && y.config == nil:
			return -1
		case x.config == nil && y.config != nil:
			return 1
		}
		return 0
	})
	return out
}

// opKind is what an outbox operation does.
type opKind int

const (
	opPublish opKind = iota
	opSubscribe
	opUnsubscribe
)

// op is one MQTT operation the loop asked for.
type op struct {
	kind     opKind
	topics   []string
	payload  []byte
	retained bool
	wait     bool     // wait for the broker's acknowledgement (used for the final offline state)
	records  []uint64 // the events' records in the disk outbox, removed on acknowledgement
	batched  bool     // events past batchEvents: they go as they are
	// ack, if set, gets the publish's outcome once the broker answered (a
	// trial build's state, update.go); it must have room for one.
	ack chan<- error
}

// eventOp is the publish of one answer-back event, kept on disk as record
// (0 if the disk failed).
func (a *Agent) eventOp(payload []byte, record uint64) op {
	x := op{kind: opPublish, topics: []string{a.topics.DeviceEvents(a.cfg.ID)}, payload: payload}
	if record != 0 {
		x.records = []uint64{record}
	}
	return x
}

// isEvent reports whether x publishes an answer-back event not yet batched.
func (a *Agent) isEvent(x op) bool {
	return x.kind == opPublish && !x.batched && !x.retained && !x.wait && x.topics[0] == a.topics.DeviceEvents(a.cfg.ID)
}

// eventLinger is how long the outbox worker waits for more events after
// one is queued: an emergency's "received" and "playing" follow each other
// within milliseconds, and then leave as one message.
const eventLinger = 20 * time.Millisecond

// batchEvents merges each run of queued events into batches of at most
// protocol.MaxBatchEvents (KindEvents): one publish, one acknowledgement
// and one route through the broker instead of one per event, which counts
// when thousands of boxes answer the same emergency, or when a box on a
// slow link sends what waited while it was offline. Other operations keep
// their place between the runs.
func (a *Agent) batchEvents(ops []op) []op {
	out := make([]op, 0, len(ops))
	var run []op
	flush := func() {
		if len(run) > 0 {
			out = append(out, a.batch(run)...)
			run = run[:0]
		}
	}
	for _, x := range ops {
		if !a.isEvent(x) {
			flush()
			out = append(out, x)
			continue
		}
		run = append(run, x)
		if len(run) == protocol.MaxBatchEvents {
			flush()
		}
	}
	flush()
	return out
}

// batch turns a run of event publishes into one. Each payload is one of the
// box's own envelopes; the batch takes the newest one's sequence and issue
// time. Should one not decode, the run is sent as it is.
func (a *Agent) batch(run []op) []op {
	out := slices.Clone(run)
	for i := range out {
		out[i].batched = true
	}
	if len(run) == 1 {
		return out
	}
	b := protocol.EventBatch{Events: make([]protocol.Event, len(run))}
	var last protocol.Envelope
	var records []uint64
	for i, x := range run {
		env, err := protocol.Decode(x.payload, a.cfg.Site, protocol.KindEvent, &b.Events[i])
		if err != nil {
			a.log.Warn("cannot batch an event; sending each alone", keyErr, err)
			return out
		}
		last = env
		records = append(records, x.records...)
	}
	payload, err := protocol.Encode(protocol.KindEvents, a.cfg.Site, last.Seq, last.Issued, b)
	if err != nil {
		a.log.Warn("cannot batch events; sending each alone", keyErr, err)
		return out
	}
	x := out[0]
	x.payload, x.records = payload, records
	return []op{x}
}

// outbox serialises the loop's MQTT operations onto one goroutine, so a slow
// network never stalls scheduling. While the box is offline they wait here
// (and QoS 1 publishes made just before a link drops wait in paho's store),
// in memory; answer-back events are also kept in the disk outbox
// (outbox.go) until the broker acknowledges them, so they survive a
// restart.
type outbox struct {
	mu     sync.Mutex
	ops    []op
	closed bool
	wake   chan struct{}
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

func (o *outbox) push(x op) {
	o.mu.Lock()
	if !o.closed {
		o.ops = append(o.ops, x)
	}
	o.mu.Unlock()
	signal(o.wake)
}

// close lets the worker finish what is queued and stop.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	signal(o.wake)
}

// next returns the queued operations, or done once closed and drained.
func (o *outbox) next() (ops []op, done bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ops, o.ops = o.ops, nil
	return ops, len(ops) == 0 && o.closed
}

// unshift puts operations back at the front, in order.
func (o *outbox) unshift(ops []op) {
	o.mu.Lock()
	o.ops = append(append([]op(nil), ops...), o.ops...)
	o.mu.Unlock()
}

// isClosed reports whether close was called.
func (o *outbox) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// len is how many operations wait.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ops)
}

// runOutbox executes queued operations while the session is up, until the
// outbox is closed and drained (or closed while offline), or ctx is done.
//
// Events are held a moment before they go (answerDelay): those that follow
// at once join them in one batch (batchEvents), and with an answer spread
// a commune's boxes do not all answer a broadcast in the same instant.
// Other operations go at once. Held events are on disk and marked in
// flight: when the session drops they go back to the queue, and when the
// outbox closes they go at once.
func (a *Agent) runOutbox(ctx context.Context) {
	var held []op
	var due *time.Timer // fires when held may go; nil while none are held
	dueFired := false
	unhold := func() []op {
		out := held
		held, dueFired = nil, false
		if due != nil {
			due.Stop()
			due = nil
		}
		return out
	}
	defer unhold()
	for {
		if !a.gate.isOpen() {
			if len(held) > 0 {
				a.out.unshift(unhold()) // held again in the next session
			}
			if a.out.isClosed() {
				if n := a.out.len(); n > 0 {
					a.log.Warn("stopping offline; dropping unsent MQTT messages (events stay in the disk outbox)", "count", n)
				}
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-a.gate.wake:
			case <-a.out.wake:
			}
			continue
		}
		queued, done := a.out.next()
		var ops []op
		for _, x := range queued {
			if !a.isEvent(x) {
				ops = append(ops, x)
				continue
			}
			if len(held) == 0 {
				due = time.NewTimer(a.answerDelay())
			}
			held = append(held, x)
		}
		if len(held) > 0 && (dueFired || a.out.isClosed()) {
			ops = append(ops, a.batchEvents(unhold())...)
		}
		if done && len(ops) == 0 {
			return
		}
		for i, x := range ops {
			if ctx.Err() != nil {
				return
			}
			if !a.gate.isOpen() {
				a.out.unshift(ops[i:])
				break
			}
			a.execOp(ctx, x)
		}
		if len(ops) > 0 {
			continue
		}
		var dueC <-chan time.Time
		if due != nil {
			dueC = due.C
		}
		select {
		case <-ctx.Done():
			return
		case <-a.out.wake:
		case <-a.gate.wake:
		case <-dueC:
			dueFired = true
		}
	}
}

// answerDelay is how long events are held (AnswerDelay).
func (a *Agent) answerDelay() time.Duration { return AnswerDelay(int(a.answerSpread.Load())) }

// AnswerDelay is how long a box holds its answers before it sends them:
// eventLinger, plus a random share of spreadMS (the config's
// AnswerSpreadMS). Simulated boxes (loa bench) wait the same.
func AnswerDelay(spreadMS int) time.Duration {
	d := eventLinger
	if spreadMS > 0 {
		d += time.Duration(rand.Int64N(int64(spreadMS) * int64(time.Millisecond)))
	}
	return d
}

func (a *Agent) execOp(ctx context.Context, x op) {
	var tok mqtt.Token
	switch x.kind {
	case opPublish:
		tok = a.client.Publish(x.topics[0], qosAtLeastOnce, x.retained, x.payload)
		if len(x.records) > 0 {
			// The records leave the disk outbox once the broker has them.
			a.events.watch(x.records, tok)
		}
		if x.ack != nil {
			go func() { x.ack <- waitToken(ctx, tok) }()
		}
		if !x.wait {
			// QoS 1: paho keeps it in its store and resends it after a
			// reconnect; waiting here would stall everything behind it while
			// the box is offline. Report only immediate failures.
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					a.log.Warn("publish failed", keyTopic, x.topics[0], keyErr, err)
				}
			default:
			}
			return
		}
	case opSubscribe:
		filters := make(map[string]byte, len(x.topics))
		for _, t := range x.topics {
			filters[t] = qosAtLeastOnce
			if kind, _, _ := a.topics.Parse(t); kind == protocol.TopicStream {
				filters[t] = 0 // a late packet is worth nothing: none is kept for the box
			}
		}
		tok = a.client.SubscribeMultiple(filters, a.onMQTTMessage)
	case opUnsubscribe:
		tok = a.client.Unsubscribe(x.topics...)
	}
	err := waitToken(ctx, tok)
	if st, ok := tok.(*mqtt.SubscribeToken); ok && err == nil {
		err = protocol.SubackError(st.Result())
	}
	if err != nil {
		a.log.Warn("mqtt operation failed", "op", x.kind.String(), keyTopic, x.topics, keyErr, err)
		if x.kind == opSubscribe {
			signal(a.subFailed)
		}
	}
}

func (k opKind) String() string {
	switch k {
	case opPublish:
		return "publish"
	case opSubscribe:
		return "subscribe"
	}
	return "unsubscribe"
}

var errOpTimeout = errors.New("no answer from the broker in time")

// waitToken waits for tok up to mqttOpTimeout or ctx.
func waitToken(ctx context.Context, tok mqtt.Token) error {
	t := time.NewTimer(mqttOpTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errOpTimeout
	}
}
