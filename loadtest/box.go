package loadtest

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/protocol"
)

// box is one simulated loudspeaker box: it follows its config and plans
// like loa-agent, notes when each item first arrives, and answers
// playing/played at once instead of sounding it.
type box struct {
	id, token, site string
	group           string // the one group it is registered in
	topics          protocol.Topics
	policy          device.ReconnectPolicy // the agent's wait before each reconnect attempt
	decoder         *planCache             // shared by the run's boxes
	client          paho.Client
	stop            chan struct{} // closed by close: ends waits and retries
	stopOnce        sync.Once
	sessions        atomic.Int64 // connections made, the first included
	attempts        atomic.Int64 // reconnect attempts
	seq             atomic.Uint64
	ready           atomic.Bool
	events          atomic.Int64
	holding         atomic.Int64 // answer batches held, not sent yet
	plans           atomic.Int64
	planBytes       atomic.Int64
	bytesIn         atomic.Int64 // topic and payload of every message received
	bytesOut        atomic.Int64 // of every message sent
	// live, when set, makes the box follow the live sessions its plans
	// name (subscribe to their streams at QoS 0, as the agent does) and
	// takes their packets.
	live *streamRecv
	// update, when set, makes the box take the agent update its config
	// offers (download, check, report healthy) and report its arch and
	// version in its state; nil: it reports version "bench" and ignores
	// offers.
	update *updater

	mu      sync.Mutex
	sent    []paho.Token         // answers not yet confirmed by the broker
	seen    map[string]bool      // item ids answered
	firstOf map[string]time.Time // announcement → first arrival of one of its items
	lastOf  map[string]time.Time // announcement → latest plan holding one of its items
	groups  []string
	spread  int                  // the config's AnswerSpreadMS
	waiting map[*time.Timer]bool // answers held (device.AnswerDelay), stopped by close
	held    sync.WaitGroup       // the held answers' timer functions
	gotPlan bool
	streams map[string]bool // stream topics subscribed to
	lostAt  time.Time       // the connection was last lost
	backAt  time.Time       // the first session after lostAt began
}

// connect opens the box's session on the first of brokers that answers
// (paho tries them in order, on every reconnect too), as the agent does.
func (b *box) connect(brokers []string) error {
	b.stop = make(chan struct{})
	opts := paho.NewClientOptions()
	for _, u := range brokers {
		opts.AddBroker(u)
	}
	opts.SetClientID("loa-" + b.site + "-" + b.id).
		SetUsername(b.id).SetPassword(b.token).SetCleanSession(true).SetAutoReconnect(true).
		SetKeepAlive(60 * time.Second).SetOrderMatters(false).
		SetConnectionNotificationHandler(b.policy.Handler(b.stop, func(int, time.Duration) { b.attempts.Add(1) })).
		SetConnectionLostHandler(func(paho.Client, error) {
			b.mu.Lock()
			b.lostAt = time.Now()
			b.mu.Unlock()
		}).
		SetOnConnectHandler(b.onConnect)
	b.client = paho.NewClient(opts)
	tok := b.client.Connect()
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		return fmt.Errorf("box %s cannot connect: %v", b.id, tok.Error())
	}
	sub := b.client.SubscribeMultiple(map[string]byte{
		b.topics.DeviceConfig(b.id): 1, b.topics.PlanAll(): 1, b.topics.PlanDevice(b.id): 1,
	}, b.onMessage)
	if !sub.WaitTimeout(30*time.Second) || sub.Error() != nil {
		return fmt.Errorf("box %s cannot subscribe: %v", b.id, sub.Error())
	}
	return nil
}

// onConnect runs on a goroutine of paho's at every new session. The
// session is clean, like the agent's after the embedded broker restarts, so
// after a reconnect the box subscribes again to what it follows (and the
// broker hands it the retained config and plans), as the agent does.
func (b *box) onConnect(paho.Client) {
	now := time.Now()
	b.mu.Lock()
	if b.backAt.Before(b.lostAt) {
		b.backAt = now
	}
	groups := b.groups
	var streams []string
	for t := range b.streams {
		streams = append(streams, t)
	}
	b.mu.Unlock()
	if b.sessions.Add(1) == 1 {
		return // connect subscribes
	}
	subs := map[string]byte{b.topics.DeviceConfig(b.id): 1, b.topics.PlanAll(): 1, b.topics.PlanDevice(b.id): 1}
	for _, g := range groups {
		subs[b.topics.PlanGroup(g)] = 1
	}
	for _, t := range streams {
		subs[t] = 0
	}
	b.subscribe(subs)
}

