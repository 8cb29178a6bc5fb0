package broadcaster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// Options configure a Service.
type Options struct {
	// UpdateOffers reads the agent updates offered to the boxes in their
	// configs, once per publish (SetUpdateOffers); nil offers none.
	UpdateOffers func(ctx context.Context) (func(id string) *protocol.UpdateOffer, error)

	Site     string
	Location *time.Location
	Horizon  time.Duration
	// OfflineFor is how long after a plan's day a box may expand the
	// recurring rules the plan carries (protocol.Plan.RulesUntil), while
	// it hears nothing newer; DefaultOfflineFor when zero.
	OfflineFor time.Duration

	// MQTTListen is where the embedded broker listens (e.g. ":1883"); used
	// when BrokerURLs is empty.
	MQTTListen string
	// BrokerURLs select an external broker (tcp://host:1883) instead: a
	// cluster's nodes, tried in order on every (re)connect.
	BrokerURLs     []string
	BrokerUsername string
	BrokerPassword string
	// MQTTTLS makes the embedded broker listen with TLS (ssl://); nil:
	// plain TCP.
	MQTTTLS *tls.Config
	// ClientTLS is the TLS configuration of the controller's own MQTT
	// client, for an ssl:// broker: the embedded one under MQTTTLS, or an
	// external one (nil: the system's roots).
	ClientTLS *tls.Config

	// MediaURL is the controller's base URL as boxes reach it.
	MediaURL        string
	HeartbeatSec    int
	AnswerSpreadMS  int // protocol.DeviceConfig.AnswerSpreadMS
	EmergencyVolume int

	// OnTrigger receives every sensor message (loa/<site>/trigger/<source>)
	// on the MQTT client's goroutine: it must not block. Nil: triggers are
	// not subscribed to.
	OnTrigger func(source string, payload []byte)

	// Keys signs everything the controller publishes to boxes; nil
	// publishes unsigned messages (tests of the broker alone).
	Keys Signer

	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Signer is what the broadcaster needs of the controller's keys.
type Signer interface {
	Signers() []*protocol.Signer // sign with all of these
	Trusted() []string           // the keys boxes must trust, for their config
}

// Service is the controller's MQTT side.
type Service struct {
	opts   Options
	store  *store.Store
	sched  *scheduler.Scheduler
	topics protocol.Topics
	log    *slog.Logger

	broker *embeddedBroker
	client paho.Client
	seq    atomic.Uint64
	// connects counts connections to the broker; after the first, retained
	// messages are published again.
	connects atomic.Int64
	// subscribed is closed after the first subscription to the boxes'
	// topics succeeded.
	subscribed     chan struct{}
	subscribedOnce sync.Once
	kick           chan struct{}
	inbox          chan inbound           // to decodeLoop (embedded broker)
	events         chan store.DeviceEvent // to ingestLoop
	states         chan store.DeviceState // to ingestLoop
	count          counters               // metrics.go
	boxes          boxes                  // metrics.go

	mu        sync.Mutex
	published map[string][32]byte   // plan topic → hash of the items last published
	pended    map[string]bool       // item ids whose pending deliveries are recorded
	computed  map[string]targetPlan // plan target → its items, while its rules and the clock allow (plans.go)
	nextAt    time.Time             // the earliest time a computed plan changes by itself

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New makes a Service; Open starts it.
func New(opts Options, st *store.Store, log *slog.Logger) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	s := &Service{
		opts: opts, store: st, log: log,
		sched:     scheduler.New(opts.Location, opts.Horizon),
		topics:    protocol.NewTopics(opts.Site),
		kick:      make(chan struct{}, 1),
		inbox:     make(chan inbound, 16*ingestBatch),
		events:    make(chan store.DeviceEvent, 4*ingestBatch),
		states:    make(chan store.DeviceState, 4*ingestBatch),
		published: map[string][32]byte{},
		pended:    map[string]bool{},
		computed:  map[string]targetPlan{},

		subscribed: make(chan struct{}),
	}
	s.count.init()
	// Boxes refuse a message whose sequence is not newer than the last one
	// on its topic (a replay); starting from the microsecond clock keeps
	// the sequence growing across restarts of the controller.
	s.seq.Store(uint64(time.Now().UnixMicro()))
	return s
}

// SetMediaURL sets the base URL boxes fetch media from; call before Open.
func (s *Service) SetMediaURL(u string) { s.opts.MediaURL = u }

// SetUpdateOffers sets where the boxes' configs get their agent update
// offers (rollout.Engine.Offers); call it before Open.
func (s *Service) SetUpdateOffers(offers func(ctx context.Context) (func(id string) *protocol.UpdateOffer, error)) {
	s.opts.UpdateOffers = offers
}

// Scheduler is the site's scheduler (its zone and cron parser).
func (s *Service) Scheduler() *scheduler.Scheduler { return s.sched }

// BrokerAddr is the embedded broker's listen address, or "" when external.
func (s *Service) BrokerAddr() string {
	if s.broker == nil {
		return ""
	}
	return s.broker.Addr()
}

// Open starts the broker (when embedded), connects, subscribes to what the
// boxes send, publishes every config and plan, and starts the planning loop.
func (s *Service) Open(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2) // both end with ctx, in Close
	go s.decodeLoop()
	go s.ingestLoop()
	brokers, user, pass := s.opts.BrokerURLs, s.opts.BrokerUsername, s.opts.BrokerPassword
	if len(brokers) == 0 {
		secret := auth.NewToken()
		b, err := startBroker(s.opts.MQTTListen, s.opts.MQTTTLS, s.topics, secret, s.store.DeviceTokenHash, s.deviceGroups, s.log)
		if err != nil {
			s.Close(ctx)
			return err
		}
		s.broker = b
		if err := b.subscribeInline(s.boxTopics(), s.receive); err != nil {
			s.Close(ctx)
			return err
		}
		scheme := "tcp://"
		if s.opts.MQTTTLS != nil {
			scheme = "ssl://"
		}
		brokers, user, pass = []string{scheme + loopbackOf(b.Addr())}, auth.ControllerUser, secret
	}
	if user == "" {
		user = auth.ControllerUser
	}
	co := paho.NewClientOptions()
	for _, u := range brokers {
		co.AddBroker(u)
	}
	co.SetClientID("loa-controller-" + s.opts.Site).SetUsername(user).SetPassword(pass).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		// A broker that refuses the first connect (a NATS cluster still
		// electing its JetStream leader) is asked again well within the
		// 15 s below, not after paho's default 30 s.
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(func(c paho.Client) { s.onConnect(c) }).
		// A persistent session's queued messages (events boxes sent while
		// the controller was down) arrive right after the CONNACK, before
		// this process has subscribed again; without a default handler
		// paho leaves them unacknowledged until the next reconnect.
		SetDefaultPublishHandler(s.handle).
		SetConnectionLostHandler(func(_ paho.Client, err error) { s.log.Warn("lost the MQTT broker, reconnecting", "err", err) })
	if s.opts.ClientTLS != nil {
		co.SetTLSConfig(s.opts.ClientTLS)
	}
	s.client = paho.NewClient(co)
	tok := s.client.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		s.Close(ctx)
		if tok.Error() != nil {
			return fmt.Errorf("connect to MQTT broker %s: %w", strings.Join(brokers, ", "), tok.Error())
		}
		return fmt.Errorf("connect to MQTT broker %s: no answer in 15 s", strings.Join(brokers, ", "))
	}
	select { // boxes are let in, and answer, once the controller listens
	case <-s.subscribed:
	case <-time.After(15 * time.Second):
		s.Close(ctx)
		return fmt.Errorf("subscribe to the boxes' topics on %s: no answer in 15 s", strings.Join(brokers, ", "))
	}
	if err := s.PublishConfigs(ctx); err != nil {
		s.Close(ctx)
		return err
	}
	if err := s.replan(ctx); err != nil {
		s.Close(ctx)
		return err
	}
	s.wg.Add(1)
	go s.planLoop()
	return nil
}

