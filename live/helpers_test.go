package live_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"math"
	"math/cmplx"
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

// bestMatch finds where got sits against ref (got[i] is ref[i+lag]; a
// negative lag when got starts before ref) and returns the normalised
// correlation of got with ref there, over their overlap. The lag of the
// highest cross-correlation is found by FFT at a quarter of the rate,
// then refined.
func bestMatch(ref, got []float32) (lag int, corr float64) {
	const k = 4
	rough := crossLag(decimate(ref, k), decimate(got, k))
	corr = math.Inf(-1)
	for l := rough*k - 2*k; l <= rough*k+2*k; l++ {
		if c := correlationAt(ref, got, l); c > corr {
			lag, corr = l, c
		}
	}
	return lag, corr
}

// correlationAt is the correlation of got with ref shifted by lag.
func correlationAt(ref, got []float32, lag int) float64 {
	switch {
	case lag < 0 && -lag < len(got):
		return correlation(ref, got[-lag:])
	case lag >= 0 && lag < len(ref):
		return correlation(ref[lag:], got)
	}
	return 0
}

// decimate averages each k samples into one.
func decimate(x []float32, k int) []float32 {
	out := make([]float32, len(x)/k)
	for i := range out {
		var sum float32
		for _, v := range x[i*k : i*k+k] {
			sum += v
		}
		out[i] = sum / float32(k)
	}
	return out
}

// crossLag is the lag of the highest cross-correlation of got against ref.
func crossLag(ref, got []float32) (lag int) {
	n := 1
	for n < len(ref)+len(got) {
		n <<= 1
	}
	a := make([]complex128, n)
	b := make([]complex128, n)
	for i, v := range ref {
		a[i] = complex(float64(v), 0)
	}
	for i, v := range got {
		b[i] = complex(float64(v), 0)
	}
	fft(a, false)
	fft(b, false)
	for i := range a {
		a[i] *= cmplx.Conj(b[i])
	}
	fft(a, true)
	best := math.Inf(-1)
	for l := -len(got) + 1; l < len(ref); l++ {
		if v := real(a[(l+n)%n]); v > best {
			best, lag = v, l
		}
	}
	return lag
}

// correlation is the normalised correlation of a and b over their common
// length.
func correlation(a, b []float32) float64 {
	n := min(len(a), len(b))
	var ab, aa, bb float64
	for i := range n {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// fft transforms x in place (radix 2; len(x) a power of two), inverse
// scaled by 1/n.
func fft(x []complex128, inverse bool) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, sign*2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				u, v := x[start+k], x[start+k+size/2]*wk
				x[start+k], x[start+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
	if inverse {
		for i := range x {
			x[i] /= complex(float64(n), 0)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// testOptions are the defaults without the announcement, so a test's first
// packet plays at once (TestAnnounce covers it).
func testOptions() live.Options {
	o := live.DefaultOptions()
	o.Announce = 0
	return o
}
