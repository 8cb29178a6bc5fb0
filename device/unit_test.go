package device

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

func TestPlanOrdering(t *testing.T) {
	var none *heldPlan
	if !none.olderThan(t0, 0) {
		t.Fatal("no plan held: anything is newer")
	}
	h := &heldPlan{Seq: 5, Plan: protocol.Plan{Generated: t0}}
	for _, tt := range []struct {
		g    time.Time
		seq  uint64
		want bool
	}{
		{t0.Add(time.Second), 1, true},
		{t0.Add(-time.Second), 99, false},
		{t0, 5, false},
		{t0, 6, true},
		{t0, 4, false},
	} {
		if got := h.olderThan(tt.g, tt.seq); got != tt.want {
			t.Errorf("olderThan(%v, %d) = %v", tt.g, tt.seq, got)
		}
	}
}

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	st, err := loadState(path)
	if err != nil || len(st.Items) != 0 {
		t.Fatalf("missing file: %+v, %v", st, err)
	}
	st.Items = map[string]*itemRecord{"a": {Status: protocol.EventReady, Arrival: 3}}
	st.SeqReserved = 2000
	if err := st.save(path); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(path)
	if err != nil || got.SeqReserved != 2000 || got.Items["a"].Status != protocol.EventReady {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatal("temp file left behind")
	}
	os.WriteFile(path, []byte(`{"version":1,"items":{`), 0o600)
	got, err = loadState(path)
	if err == nil || len(got.Items) != 0 {
		t.Fatalf("corrupt file: %+v, %v", got, err)
	}
	if _, err := os.Stat(path + ".bad"); err != nil {
		t.Fatal("corrupt file not kept aside")
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 30; n++ {
		d := backoff(n)
		if d < fetchBackoffMin*8/10 || d > fetchBackoffMax*12/10 {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
	if backoff(3) < backoff(1) {
		t.Fatal("backoff does not grow")
	}
}

func TestVolumes(t *testing.T) {
	a := fuzzAgent(t)
	v := 30
	normal := protocol.PlanItem{Priority: protocol.Normal}
	if a.volumeFor(normal) != DefaultVolume || a.volumeFor(protocol.PlanItem{Priority: protocol.Emergency}) != DefaultEmergencyVolume {
		t.Fatal("defaults before any config")
	}
	a.config = &heldConfig{Config: protocol.DeviceConfig{Volume: 40}}
	if a.volumeFor(normal) != 40 || a.volumeFor(protocol.PlanItem{Volume: &v}) != 30 {
		t.Fatal("config volume or item override")
	}
	if a.volumeFor(protocol.PlanItem{Priority: protocol.Emergency, Volume: &v}) != DefaultEmergencyVolume {
		t.Fatal("emergency must ignore the box and item volume")
	}
}

func TestTemperature(t *testing.T) {
	a := fuzzAgent(t)
	a.thermalPath = filepath.Join(t.TempDir(), "temp")
	if a.temperature() != nil {
		t.Fatal("temperature without a sensor")
	}
	os.WriteFile(a.thermalPath, []byte("48312\n"), 0o600)
	if c := a.temperature(); c == nil || *c != 48.312 {
		t.Fatalf("temperature %v", c)
	}
}

// TestPlayStreams checks playback reads the PCM file as it plays: playing a
// 60 s item (22 MB of PCM) allocates a small fraction of that.
func TestPlayStreams(t *testing.T) {
	a := fuzzAgent(t)
	sha := strings.Repeat("cd", 32)
	pcm := make([]byte, audio.DefaultFormat.Bytes(60*time.Second))
	if err := os.WriteFile(a.pcmPath(sha), pcm, 0o644); err != nil {
		t.Fatal(err)
	}
	sink := audio.NewNullSink(audio.DefaultFormat, false)
	a.sink = sink
	it := protocol.PlanItem{ID: "long", Repeat: 1, Media: protocol.Media{SHA256: sha}}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if r := a.play(newJob(it, a.pcmPath(sha), 50)); r.err != nil || !r.completed {
		t.Fatal(r.err)
	}
	runtime.ReadMemStats(&after)
	if got := sink.Frames(); got != int64(len(pcm)/audio.DefaultFormat.BytesPerFrame()) {
		t.Fatalf("played %d frames", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("playing 60 s allocated %d bytes: the file is not streamed", alloc)
	}
}

func TestInboxKeepsNewestPerTopicConfigFirst(t *testing.T) {
	b := newInbox()
	p := func(topic string, g time.Time, seq uint64) inMsg {
		return inMsg{topic: topic, env: protocol.Envelope{Seq: seq}, plan: &protocol.Plan{Generated: g}}
	}
	b.put(p("plan/all", t0.Add(time.Minute), 1))
	b.put(p("plan/all", t0, 9)) // older, arrived later
	b.put(inMsg{topic: "config", config: &protocol.DeviceConfig{}})
	got := b.take()
	var topics []string
	for _, m := range got {
		topics = append(topics, m.topic)
	}
	if !slices.Equal(topics, []string{"config", "plan/all"}) || !got[1].plan.Generated.Equal(t0.Add(time.Minute)) {
		t.Fatalf("take = %v", topics)
	}
	if len(b.take()) != 0 {
		t.Fatal("take did not empty the inbox")
	}
}

func TestStopsWhileBrokerUnreachable(t *testing.T) {
	b := startBox(t, boxOpts{broker: "tcp://" + freePort(t), server: "http://" + freePort(t)})
	eventually(t, "the loop to start", func() bool { return b.agent.clock.Now().Equal(t0) }, nil)
	b.stop() // fails the test if Close or Run do not return
}

func TestEvictsLeastRecentlyUsedUnreferenced(t *testing.T) {
	a := fuzzAgent(t)
	a.cfg.CacheMaxMB = 1
	sha := func(c string) string { return strings.Repeat(c, 64) }
	write := func(path string, n int, age time.Duration) {
		if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		os.Chtimes(path, mt, mt)
	}
	// a: in the plan, oldest; b: old, unreferenced; c: recent, unreferenced.
	write(a.pcmPath(sha("a")), 400<<10, 3*time.Hour)
	write(a.mediaPath(sha("b")), 100<<10, 2*time.Hour)
	write(a.pcmPath(sha("b")), 400<<10, 2*time.Hour)
	write(a.pcmPath(sha("c")), 400<<10, time.Minute)
	a.live["x"] = protocol.PlanItem{ID: "x", Media: protocol.Media{SHA256: sha("a")}}
	a.evictCache(0)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if !exists(a.pcmPath(sha("a"))) || !exists(a.pcmPath(sha("c"))) {
		t.Fatal("evicted media in use or more recently used")
	}
	if exists(a.pcmPath(sha("b"))) || exists(a.mediaPath(sha("b"))) {
		t.Fatal("least recently used unreferenced media kept")
	}
	if a.cacheBytes != 800<<10 {
		t.Fatalf("cache bytes %d", a.cacheBytes)
	}
}