// Close stops the planning loop, disconnects and stops the broker. Calling it
// again does nothing (Open closes what it started when it fails, and its
// caller may Close too).
func (s *Service) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if s.client != nil {
			s.client.Disconnect(250)
		}
		if s.broker != nil {
			// mochi's Close waits for every client to leave; one stuck
			// client must not hold up the controller's shutdown past ctx.
			done := make(chan error, 1)
			go func() { done <- s.broker.Close() }()
			select {
			case s.closeErr = <-done:
			case <-ctx.Done():
				s.closeErr = fmt.Errorf("stop the broker: %w", ctx.Err())
			}
		}
	})
	return s.closeErr
}

// boxTopics are the filters of what boxes and sensors send.
func (s *Service) boxTopics() []string {
	f := []string{s.topics.AllDeviceStates(), s.topics.AllDeviceEvents(), s.topics.AllTimeRequests()}
	if s.opts.OnTrigger != nil {
		f = append(f, s.topics.AllTriggers())
	}
	return f
}

func (s *Service) onConnect(c paho.Client) {
	subs := map[string]byte{}
	for _, f := range s.boxTopics() {
		subs[f] = 1
	}
	subs[s.topics.AllTimeRequests()] = 0
	again := s.connects.Add(1) > 1
	s.wg.Add(1)
	go func() { // paho calls this on its own goroutine; do not block it
		defer s.wg.Done()
		for attempt := 1; ; attempt++ {
			var err error
			if s.broker == nil { // the embedded broker delivers inline
				tok := c.SubscribeMultiple(subs, s.handle)
				err = waitToken(tok)
				if err == nil {
					err = protocol.SubackError(tok.(*paho.SubscribeToken).Result())
				}
			}
			if err == nil {
				if s.broker != nil {
					s.broker.access.ready.Store(true)
				}
				s.subscribedOnce.Do(func() { close(s.subscribed) })
				if again {
					if err := s.RepublishAll(s.ctx); err != nil {
						s.log.Error("publish configs again after reconnecting", "err", err)
					}
				}
				return
			}
			s.log.Error("subscribe to box topics; trying again", "attempt", attempt, "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)):
			}
		}
	}()
	s.log.Info("connected to the MQTT broker")
}

