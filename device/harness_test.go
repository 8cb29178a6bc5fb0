package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/internal/testnet"
	"github.com/loa-commune/loa/protocol"
)

const (
	testSite  = "xa-an-binh"
	testID    = "box-01"
	testToken = "s3cret-token"
	waitFor   = 20 * time.Second // deadline for async results; never a schedule
)

// t0 is the fake wall clock's start: a plausible time.
var t0 = time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)

// fakeClock is a Clock moved by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	when time.Time
	ch   chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Set moves the clock to t (forwards or back) and fires due timers.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.timers[:0]
	for _, x := range c.timers {
		if !x.when.After(t) {
			x.ch <- t
		} else {
			keep = append(keep, x)
		}
	}
	c.timers = keep
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// startBroker runs an embedded mochi broker on a free loopback port.
func startBroker(t testing.TB) string {
	t.Helper()
	return startBrokerAt(t, "127.0.0.1:0")
}

func startBrokerAt(t testing.TB, addr string) string {
	t.Helper()
	_, url := startBrokerServer(t, addr)
	return url
}

// startBrokerServer is startBrokerAt that also returns the server.
func startBrokerServer(t testing.TB, addr string) (*mochi.Server, string) {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := mochistop.NewListener("tcp", addr, nil)
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(s) })
	return s, "tcp://" + l.Address()
}

// closeBroker closes a test broker, giving up after 5 s: mochi's Close
// waits for every client to go, and a stuck one must not hang the suite.
func closeBroker(s *mochi.Server) {
	done := make(chan struct{})
	go func() { _ = mochistop.Close(s); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// media is one file the test controller serves.
type media struct {
	data []byte
	sha  string
}

func (m media) ref() protocol.Media {
	return protocol.Media{SHA256: m.sha, Size: int64(len(m.data)), DurationMS: 1000}
}

// makeMedia is a WAV file of a tone in a format other than the box's, so
// that decoding resamples and remixes.
func makeMedia(t testing.TB, freq float64, d time.Duration) media {
	t.Helper()
	f := audio.Format{SampleRate: 22050, Channels: 1}
	n := int(d.Seconds() * float64(f.SampleRate))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(0.5 * math.Sin(2*math.Pi*freq*float64(i)/float64(f.SampleRate)))
	}
	var buf bytes.Buffer
	if err := audio.WriteWAV(&buf, f, audio.PutFloats(nil, s)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return media{data: buf.Bytes(), sha: hex.EncodeToString(sum[:])}
}

// mediaServer is the controller's media endpoint: Basic auth, Range.
type mediaServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte // sha → what is served (may be wrong on purpose)
	hits   atomic.Int64
	denied atomic.Int64
	ranges []string // Range headers seen
}

func newMediaServer(t testing.TB) *mediaServer {
	ms := &mediaServer{files: map[string][]byte{}}
	ms.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != testID || pass != testToken {
			ms.denied.Add(1)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sha, ok := strings.CutPrefix(r.URL.Path, "/v1/media/")
		ms.mu.Lock()
		data, found := ms.files[sha]
		ms.ranges = append(ms.ranges, r.Header.Get("Range"))
		ms.mu.Unlock()
		ms.hits.Add(1)
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, sha, time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(ms.Close)
	return ms
}

func (ms *mediaServer) add(m media) { ms.serve(m.sha, m.data) }

func (ms *mediaServer) rangesSeen() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]string(nil), ms.ranges...)
}

func (ms *mediaServer) serve(sha string, data []byte) {
	ms.mu.Lock()
	ms.files[sha] = data
	ms.mu.Unlock()
}

// controller is the test's side of MQTT: it publishes config and plans and
// records what the box says.
type controller struct {
	t        testing.TB
	c        paho.Client
	topics   protocol.Topics
	seq      atomic.Uint64
	mu       sync.Mutex
	events   []protocol.Event
	messages int // that carried events: a batch counts once
	states   []protocol.State
}

func newController(t testing.TB, broker string) *controller {
	t.Helper()
	ctl := &controller{t: t, topics: protocol.NewTopics(testSite)}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("ctl-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetOrderMatters(true)
	ctl.c = paho.NewClient(o)
	if tok := ctl.c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("controller connect: %v", tok.Error())
	}
	sub := func(topic string, fn func([]byte)) {
		tok := ctl.c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { fn(m.Payload()) })
		if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("controller subscribe %s: %v", topic, tok.Error())
		}
	}
	sub(ctl.topics.DeviceEvents(testID), func(b []byte) {
		evs, err := protocol.DecodeEvents(b, testSite)
		if err != nil {
			t.Errorf("box sent a bad event: %v: %s", err, b)
			return
		}
		ctl.mu.Lock()
		ctl.events = append(ctl.events, evs...)
		ctl.messages++
		ctl.mu.Unlock()
	})
	sub(ctl.topics.DeviceState(testID), func(b []byte) {
		var st protocol.State
		if _, err := protocol.Decode(b, testSite, protocol.KindState, &st); err != nil {
			t.Errorf("box sent a bad state: %v: %s", err, b)
			return
		}
		ctl.mu.Lock()
		ctl.states = append(ctl.states, st)
		ctl.mu.Unlock()
	})
	t.Cleanup(func() { ctl.c.Disconnect(100) })
	return ctl
}

