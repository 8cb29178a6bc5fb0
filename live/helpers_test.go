package live_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/audio/opus"
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/protocol"
)

const (
	testSite    = "xa-test"
	testSession = "live-1"
)

// fakeClock moves only when the session sleeps or a test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
}

// sent is a payload the session published, and when.
type sent struct {
	topic   string
	payload []byte
	at      time.Time
}

// publisher records what it is given; fail, if set, decides whether the
// n-th publish (from 0) fails.
type publisher struct {
	clock live.Clock
	fail  func(n int) error

	mu   sync.Mutex
	sent []sent
}

func (p *publisher) PublishStream(topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.sent)
	p.sent = append(p.sent, sent{topic: topic, payload: slices.Clone(payload), at: p.clock.Now()})
	if p.fail != nil {
		return p.fail(n)
	}
	return nil
}

func (p *publisher) all() []sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// keys are the controller's signing keys: the old and the next one while
// a rotation is under way.
type keys struct {
	signers []*protocol.Signer
	ring    protocol.Keyring
}

func newKeys(t testing.TB, n int) keys {
	t.Helper()
	k := keys{ring: protocol.Keyring{}}
	for range n {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		k.signers = append(k.signers, protocol.NewSigner(priv))
		k.ring[protocol.KeyID(pub)] = pub
	}
	return k
}

// newSession makes a session publishing to a fresh publisher.
func newSession(t testing.TB, clock live.Clock, opts live.Options, recording string, edit ...func(*live.Config)) (*live.Session, *publisher, keys) {
	t.Helper()
	k := newKeys(t, 2)
	pub := &publisher{clock: clock}
	cfg := live.Config{
		ID: testSession, Site: testSite, Signers: k.signers, Publisher: pub,
		Options: opts, Recording: recording, Clock: clock, Location: time.UTC,
		Logger: testLogger(t),
	}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := live.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub, k
}

// testLogger logs through t.Log: shown for failed tests and with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// decoded is a published packet, checked and decoded.
type decoded struct {
	protocol.StreamPacket
	sentAt time.Time
}

// decodePackets checks every payload's signature (each key alone is
// enough) and returns the packets.
func decodePackets(t testing.TB, all []sent, k keys) []decoded {
	t.Helper()
	topic := protocol.NewTopics(testSite).Stream(testSession)
	var out []decoded
	for i, s := range all {
		if s.topic != topic {
			t.Fatalf("packet %d on %q, want %q", i, s.topic, topic)
		}
		p, err := protocol.DecodeStreamPacket(s.payload, topic, k.ring)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		for id, pub := range k.ring {
			if _, err := protocol.DecodeStreamPacket(s.payload, topic, protocol.Keyring{id: pub}); err != nil {
				t.Fatalf("packet %d with key %s alone: %v", i, id, err)
			}
		}
		// Moved to another session, it is refused.
		if _, err := protocol.DecodeStreamPacket(s.payload, protocol.NewTopics(testSite).Stream("other"), k.ring); err == nil {
			t.Fatalf("packet %d verified on another session's topic", i)
		}
		out = append(out, decoded{StreamPacket: p, sentAt: s.at})
	}
	return out
}

