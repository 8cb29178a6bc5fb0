package device

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/protocol"
)

// syncBuffer is a bytes.Buffer safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// outboxFiles lists the records in <cache>/outbox, oldest first.
func outboxFiles(t testing.TB, cache string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(cache, outboxDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// writePlanState stores plan "all" in <cache>/state.json, as a box that
// received it earlier would have.
func writePlanState(t testing.TB, cache string, items ...protocol.PlanItem) {
	t.Helper()
	st := &savedState{Version: stateFileVersion, Plans: map[string]*heldPlan{
		"all": {Issued: t0, Seq: 1, Plan: protocol.Plan{Target: "all", Generated: t0, Items: items}},
	}}
	if err := st.save(filepath.Join(cache, stateFileName)); err != nil {
		t.Fatal(err)
	}
}

func TestOfflineEventsSurviveRestart(t *testing.T) {
	ms := newMediaServer(t)
	m := makeMedia(t, 440, 300*time.Millisecond)
	ms.add(m)
	it := item("offline-1", t0.Add(10*time.Minute), 5*time.Minute, m)
	cache := t.TempDir()
	writePlanState(t, cache, it)
	clock := newFakeClock(t0)
	addr := freePort(t) // no broker listens here yet

	b := startBox(t, boxOpts{broker: "tcp://" + addr, server: ms.URL, cache: cache, clock: clock})
	eventually(t, "received and ready in the outbox", func() bool { return len(outboxFiles(t, cache)) == 2 },
		func() string { return fmt.Sprint(outboxFiles(t, cache)) })
	clock.Advance(10 * time.Minute)
	eventually(t, "playing and played in the outbox", func() bool { return len(outboxFiles(t, cache)) == 4 },
		func() string { return fmt.Sprint(outboxFiles(t, cache)) })
	if _, ok := b.wav(it.ID); !ok {
		t.Fatal("the item did not play offline")
	}
	b.stop()
	if n := len(outboxFiles(t, cache)); n != 4 {
		t.Fatalf("%d records after stop, want 4", n)
	}

	// Restarted, still without a broker; then the broker comes up on that
	// port, with the controller's subscription in place from the start.
	startBox(t, boxOpts{broker: "tcp://" + addr, server: ms.URL, cache: cache, clock: clock})
	rec := startRecordingBroker(t, addr)
	eventually(t, "the outbox to drain", func() bool { return len(outboxFiles(t, cache)) == 0 },
		func() string { return fmt.Sprint(outboxFiles(t, cache)) })
	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}
	// The broker acknowledged each event after handing it to subscribers.
	var got []protocol.EventType
	for _, ev := range rec.allEvents() {
		got = append(got, ev.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v exactly once each", got, want)
	}
	// What waited offline leaves as one batch: one message, one ack.
	rec.mu.Lock()
	messages := rec.messages
	rec.mu.Unlock()
	if messages != 1 {
		t.Errorf("the 4 waiting events came in %d messages, want 1 batch", messages)
	}
	var at []time.Time
	for _, ev := range rec.allEvents() {
		if ev.Item == it.ID {
			at = append(at, ev.At)
		}
	}
	if !at[0].Equal(t0) || !at[1].Equal(t0) || !at[2].Equal(it.Start) || !at[3].Equal(it.Start) {
		t.Fatalf("event times %v: want received/ready at %v, playing/played at %v", at, t0, it.Start)
	}
}

// startRecordingBroker runs a broker on addr that records the box's events
// from its very start, as a controller's persistent session would.
func startRecordingBroker(t testing.TB, addr string) *controller {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: true})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(mochistop.NewListener("tcp", addr, nil)); err != nil {
		t.Fatal(err)
	}
	rec := &controller{t: t}
	err := s.Subscribe(protocol.NewTopics(testSite).DeviceEvents(testID), 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		evs, err := protocol.DecodeEvents(pk.Payload, testSite)
		if err != nil {
			t.Errorf("box sent a bad event: %v: %s", err, pk.Payload)
			return
		}
		rec.mu.Lock()
		rec.events = append(rec.events, evs...)
		rec.messages++
		rec.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(s) })
	return rec
}