// reconnect is when the box last lost its connection and when it was back
// (zero while it is not).
func (b *box) reconnect() (lost, back time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.backAt.Before(b.lostAt) {
		return b.lostAt, time.Time{}
	}
	return b.lostAt, b.backAt
}

// planHad reports whether a plan holding an item of announcement arrived
// after t.
func (b *box) planHad(announcement string, t time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastOf[announcement].After(t)
}

// announcementOf names the announcement an item is an occurrence of: the
// plan says, and its id is "<announcement>-<unix start>".
func announcementOf(it protocol.PlanItem) string {
	if it.Announcement != "" {
		return it.Announcement
	}
	if i := strings.LastIndexByte(it.ID, '-'); i > 0 {
		return it.ID[:i]
	}
	return it.ID
}

// subscribe subscribes, again while the broker refuses (see
// protocol.SubackError), until the box is closed.
func (b *box) subscribe(subs map[string]byte) {
	for attempt := 1; attempt <= 20; attempt++ {
		tok := b.client.SubscribeMultiple(subs, b.onMessage)
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil && protocol.SubackError(tok.(*paho.SubscribeToken).Result()) == nil {
			return
		}
		select {
		case <-b.stop:
			return
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

// close waits for the answers in flight, then disconnects.
func (b *box) close() {
	if b.client == nil {
		return
	}
	b.mu.Lock()
	b.stopOnce.Do(func() { close(b.stop) })
	for t := range b.waiting {
		if t.Stop() {
			b.held.Done() // its function will not run
			b.holding.Add(-1)
		}
	}
	b.waiting = nil
	b.mu.Unlock()
	b.held.Wait()
	if b.update != nil {
		b.update.wait() // its download ends at b.stop
	}
	b.mu.Lock()
	sent := b.sent
	b.mu.Unlock()
	for _, tok := range sent {
		tok.WaitTimeout(5 * time.Second)
	}
	if b.client.IsConnectionOpen() {
		b.client.Disconnect(50)
	}
}

func (b *box) arrival(announcement string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.firstOf[announcement]
	return at, ok
}

func (b *box) onMessage(_ paho.Client, m paho.Message) {
	now := time.Now()
	b.bytesIn.Add(int64(len(m.Topic()) + len(m.Payload())))
	kind, _, err := b.topics.Parse(m.Topic())
	if err != nil || len(m.Payload()) == 0 {
		return
	}
	switch kind {
	case protocol.TopicStream:
		if b.live != nil {
			b.live.onPacket(m.Topic(), m.Payload(), now, mqttPublishSize(m.Topic(), len(m.Payload())))
		}
	case protocol.TopicDeviceConfig:
		var cfg protocol.DeviceConfig
		if _, err := protocol.Decode(m.Payload(), b.site, protocol.KindConfig, &cfg); err != nil {
			return
		}
		subs := map[string]byte{}
		for _, g := range cfg.Groups {
			subs[b.topics.PlanGroup(g)] = 1
		}
		if len(subs) > 0 {
			b.subscribe(subs)
		}
		b.mu.Lock()
		b.groups = cfg.Groups
		b.spread = cfg.AnswerSpreadMS
		b.ready.Store(b.gotPlan)
		b.mu.Unlock()
		if b.update != nil {
			b.update.onConfig(b, cfg, len(m.Topic())+len(m.Payload()), now)
		}
	case protocol.TopicPlanAll, protocol.TopicPlanGroup, protocol.TopicPlanDevice:
		p, err := b.decoder.decode(m.Payload())
		if err != nil {
			return
		}
		b.plans.Add(1)
		b.planBytes.Add(int64(len(m.Payload())))
		var fresh []protocol.PlanItem
		b.mu.Lock()
		for _, it := range p.Items {
			a := announcementOf(it)
			b.lastOf[a] = now
			if _, ok := b.firstOf[a]; !ok {
				b.firstOf[a] = now
			}
			if !b.seen[it.ID] {
				b.seen[it.ID] = true
				fresh = append(fresh, it)
			}
		}
		if kind == protocol.TopicPlanAll {
			b.gotPlan = true
		}
		var follow []string
		for _, it := range p.Items {
			if b.live == nil || it.Stream == nil {
				continue
			}
			if t := b.topics.Stream(it.Stream.Session); !b.streams[t] {
				if b.streams == nil {
					b.streams = map[string]bool{}
				}
				b.streams[t] = true
				follow = append(follow, t)
			}
		}
		b.ready.Store(b.gotPlan && b.groups != nil)
		b.mu.Unlock()
		var answers []protocol.Event
		for _, it := range fresh {
			if !it.Start.After(now) && now.Before(it.Expires) {
				answers = append(answers,
					protocol.Event{Item: it.ID, Announcement: it.Announcement, Type: protocol.EventPlaying, At: now.UTC()},
					// The final answer repeats the start, as the agent's does.
					protocol.Event{Item: it.ID, Announcement: it.Announcement, Type: protocol.EventPlayed, At: time.Now().UTC(), Started: now.UTC()})
			}
		}
		b.hold(answers)
		if len(follow) > 0 {
			subs := map[string]byte{}
			for _, t := range follow {
				subs[t] = 0 // as the agent: a late packet is worth nothing, none is kept
			}
			b.subscribe(subs)
		}
	}
}

// hold sends answers after device.AnswerDelay, as the agent's outbox
// worker does.
func (b *box) hold(answers []protocol.Event) {
	if len(answers) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.stop:
		return // closing
	default:
	}
	b.held.Add(1)
	b.holding.Add(1)
	var t *time.Timer
	t = time.AfterFunc(device.AnswerDelay(b.spread), func() {
		defer b.held.Done()
		defer b.holding.Add(-1)
		b.mu.Lock()
		delete(b.waiting, t)
		b.mu.Unlock()
		b.answer(answers)
	})
	if b.waiting == nil {
		b.waiting = map[*time.Timer]bool{}
	}
	b.waiting[t] = true
}

// answer sends events that fall together as one batch, as the agent's
// outbox does (protocol.EventBatch).
func (b *box) answer(evs []protocol.Event) {
	for len(evs) > 0 {
		n := min(len(evs), protocol.MaxBatchEvents)
		var payload []byte
		var err error
		if n == 1 {
			payload, err = protocol.Encode(protocol.KindEvent, b.site, b.seq.Add(1), evs[0].At, evs[0])
		} else {
			payload, err = protocol.Encode(protocol.KindEvents, b.site, b.seq.Add(1), evs[n-1].At, protocol.EventBatch{Events: evs[:n]})
		}
		if err != nil {
			return
		}
		b.send(b.topics.DeviceEvents(b.id), false, payload)
		b.events.Add(int64(n))
		evs = evs[n:]
	}
}

// heartbeat sends the box's state, as the agent does every heartbeat_sec.
func (b *box) heartbeat(uptime int64) {
	st := protocol.State{Online: true, State: protocol.StateIdle, Volume: 70, Version: "bench", UptimeSec: uptime, At: time.Now().UTC()}
	if b.update != nil {
		st.Arch, st.Version, st.Update = b.update.state()
	}
	payload, err := protocol.Encode(protocol.KindState, b.site, b.seq.Add(1), time.Now(), st)
	if err != nil {
		return
	}
	b.send(b.topics.DeviceState(b.id), true, payload)
}

// send publishes at QoS 1; close waits for the broker's confirmation.
func (b *box) send(topic string, retained bool, payload []byte) {
	b.bytesOut.Add(int64(len(topic) + len(payload)))
	tok := b.client.Publish(topic, 1, retained, payload)
	b.mu.Lock()
	b.sent = append(b.sent, tok)
	b.mu.Unlock()
}