func frameSamples(t testing.TB, f []byte) int {
	t.Helper()
	n, err := audio.OpusPacketSamples(f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// packetSamples is the sound of a packet's frames.
func packetSamples(t testing.TB, p protocol.StreamPacket) int {
	n := 0
	for _, f := range p.Frames {
		n += frameSamples(t, f)
	}
	return n
}

func samplesDur(n int) time.Duration { return time.Duration(n) * time.Second / 48000 }

// render decodes the packets with libopus, as a box does, into one track
// of their play times from the first packet's At: a gap is silence.
func render(t testing.TB, ps []decoded) []float32 {
	t.Helper()
	if len(ps) == 0 {
		return nil
	}
	ch := ps[0].Channels
	dec, err := opus.NewDecoder(ch)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	pcm := make([]float32, audio.OpusMaxFrame*ch)
	var out []float32
	t0 := ps[0].At
	for _, p := range ps {
		if p.End {
			continue
		}
		at := int(p.At.Sub(t0).Round(time.Microsecond) * 48000 / time.Second)
		if at*ch > len(out) {
			out = append(out, make([]float32, at*ch-len(out))...)
		}
		for _, f := range p.Frames {
			n, err := dec.Decode(f, pcm)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pcm[:n*ch]...)
		}
	}
	return out
}

// segments splits the packets where the timeline jumps.
func segments(t testing.TB, ps []decoded) [][]decoded {
	var segs [][]decoded
	var cur []decoded
	for _, p := range ps {
		if p.End {
			continue
		}
		if len(cur) > 0 {
			last := cur[len(cur)-1]
			if !p.At.Equal(last.At.Add(samplesDur(packetSamples(t, last.StreamPacket)))) {
				segs = append(segs, cur)
				cur = nil
			}
		}
		cur = append(cur, p)
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

// fixtures holds the sound files the tests share, made once.
var fixtures struct {
	once sync.Once
	dir  string
	err  error
}

// fixture returns the path of a shared sound file, made by make (given the
// path to write) the first time.
func fixture(t testing.TB, name string, make func(path string)) string {
	t.Helper()
	fixtures.once.Do(func() { fixtures.dir, fixtures.err = os.MkdirTemp("", "loa-live-test-") })
	if fixtures.err != nil {
		t.Fatal(fixtures.err)
	}
	path := filepath.Join(fixtures.dir, name)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if _, err := os.Stat(path); err != nil {
		make(path)
	}
	return path
}

var fixtureMu sync.Mutex

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtures.dir != "" {
		os.RemoveAll(fixtures.dir)
	}
	os.Exit(code)
}

const announcement = "Thông báo của Ủy ban nhân dân xã. Sáng mai, từ bảy giờ đến mười một giờ, " +
	"khu vực thôn Đông mất điện để sửa chữa đường dây. Đề nghị bà con chủ động sắp xếp công việc."

// speechWAV is a few seconds of Vietnamese speech.
func speechWAV(t testing.TB) string {
	mediatest.Need(t, "ffmpeg", "espeak-ng")
	return fixture(t, "speech.wav", func(path string) { mediatest.Speech(t, path, announcement) })
}

// clipWAV is the first 4 s of the speech: a radio programme (looped),
// short enough for tests that wait for it in real time.
func clipWAV(t testing.TB) string {
	wav := speechWAV(t)
	return fixture(t, "clip.wav", func(path string) { mediatest.FFmpeg(t, "-i", wav, "-t", "4", path) })
}

// clipFile is the clip encoded by ffmpeg with extra output arguments.
func clipFile(t testing.TB, name string, args ...string) string {
	wav := clipWAV(t)
	return fixture(t, name, func(path string) {
		mediatest.FFmpeg(t, slices.Concat([]string{"-i", wav}, args, []string{path})...)
	})
}

// speechFile is the speech encoded by ffmpeg with extra output arguments
// (the codec, the format), as name.
func speechFile(t testing.TB, name string, args ...string) string {
	wav := speechWAV(t)
	return fixture(t, name, func(path string) {
		mediatest.FFmpeg(t, slices.Concat([]string{"-i", wav}, args, []string{path})...)
	})
}

// opusFile is the speech as Ogg Opus, as the CLI sends live speech.
func opusFile(t testing.TB) string {
	return speechFile(t, "speech.opus", "-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-frame_duration", "20", "-f", "ogg")
}

// reference is ffmpeg's decode of path (libopus for Opus), mono float at
// 48 kHz.
func reference(t testing.TB, path string, decoder ...string) []float32 {
	t.Helper()
	args := slices.Concat(decoder, []string{"-i", path, "-ac", "1", "-ar", "48000", "-f", "f32le", "-"})
	return audio.Floats(mediatest.FFmpeg(t, args...))
}

func itoa(n int) string { return strconv.Itoa(n) }

// testOptions are the defaults without the announcement, so a test's first
// packet plays at once (TestAnnounce covers it).
func testOptions() live.Options {
	o := live.DefaultOptions()
	o.Announce = 0
	return o
}