func (ctl *controller) publishRaw(topic string, payload []byte, retained bool) {
	ctl.t.Helper()
	tok := ctl.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		ctl.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (ctl *controller) publish(topic string, kind protocol.Kind, issued time.Time, body any) {
	ctl.t.Helper()
	ctl.publishRaw(topic, signed(ctl.t, topic, kind, testSite, ctl.seq.Add(1), issued, body), true)
}

// testSigner is the test controller's key; test boxes trust it.
var testSigner = protocol.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))

// testKeys is the controller_keys setting of test boxes.
var testKeys = []string{protocol.FormatPublicKey(testSigner.Public())}

// signed is a message on topic as the test controller sends it.
func signed(t testing.TB, topic string, kind protocol.Kind, site string, seq uint64, issued time.Time, body any) []byte {
	t.Helper()
	b, err := protocol.EncodeSigned(topic, kind, site, seq, issued, body, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (ctl *controller) config(issued time.Time, c protocol.DeviceConfig) {
	ctl.publish(ctl.topics.DeviceConfig(testID), protocol.KindConfig, issued, c)
}

// plan publishes the retained plan of target ("all", "group/g", "device/id").
func (ctl *controller) plan(target string, generated time.Time, items ...protocol.PlanItem) {
	ctl.t.Helper()
	topic := ctl.topics.Root() + "/plan/" + target
	if items == nil {
		items = []protocol.PlanItem{}
	}
	ctl.publish(topic, protocol.KindPlan, generated, protocol.Plan{Target: target, Generated: generated, Items: items})
}

// eventsOf returns the event types seen for item, in order.
func (ctl *controller) eventsOf(item string) []protocol.EventType {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var out []protocol.EventType
	for _, ev := range ctl.events {
		if ev.Item == item {
			out = append(out, ev.Type)
		}
	}
	return out
}

func (ctl *controller) allEvents() []protocol.Event {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return append([]protocol.Event(nil), ctl.events...)
}

func (ctl *controller) lastState() (protocol.State, bool) {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if len(ctl.states) == 0 {
		return protocol.State{}, false
	}
	return ctl.states[len(ctl.states)-1], true
}

// waitEvent polls until item has had event typ.
func (ctl *controller) waitEvent(item string, typ protocol.EventType) {
	ctl.t.Helper()
	eventually(ctl.t, fmt.Sprintf("event %s for %s", typ, item), func() bool {
		for _, e := range ctl.eventsOf(item) {
			if e == typ {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("events of %s: %v", item, ctl.eventsOf(item)) })
}

// waitState polls until the last retained state is st.
func (ctl *controller) waitState(state string) protocol.State {
	ctl.t.Helper()
	var last protocol.State
	eventually(ctl.t, "state "+state, func() bool {
		var ok bool
		last, ok = ctl.lastState()
		return ok && last.State == state
	}, func() string { return fmt.Sprintf("last state %+v", last) })
	return last
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if detail != nil {
				msg = ": " + detail()
			}
			t.Fatalf("timed out waiting for %s%s", what, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// box is an agent under test with its parts.
type box struct {
	t      testing.TB
	agent  *Agent
	clock  *fakeClock
	cache  string
	wavDir string
	sink   *audio.WAVSink
	stop   func()
}

type boxOpts struct {
	broker string
	server string
	cache  string
	clock  *fakeClock
	paced  bool          // the WAV sink plays in real time, so items can be cut
	sink   audio.Sink    // instead of the WAV sink
	tone   time.Duration // alert tone length; testTone if zero
	logTo  io.Writer     // also gets the agent's log
	// prepare, if set, changes the agent before it runs.
	prepare func(a *Agent)
}

// testTone is how long alert tones play in tests.
const testTone = 300 * time.Millisecond

func startBox(t testing.TB, o boxOpts) *box {
	t.Helper()
	if o.cache == "" {
		o.cache = t.TempDir()
	}
	if o.clock == nil {
		o.clock = newFakeClock(t0)
	}
	b := &box{t: t, clock: o.clock, cache: o.cache, wavDir: filepath.Join(o.cache, "out")}
	sink := o.sink
	if sink == nil {
		wav, err := audio.NewWAVSink(b.wavDir, audio.DefaultFormat, o.paced)
		if err != nil {
			t.Fatal(err)
		}
		b.sink, sink = wav, wav
	}
	cfg := DefaultConfig()
	cfg.ID, cfg.Site, cfg.Broker, cfg.Server, cfg.Token, cfg.Cache = testID, testSite, o.broker, o.server, testToken, o.cache
	cfg.ControllerKeys = testKeys
	var logOut io.Writer = newTestWriter(t)
	if o.logTo != nil {
		logOut = io.MultiWriter(logOut, o.logTo)
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(cfg, sink, logger, o.clock)
	if err != nil {
		t.Fatal(err)
	}
	a.thermalPath = filepath.Join(o.cache, "no-thermal")
	a.mono = o.clock.Now // the fake clock moves by hand: no clock jumps unless a test wants them
	if o.prepare != nil {
		o.prepare(a)
	}
	if o.tone == 0 {
		o.tone = testTone
	}
	a.tones = newToneCache(a.format, o.tone)
	b.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), waitFor)
			defer ccancel()
			if err := a.Close(cctx); err != nil {
				t.Errorf("close: %v", err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(b.stop)
	return b
}

// playedWhole checks that item played m whole, sample for sample, at volume.
func (b *box) playedWhole(item string, m media, volume int) {
	b.t.Helper()
	got, ok := b.wav(item)
	if !ok {
		b.t.Fatalf("item %s did not play", item)
	}
	assertSamples(b.t, got, expectedPCM(b.t, m, volume))
}

// wav returns the samples the sink wrote for item, or false.
func (b *box) wav(item string) ([]float32, bool) {
	b.t.Helper()
	f, err := os.Open(b.sink.Path(item))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	format, s, err := audio.ReadWAV(f)
	if err != nil {
		b.t.Fatal(err)
	}
	if format != audio.DefaultFormat {
		b.t.Fatalf("wav format %+v", format)
	}
	return s, true
}

// testWriter sends logs to t.Log until the test's cleanup is over.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// expectedPCM is what the box must play for m at volume: the transcoded
// media times the gain.
func expectedPCM(t testing.TB, m media, volume int) []float32 {
	t.Helper()
	var buf bytes.Buffer
	if _, err := audio.Transcode(bytes.NewReader(m.data), audio.DefaultFormat, &buf); err != nil {
		t.Fatal(err)
	}
	s := audio.Floats(buf.Bytes())
	g := audio.VolumeGain(volume)
	for i := range s {
		s[i] *= g
	}
	return s
}

// alertPCM is what the box plays for the alert tone of kind at volume, and
// the pause after it when a message follows.
func alertPCM(kind string, volume int, d time.Duration) (tone, pause []float32) {
	tone = audio.Floats(audio.AlertTone(audio.DefaultFormat, kind, d))
	g := audio.VolumeGain(volume)
	for i := range tone {
		tone[i] *= g
	}
	return tone, make([]float32, audio.DefaultFormat.Bytes(toneGap)/4)
}

// concat joins sample slices.
func concat(parts ...[]float32) []float32 {
	var out []float32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func assertSamples(t testing.TB, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("played %d samples, want %d", len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4 {
			t.Fatalf("sample %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// item builds a live plan item.
func item(id string, start time.Time, window time.Duration, m media) protocol.PlanItem {
	return protocol.PlanItem{
		ID: id, Announcement: "ann-" + id, Start: start, Expires: start.Add(window),
		Priority: protocol.Normal, Media: m.ref(), Repeat: 1, Status: protocol.StatusLive,
	}
}

// newJob is a play job as the loop would make it, with a cut that nothing
// triggers unless the test cancels job.cut's parent: use cutJob.
func newJob(it protocol.PlanItem, path string, volume int) playJob {
	j, _ := cutJob(it, path, volume)
	return j
}

// cutJob is newJob with the function that cuts the item, as the loop's
// queue does.
func cutJob(it protocol.PlanItem, path string, volume int) (playJob, context.CancelFunc) {
	ctx, stop := context.WithCancel(context.Background())
	cut, cancel := context.WithCancel(context.Background())
	return playJob{ctx: ctx, stop: stop, cut: cut, item: it, name: it.ID, path: path, volume: volume}, cancel
}

// freePort returns a loopback address nothing listens on (now).
func freePort(t testing.TB) string {
	t.Helper()
	return testnet.FreePort(t)
}

var _ io.Writer = testWriter{}

// nullSink discards what it plays.
type nullSink struct{}

func (nullSink) Format() audio.Format { return audio.DefaultFormat }
func (nullSink) Play(ctx context.Context, _ string, pcm io.Reader) error {
	_, err := io.Copy(io.Discard, pcm)
	if err == nil {
		err = ctx.Err()
	}
	return err
}
func (nullSink) Close() error { return nil }

// retainedState reads the box's retained state as a new subscriber sees it.
func retainedState(t testing.TB, broker string) protocol.State {
	t.Helper()
	got := make(chan protocol.State, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("reader-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe(protocol.NewTopics(testSite).DeviceState(testID), 1, func(_ paho.Client, m paho.Message) {
		var st protocol.State
		if _, err := protocol.Decode(m.Payload(), testSite, protocol.KindState, &st); err == nil && m.Retained() {
			select {
			case got <- st:
			default:
			}
		}
	})
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case st := <-got:
		return st
	case <-time.After(waitFor):
		t.Fatal("no retained state")
	}
	return protocol.State{}
}