// RepublishAll sends every retained config and plan again, signed with
// the current keys: after a reconnect (a broker restarted without
// persistence has lost them, and a box that connects then would get
// nothing) and after a key change (a box would refuse a plan signed only
// by a dropped key).
func (s *Service) RepublishAll(ctx context.Context) error {
	s.mu.Lock()
	clear(s.published)
	s.mu.Unlock()
	defer s.Replan()
	return s.PublishConfigs(ctx)
}

// Replan asks the planning loop to recompute and publish plans soon. It
// never blocks.
func (s *Service) Replan() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// deviceGroups is the broker's view of a box's groups (its ACL on group
// plans).
func (s *Service) deviceGroups(ctx context.Context, id string) ([]string, error) {
	d, err := s.store.Device(ctx, id)
	return d.Groups, err
}

// PublishConfigs publishes the retained config of the boxes named, or of
// every registered box when none is named. Their groups may have changed:
// the broker forgets what it knew of them.
func (s *Service) PublishConfigs(ctx context.Context, ids ...string) error {
	if s.broker != nil {
		s.broker.access.forget(ids...)
	}
	var devices []store.Device
	if len(ids) == 0 {
		all, err := s.store.Devices(ctx)
		if err != nil {
			return err
		}
		devices = all
	}
	for _, id := range ids {
		d, err := s.store.Device(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		} else if err != nil {
			return err
		}
		devices = append(devices, d)
	}
	offer := func(string) *protocol.UpdateOffer { return nil }
	if s.opts.UpdateOffers != nil {
		var err error
		if offer, err = s.opts.UpdateOffers(ctx); err != nil {
			return fmt.Errorf("agent update offers: %w", err)
		}
	}
	pub := s.newPipeline()
	now := s.opts.Now()
	for _, d := range devices {
		cfg := protocol.DeviceConfig{
			Name: d.Name, Groups: d.Groups, Volume: d.Volume, EmergencyVolume: s.opts.EmergencyVolume,
			MediaURL: s.opts.MediaURL, HeartbeatSec: s.opts.HeartbeatSec, AnswerSpreadMS: s.opts.AnswerSpreadMS,
			Timezone: s.opts.Location.String(),
		}
		if s.opts.Keys != nil {
			cfg.ControllerKeys = s.opts.Keys.Trusted()
		}
		cfg.Update = offer(d.ID)
		topic := s.topics.DeviceConfig(d.ID)
		payload, err := s.encode(topic, protocol.KindConfig, now, cfg)
		if err != nil {
			return fmt.Errorf("publish config of %s: %w", d.ID, err)
		}
		pub.publish(topic, payload, func(err error) {
			if err == nil {
				s.count.configsPublished.Add(1)
			}
		})
	}
	return pub.wait()
}

// ForgetDevice clears a removed box's retained config.
func (s *Service) ForgetDevice(id string) error {
	s.boxes.forget(id)
	if s.broker != nil {
		s.broker.access.forget(id)
	}
	tok := s.client.Publish(s.topics.DeviceConfig(id), 1, true, []byte{})
	return waitToken(tok)
}

func (s *Service) publish(topic string, kind protocol.Kind, body any, retained bool) error {
	payload, err := s.encode(topic, kind, s.opts.Now(), body)
	if err != nil {
		return err
	}
	return waitToken(s.client.Publish(topic, 1, retained, payload))
}

// encode makes the signed envelope of a message to boxes.
func (s *Service) encode(topic string, kind protocol.Kind, now time.Time, body any) ([]byte, error) {
	var signers []*protocol.Signer
	if s.opts.Keys != nil {
		signers = s.opts.Keys.Signers()
	}
	return protocol.EncodeSigned(topic, kind, s.opts.Site, s.seq.Add(1), now, body, signers...)
}

func waitToken(tok paho.Token) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("the MQTT broker did not confirm in 10 s")
	}
	return tok.Error()
}

// loopbackOf turns a listen address like "[::]:1883" into one to dial.
func loopbackOf(addr string) string {
	u, err := url.Parse("tcp://" + addr)
	if err != nil {
		return addr
	}
	switch u.Hostname() {
	case "", "::", "0.0.0.0":
		return "127.0.0.1:" + u.Port()
	}
	return u.Host
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