func TestCorruptOutboxRecordIsSkipped(t *testing.T) {
	ctl, ms, broker := setup(t)
	cache := t.TempDir()
	dir := filepath.Join(cache, outboxDirName)
	o, err := openDiskOutbox(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	payload := func(item string) []byte {
		b, err := protocol.Encode(protocol.KindEvent, testSite, 7, t0, protocol.Event{Item: item, Type: protocol.EventPlayed, At: t0})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := o.add(payload("kept"), true); err != nil {
		t.Fatal(err)
	}
	torn := encodeOutboxRecord(payload("torn"), true)
	if err := os.WriteFile(filepath.Join(dir, outboxName(2)), torn[:len(torn)-5], 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := encodeOutboxRecord(payload("flipped"), true)
	flipped[len(flipped)-3] ^= 0x20
	if err := os.WriteFile(filepath.Join(dir, outboxName(3)), flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, outboxName(4)+tmpSuffix), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	var log syncBuffer
	startBox(t, boxOpts{broker: broker, server: ms.URL, cache: cache, logTo: &log})
	ctl.waitEvent("kept", protocol.EventPlayed)
	if n := strings.Count(log.String(), "skipping corrupt outbox record"); n != 2 {
		t.Fatalf("%d log lines about corrupt records, want 2:\n%s", n, log.String())
	}
	// The agent goes on working.
	m := makeMedia(t, 440, 200*time.Millisecond)
	ms.add(m)
	it := item("after-corruption", t0, time.Hour, m)
	ctl.plan("all", t0, it)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	for _, ev := range ctl.allEvents() {
		if ev.Item == "torn" || ev.Item == "flipped" {
			t.Fatalf("corrupt record sent: %+v", ev)
		}
	}
	eventually(t, "the outbox to drain", func() bool { return len(outboxFiles(t, cache)) == 0 },
		func() string { return fmt.Sprint(outboxFiles(t, cache)) })
}

func TestOutboxBound(t *testing.T) {
	dir := t.TempDir()
	var log syncBuffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	o, err := openDiskOutbox(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	o.maxEvents = 3
	add := func(name string, final bool) {
		t.Helper()
		if _, err := o.add([]byte(name), final); err != nil {
			t.Fatal(err)
		}
	}
	held := func() []string {
		t.Helper()
		var out []string
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			rec, err := readOutboxRecord(filepath.Join(dir, de.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(rec.payload))
		}
		return out
	}
	steps := []struct {
		name  string
		final bool
		want  []string
	}{
		{"a", false, []string{"a"}},
		{"B", true, []string{"a", "B"}},
		{"c", false, []string{"a", "B", "c"}},
		{"d", false, []string{"B", "c", "d"}}, // the oldest non-final goes first
		{"E", true, []string{"B", "d", "E"}},
		{"F", true, []string{"B", "E", "F"}},
		{"G", true, []string{"E", "F", "G"}}, // only finals left: the oldest goes
	}
	for _, s := range steps {
		add(s.name, s.final)
		if got := held(); !slices.Equal(got, s.want) {
			t.Fatalf("after %s: outbox %v, want %v", s.name, got, s.want)
		}
	}
	if n := strings.Count(log.String(), "outbox full"); n != 4 {
		t.Fatalf("%d log lines about a full outbox, want 4:\n%s", n, log.String())
	}

	// The byte bound.
	o.maxEvents = outboxMaxEvents
	o.maxBytes = o.bytes + int64(len(encodeOutboxRecord([]byte("hh"), false)))
	add("h", false) // fits
	add("i", false) // does not: E is the oldest, but final, so h goes
	if got, want := held(), []string{"E", "F", "G", "i"}; !slices.Equal(got, want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	if o.bytes > o.maxBytes {
		t.Fatalf("%d bytes held, bound %d", o.bytes, o.maxBytes)
	}

	// A new run finds the same events, oldest first, and numbers on.
	o2, err := openDiskOutbox(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range o2.takePending() {
		got = append(got, string(ev.payload))
	}
	if want := []string{"E", "F", "G", "i"}; !slices.Equal(got, want) {
		t.Fatalf("pending after reopen %v, want %v", got, want)
	}
	if len(o2.takePending()) != 0 {
		t.Fatal("events handed out twice")
	}
	id, err := o2.add([]byte("j"), false)
	if err != nil {
		t.Fatal(err)
	}
	if id <= o.next-1 {
		t.Fatalf("new record %d does not follow the old ones (up to %d)", id, o.next-1)
	}
}

func TestOutboxRecordDecode(t *testing.T) {
	good := encodeOutboxRecord([]byte(`{"x":1}`), true)
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"good", good, true},
		{"empty", nil, false},
		{"no header end", []byte("loa-event 1 00000000 0 0"), false},
		{"torn", good[:len(good)-1], false},
		{"longer", append(append([]byte(nil), good...), '!'), false},
		{"bad magic", append([]byte("xoa"), good[3:]...), false},
		{"bad final", bytes.Replace(good, []byte(" 1 7\n"), []byte(" 2 7\n"), 1), false},
		{"bad checksum", bytes.Replace(good, []byte("loa-event 1 "), []byte("loa-event 1 f"), 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := decodeOutboxRecord(tt.data)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if tt.ok && (!rec.final || string(rec.payload) != `{"x":1}`) {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func FuzzOutboxRecordDecode(f *testing.F) {
	f.Add(encodeOutboxRecord([]byte(`{"x":1}`), false))
	f.Add([]byte("loa-event 1 00000000 0 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decodeOutboxRecord(data)
		if err != nil {
			return
		}
		again, err := decodeOutboxRecord(encodeOutboxRecord(rec.payload, rec.final))
		if err != nil || !bytes.Equal(again.payload, rec.payload) || again.final != rec.final {
			t.Fatalf("decoded %q from %q; round trip %+v, %v", rec.payload, data, again, err)
		}
	})
}
