package onair_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/onair"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// broadcaster takes the packets and counts the replans.
type broadcaster struct {
	signer  *protocol.Signer
	keys    protocol.Keyring
	mu      sync.Mutex
	packets int
	topics  map[string]bool
	replans int
}

func (b *broadcaster) PublishStream(topic string, payload []byte) error {
	if _, err := protocol.DecodeStreamPacket(payload, topic, b.keys); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.packets++
	b.topics[topic] = true
	return nil
}
func (b *broadcaster) Signers() []*protocol.Signer { return []*protocol.Signer{b.signer} }
func (b *broadcaster) Replan() {
	b.mu.Lock()
	b.replans++
	b.mu.Unlock()
}

func setup(t *testing.T) (*onair.Manager, *store.Store, *broadcaster, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range []string{"loa-1", "loa-2"} {
		if err := st.AddDevice(ctx, store.Device{ID: id, Groups: []string{"thon-1"}, Volume: 80, CreatedAt: time.Now()}, "x"); err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	bc := &broadcaster{signer: protocol.NewSigner(priv), keys: protocol.Keyring{protocol.KeyID(pub): pub}, topics: map[string]bool{}}
	opts := live.DefaultOptions()
	opts.Delay, opts.MinLead, opts.RetryWindow, opts.IOTimeout = 300*time.Millisecond, 100*time.Millisecond, 0, 2*time.Second
	opts.Announce = 0 // the files are fed at once, not in real time
	dir := filepath.Join(t.TempDir(), "recordings")
	m, err := onair.New(onair.Options{Live: opts, Site: "xa", Dir: dir, FeedWait: time.Second}, st, bc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, st, bc, dir
}

func rule(id string) store.Rule {
	return store.Rule{ID: id, Kind: store.KindOnce, Targets: store.Targets{Groups: []string{"thon-1"}}, Priority: protocol.High,
		Repeat: 1, Validity: time.Hour, Status: protocol.StatusLive, CreatedAt: time.Now()}
}

// TestLiveSession feeds two seconds of speech as `loa live` sends it: the
// rule and the record appear once it is on air, every box gets a pending
// row, the end is recorded in both, and the recording is kept.
func TestLiveSession(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	m, st, bc, dir := setup(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "speech.opus")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-ac", "1", "-c:a", "libopus", "-b:a", "24k", src)

	x, err := m.Start(ctx, rule("l-1"), store.SessionLive, "microphone", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if x.ID != "l-1" || !x.StartedAt.IsZero() {
		t.Fatalf("before its sound the session is %+v; want only its rule id", x)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, err = m.Feed(ctx, "l-1", f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(x.ID, "l-1-") || x.EndedAt.Sub(x.StartedAt) < 1900*time.Millisecond || x.EndReason == "" || x.Packets < 20 {
		t.Fatalf("session = %+v; want about 2 s on air and how it ended", x)
	}
	r, err := st.RuleByID(ctx, "l-1")
	if err != nil || r.StreamChannels != 1 || r.StreamEnds.Sub(x.EndedAt).Abs() >= time.Millisecond {
		t.Fatalf("rule = %+v, %v; want a one-channel stream that ended at %v", r, err, x.EndedAt)
	}
	rows, err := st.Deliveries(ctx, "l-1")
	if err != nil || len(rows) != 2 {
		t.Fatalf("report rows = %v, %v; want one per box of thon-1", rows, err)
	}
	if rec, err := st.SessionByID(ctx, x.ID); err != nil || rec.StartedBy != "ops" || rec.EndReason != x.EndReason {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, x.ID+".opus")); err != nil || fi.Size() < 3000 {
		t.Fatalf("recording: %v", err)
	}
	if !bc.topics[protocol.NewTopics("xa").Stream("l-1")] || bc.replans < 2 {
		t.Errorf("packets on %v, %d replans; want the session's topic and a replan at the start and the end", bc.topics, bc.replans)
	}
	if _, err := m.Feed(ctx, "l-1", strings.NewReader("")); !errors.Is(err, api.ErrSessionOver) {
		t.Errorf("a second feed: %v, want ErrSessionOver", err)
	}
	if _, err := m.Stop(ctx, "l-404", "ops"); !errors.Is(err, api.ErrNoSuchSession) {
		t.Errorf("stopping an unknown session: %v", err)
	}
}

// TestLiveSessionWithoutSound: a live session whose sound never comes, or
// is not Ogg Opus, puts nothing on air.
func TestLiveSessionWithoutSound(t *testing.T) {
	m, st, bc, _ := setup(t)
	ctx := context.Background()
	if _, err := m.Start(ctx, rule("l-2"), store.SessionLive, "microphone", "ops"); err != nil {
		t.Fatal(err)
	}
	_, err := m.Feed(ctx, "l-2", strings.NewReader("this is not sound"))
	var se *api.SessionError
	if !errors.As(err, &se) || se.Key != messages.LiveBadAudio {
		t.Fatalf("feeding text: %v, want LiveBadAudio", err)
	}
	if _, err := m.Start(ctx, rule("l-3"), store.SessionLive, "microphone", "ops"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // FeedWait is 1 s
	if _, err := m.Feed(ctx, "l-3", strings.NewReader("")); !errors.Is(err, api.ErrNoSuchSession) && !errors.Is(err, api.ErrSessionOver) {
		t.Errorf("a feed after the wait: %v", err)
	}
	for _, id := range []string{"l-2", "l-3"} {
		if _, err := st.RuleByID(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: a rule was stored for a session that never went on air (%v)", id, err)
		}
	}
	if bc.packets != 0 {
		t.Errorf("%d packets published", bc.packets)
	}
}

// TestRelayThatNeverStarts: an address where nothing listens is a clear
// error and nothing is stored.
func TestRelayThatNeverStarts(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	m, st, _, _ := setup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = m.Start(context.Background(), rule("r-1"), store.SessionRelay, "http://"+addr+"/radio.mp3", "ops")
	var se *api.SessionError
	if !errors.As(err, &se) || se.Key != messages.RelayUnreachable {
		t.Fatalf("relaying a closed port: %v, want RelayUnreachable", err)
	}
	if _, err := st.RuleByID(context.Background(), "r-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a rule was stored: %v", err)
	}
}
