package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mochistop"
)

// FloorOptions say which broker's raw latency to measure.
type FloorOptions struct {
	// Brokers are the URLs the subscribers use, spread as the boxes are.
	// Empty: an embedded broker (mochi, as in `loa serve`, without Loa's
	// hooks) is started on loopback for the measure.
	Brokers []string
	// Publisher are the URLs the publisher uses, where the controller is
	// (default: Brokers).
	Publisher          []string
	Username, Password string
}

// Floor measures the broker alone: n subscribers on one topic, one
// publisher sending rounds messages of size bytes one after the other,
// retained at QoS 1 as the controller sends plans (a broker may store a
// retained message before it delivers it: NATS does, in JetStream); the
// latency is from just before each publish to each receipt. It is the
// physical floor under Loa's fan-out on the same broker.
func Floor(ctx context.Context, o FloorOptions, n, rounds, size int, timeout time.Duration) (Latency, error) {
	brokers := o.Brokers
	if len(brokers) == 0 {
		srv, addr, err := plainBroker()
		if err != nil {
			return Latency{}, err
		}
		defer closeBroker(srv)
		brokers = []string{"tcp://" + addr}
	}
	publisher := o.Publisher
	if len(publisher) == 0 || len(o.Brokers) == 0 {
		publisher = brokers
	}
	topic := fmt.Sprintf("loa-floor/%x", randomBytes(4))
	subs := make([]*floorSub, n)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := newFloorSub(rotate(brokers, i), o, fmt.Sprintf("floor-%05d", i), topic)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.c.Disconnect(50)
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return Latency{}, err
	}
	pub, err := dial(publisher, o, "floor-publisher")
	if err != nil {
		return Latency{}, err
	}
	defer pub.Disconnect(50)
	defer pub.Publish(topic, 1, true, nil).WaitTimeout(timeout) // leave no retained message behind

	var lat []time.Duration
	missing := 0
	payload := make([]byte, size)
	for r := 0; r < rounds; r++ {
		binary.BigEndian.PutUint32(payload, uint32(r+1))
		start := time.Now()
		if tok := pub.Publish(topic, 1, true, bytes.Clone(payload)); !tok.WaitTimeout(timeout) || tok.Error() != nil {
			return Latency{}, fmt.Errorf("publish: %v", tok.Error())
		}
		deadline := time.Now().Add(timeout)
		for {
			all := true
			for _, s := range subs {
				if s.round.Load() < uint32(r+1) {
					all = false
					break
				}
			}
			if all || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return Latency{}, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		for _, s := range subs {
			if at, ok := s.arrived(uint32(r + 1)); ok {
				lat = append(lat, at.Sub(start))
			} else {
				missing++
			}
		}
	}
	return latencyOf(lat, missing), nil
}

// floorSub is one raw subscriber: it notes when each round arrived.
type floorSub struct {
	c     paho.Client
	round atomic.Uint32
	mu    sync.Mutex
	at    map[uint32]time.Time
}

func newFloorSub(brokers []string, o FloorOptions, id, topic string) (*floorSub, error) {
	s := &floorSub{at: map[uint32]time.Time{}}
	c, err := dial(brokers, o, id)
	if err != nil {
		return nil, err
	}
	s.c = c
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		now := time.Now()
		if len(m.Payload()) < 4 {
			return
		}
		r := binary.BigEndian.Uint32(m.Payload())
		s.mu.Lock()
		s.at[r] = now
		s.mu.Unlock()
		s.round.Store(max(s.round.Load(), r))
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		c.Disconnect(50)
		return nil, fmt.Errorf("%s cannot subscribe: %v", id, tok.Error())
	}
	return s, nil
}

func (s *floorSub) arrived(r uint32) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.at[r]
	return at, ok
}

func dial(brokers []string, o FloorOptions, id string) (paho.Client, error) {
	opts := paho.NewClientOptions().SetClientID(id + "-" + fmt.Sprintf("%x", randomBytes(3))).
		SetUsername(o.Username).SetPassword(o.Password).SetCleanSession(true).SetAutoReconnect(false).
		SetOrderMatters(false).SetConnectTimeout(10 * time.Second)
	for _, u := range brokers {
		opts.AddBroker(u)
	}
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("%s cannot connect to %s: %v", id, strings.Join(brokers, ","), tok.Error())
	}
	return c, nil
}

// plainBroker starts mochi on loopback letting everyone in.
func plainBroker() (*mqtt.Server, string, error) {
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, "", err
	}
	ln := mochistop.NewListener("floor", "127.0.0.1:0", nil)
	if err := srv.AddListener(ln); err != nil {
		return nil, "", err
	}
	if err := srv.Serve(); err != nil {
		return nil, "", err
	}
	return srv, ln.Address(), nil
}

// closeBroker stops mochi, giving up after 10 s: a client stuck in its
// handshake would hold Close up.
func closeBroker(srv *mqtt.Server) {
	done := make(chan struct{})
	go func() { _ = mochistop.Close(srv); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// uploadChime uploads the chime (a WAV, about a second; the controller
// refuses silence) for the schedules and announcements of a run, and
// returns its id.
func uploadChime(ctx context.Context, c *api.Client) (string, error) {
	f := audio.Format{SampleRate: 8000, Channels: 1}
	var w bytes.Buffer
	if err := audio.WriteWAV(&w, f, audio.Chime(f)); err != nil {
		return "", err
	}
	m, err := c.AddMedia(ctx, "bench-chime.wav", &w)
	if err != nil {
		return "", fmt.Errorf("upload the bench's media: %w", err)
	}
	return m.ID, nil
}
