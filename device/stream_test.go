package device

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/loa-commune/loa/audio"
	_ "github.com/loa-commune/loa/audio/opus" // libopus, as loa-agent has it
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/protocol"
)

// A live session in the tests is an Ogg Opus recording made by ffmpeg (a
// chirp under a slow tremolo, so no two moments are alike and a sample
// out of place shows), cut into the controller's packets of 5 frames of
// 20 ms. What a box must sound at position p of the session (samples at
// 48 kHz from the item's start, the first frame there) is ffmpeg's own
// decode of the recording (through libopus) at p minus its pre-skip.

// liveSession is a recording as a session's packets, and the reference.
type liveSession struct {
	frames  [][]byte
	preSkip int
	ref     []float32 // ffmpeg's decode, mono 48 kHz, pre-skip dropped
	total   int64     // samples of all frames
}

// liveSessions are the recordings made so far, by length: the tests
// only read them.
var liveSessions = struct {
	sync.Mutex
	m map[time.Duration]*liveSession
}{m: map[time.Duration]*liveSession{}}

// makeLiveSession encodes d of the test sound with ffmpeg and reads it.
func makeLiveSession(t *testing.T, d time.Duration) *liveSession {
	t.Helper()
	mediatest.Need(t, "ffmpeg")
	liveSessions.Lock()
	defer liveSessions.Unlock()
	if s := liveSessions.m[d]; s != nil {
		return s
	}
	path := filepath.Join(t.TempDir(), "live.opus")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i",
		fmt.Sprintf("aevalsrc=0.4*sin(2*PI*(200*t+300*t*t))*(0.6+0.4*sin(2*PI*3*t)):s=48000:d=%g", d.Seconds()),
		"-ac", "1", "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-f", "ogg", path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	op, err := audio.NewOpusPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	s := &liveSession{preSkip: op.PreSkip()}
	for {
		p, n, err := op.Next()
		if err != nil {
			break
		}
		s.frames = append(s.frames, bytes.Clone(p))
		s.total += int64(n)
	}
	s.ref = mediatest.PCM(t, path, 1, "-c:a", "libopus", "-request_sample_fmt", "flt")
	if len(s.frames) < 10 || len(s.ref) < int(d.Seconds()*streamRate)-960 {
		t.Fatalf("recording of %d frames, reference of %d samples", len(s.frames), len(s.ref))
	}
	liveSessions.m[d] = s
	return s
}

// want is the reference at session position p, at volume gain g (0 where
// the reference has nothing).
func (s *liveSession) want(p int64, g float32) float32 {
	i := p - int64(s.preSkip)
	if i < 0 || i >= int64(len(s.ref)) {
		return 0
	}
	return s.ref[i] * g
}

// length is where the recording ends: its pre-skip and its sound.
func (s *liveSession) length() int64 { return int64(s.preSkip + len(s.ref)) }

// packets cuts the session into packets of 5 frames, the first at start.
func (s *liveSession) packets(start time.Time) []protocol.StreamPacket {
	var out []protocol.StreamPacket
	var pos int64
	for i := 0; i < len(s.frames); i += 5 {
		p := protocol.StreamPacket{Seq: uint64(len(out)), At: start.Add(streamDur(pos)), Channels: 1}
		for _, f := range s.frames[i:min(i+5, len(s.frames))] {
			n, _ := audio.OpusPacketSamples(f)
			p.Frames = append(p.Frames, f)
			pos += int64(n)
		}
		out = append(out, p)
	}
	return out
}

// endPacket is the packet that ends a session at at.
func endPacket(seq int, at time.Time) protocol.StreamPacket {
	return protocol.StreamPacket{Seq: uint64(seq), At: at, Channels: 1, End: true}
}

// streamItem is a live session's plan item.
func streamItem(id, session string, start time.Time, window time.Duration) protocol.PlanItem {
	return protocol.PlanItem{
		ID: id, Announcement: "ann-" + id, Start: start, Expires: start.Add(window),
		Priority: protocol.High, Repeat: 1, Status: protocol.StatusLive,
		Stream: &protocol.StreamRef{Session: session, Channels: 1},
	}
}

// followRealTime moves the fake clock with real time from now on: the
// player sounds a session in real time, and the test controller sends it
// in real time, by this clock.
func followRealTime(t *testing.T, c *fakeClock) {
	t.Helper()
	base, start := time.Now(), c.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				c.Set(start.Add(time.Since(base)))
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
}

// goLive waits until the box follows the session on topic, then moves the
// clock to just before the box cues a session starting at start, and on
// with real time.
func goLive(t *testing.T, srv *mochi.Server, clock *fakeClock, topic string, start time.Time) {
	t.Helper()
	waitSubscribed(t, srv, topic, true)
	clock.Set(start.Add(-cueLead - 100*time.Millisecond))
	followRealTime(t, clock)
}

// sending is one packet the test controller sends at a time of the clock.
type sending struct {
	at      time.Time
	payload []byte
}

// liveDelay is how far ahead of its time the controller sends a packet.
const liveDelay = 1500 * time.Millisecond

// onTime schedules packets as the controller sends them: each liveDelay
// before its time, signed by the test controller.
func onTime(t *testing.T, topic string, ps ...protocol.StreamPacket) []sending {
	t.Helper()
	out := make([]sending, len(ps))
	for i, p := range ps {
		out[i] = sending{at: p.At.Add(-liveDelay), payload: encodeStream(t, topic, p, testSigner)}
	}
	return out
}

func encodeStream(t *testing.T, topic string, p protocol.StreamPacket, s *protocol.Signer) []byte {
	t.Helper()
	b, err := protocol.EncodeStreamPacket(topic, p, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendLive publishes the packets at their times of clock (QoS 0, not
// retained, as the controller does), in the background; those due before
// now at once. It returns a function that waits until all were sent.
func (ctl *controller) sendLive(clock *fakeClock, topic string, plan []sending) (wait func()) {
	plan = slices.Clone(plan)
	slices.SortStableFunc(plan, func(x, y sending) int { return x.at.Compare(y.at) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range plan {
			for clock.Now().Before(s.at) {
				time.Sleep(time.Millisecond)
			}
			ctl.c.Publish(topic, 0, false, s.payload)
		}
	}()
	return func() {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			ctl.t.Fatal("the test controller did not finish sending")
		}
	}
}

// waitSubscribed polls the broker until the box subscribes to topic (or
// with subscribed false, until it left it).
func waitSubscribed(t *testing.T, s *mochi.Server, topic string, subscribed bool) {
	t.Helper()
	client := "loa-" + testSite + "-" + testID
	eventually(t, fmt.Sprintf("box subscribed to %s: %v", topic, subscribed), func() bool {
		_, ok := s.Topics.Subscribers(topic).Subscriptions[client]
		return ok == subscribed
	}, nil)
}

// liveSetup is a broker, a controller with the box's config, and a clock.
func liveSetup(t *testing.T) (*controller, *mochi.Server, string, *fakeClock) {
	t.Helper()
	srv, broker := startBrokerServer(t, "127.0.0.1:0")
	ctl := newController(t, broker)
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 60, EmergencyVolume: 90})
	return ctl, srv, broker, newFakeClock(t0)
}

// liveGain is the box's volume in the tests (60) as a factor.
var liveGain = audio.VolumeGain(60)

// mono is the left channel of the box's stereo output (the right is the
// same for a mono session).
func mono(t *testing.T, s []float32) []float32 {
	t.Helper()
	out := make([]float32, len(s)/2)
	for i := range out {
		out[i] = s[2*i]
		if s[2*i+1] != s[2*i] {
			t.Fatalf("frame %d: left %v, right %v: a mono session must sound the same on both", i, s[2*i], s[2*i+1])
		}
	}
	return out
}

// finalEvent returns the item's final event.
func (ctl *controller) finalEvent(item string) protocol.Event {
	ctl.t.Helper()
	for _, ev := range ctl.allEvents() {
		if ev.Item == item && ev.Type.Final() {
			return ev
		}
	}
	ctl.t.Fatalf("no final event for %s", item)
	return protocol.Event{}
}

// eventAt returns the n-th (from 0) event of typ for item.
func (ctl *controller) nthEvent(item string, typ protocol.EventType, n int) protocol.Event {
	ctl.t.Helper()
	for _, ev := range ctl.allEvents() {
		if ev.Item == item && ev.Type == typ {
			if n == 0 {
				return ev
			}
			n--
		}
	}
	ctl.t.Fatalf("no %s event #%d for %s", typ, n, item)
	return protocol.Event{}
}

// assertPlays checks that got[k] is the session at position from+k for
// the k in [a, b), to within float precision (ffmpeg's libopus gives the
// box's libopus samples).
func assertPlays(t *testing.T, s *liveSession, got []float32, from int64, a, b int) {
	t.Helper()
	if b > len(got) {
		t.Fatalf("output of %d samples, want at least %d", len(got), b)
	}
	for k := a; k < b; k++ {
		if w := s.want(from+int64(k), liveGain); math.Abs(float64(got[k]-w)) > 1e-4 {
			t.Fatalf("output sample %d (session position %d, %v) = %v, want %v",
				k, from+int64(k), streamDur(from+int64(k)), got[k], w)
		}
	}
}

// snrAt is how close got[a:b] is to the session at position from+k, in dB.
func snrAt(s *liveSession, got []float32, from int64, a, b int) float64 {
	var sig, noise float64
	for k := a; k < b && k < len(got); k++ {
		w := float64(s.want(from+int64(k), liveGain))
		d := float64(got[k]) - w
		sig += w * w
		noise += d * d
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// assertSilent checks that got[a:b] is silence.
func assertSilent(t *testing.T, got []float32, a, b int) {
	t.Helper()
	for k := a; k < b; k++ {
		if got[k] != 0 {
			t.Fatalf("output sample %d = %v, want silence in [%d, %d)", k, got[k], a, b)
		}
	}
}

// at is the sample of a 48 kHz mono output for d.
func at(d time.Duration) int { return int(streamSamples(d)) }

// TestLiveSessionOnTime: a box that follows a session from before its
// start sounds every frame at its own sample from the item's start, as
// ffmpeg decodes the recording, stops at the end packet, reports played
// with the time it heard, and leaves the session's topic.
func TestLiveSessionOnTime(t *testing.T) {
	t.Parallel()
	ctl, srv, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 2500*time.Millisecond)
	start := t0.Add(3 * time.Second)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	// The session ends where the recording does, inside its last frame.
	length := s.length()
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(length))))

	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock})
	goLive(t, srv, clock, topic, start)
	sent := ctl.sendLive(clock, topic, onTime(t, topic, ps...))
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()

	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlayed}
	if got := ctl.eventsOf(it.ID); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if p := ctl.nthEvent(it.ID, protocol.EventPlaying, 0); !p.At.Equal(start) || p.Reason != "" {
		t.Errorf("playing at %v (%q), want at the start %v", p.At, p.Reason, start)
	}
	pcm, ok := b.wav(it.ID)
	if !ok {
		t.Fatal("nothing played")
	}
	got := mono(t, pcm)
	if len(got) != int(length) {
		t.Fatalf("played %d samples, want the session's %d (to its end packet)", len(got), length)
	}
	// ffmpeg drops the encoder's warm-up (the pre-skip); the box sounds it,
	// as the controller put it there.
	assertPlays(t, s, got, 0, s.preSkip, len(got))
	ev := ctl.finalEvent(it.ID)
	if ev.MissedMS != 0 || ev.HeardMS != streamDur(length).Milliseconds() || ev.Reason != "" {
		t.Errorf("final answer heard %d ms, missed %d ms (%q), want %d ms heard", ev.HeardMS, ev.MissedMS, ev.Reason, streamDur(length).Milliseconds())
	}
	waitSubscribed(t, srv, topic, false)
}

// boxDecode is what a box sounds of the session, from position 0, when the
// frames for which lost is true never reach it: libopus's decode of the
// others and, for each missing frame, libopus's concealment while the gap
// is under streamConcealMax, then silence. It is the reference for where
// the box puts sound around a gap (ffmpeg has no notion of a lost packet);
// its content is checked against ffmpeg's decode apart.
func (s *liveSession) boxDecode(t *testing.T, lost func(frame int) bool) []float32 {
	t.Helper()
	d, err := audio.NewOpusDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plc := d.(audio.OpusConcealer)
	pcm := make([]float32, audio.OpusMaxFrame)
	var out []float32
	concealed := 0
	for i, f := range s.frames {
		if !lost(i) {
			n, err := d.Decode(f, pcm)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pcm[:n]...)
			concealed = 0
			continue
		}
		n, _ := audio.OpusPacketSamples(f)
		if concealed < at(streamConcealMax) {
			m, err := plc.Conceal(n, pcm)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, pcm[:m]...)
		} else {
			out = append(out, make([]float32, n)...)
		}
		concealed += n
	}
	return out
}

// assertMatches checks got[k] against want[from+k]×gain for k in [a, b).
func assertMatches(t *testing.T, got, want []float32, from, a, b int) {
	t.Helper()
	for k := a; k < b; k++ {
		w := float32(0)
		if i := from + k; i >= 0 && i < len(want) {
			w = want[i] * liveGain
		}
		if math.Abs(float64(got[k]-w)) > 1e-4 {
			t.Fatalf("output sample %d (session position %d, %v) = %v, want %v", k, from+k, streamDur(int64(from+k)), got[k], w)
		}
	}
}

// frameAt is the index of the frame that starts at d into the session
// (frames of 20 ms).
func frameAt(d time.Duration) int { return int(d / (20 * time.Millisecond)) }

// runLive plays a session, its first frame at the item's start, sent
// as send makes it of the packets (ending with the end packet), on a box
// that follows it from before its start; it returns the box's output (mono)
// and the item's final answer.
func runLive(t *testing.T, s *liveSession, send func(topic string, ps []protocol.StreamPacket) []sending) ([]float32, *controller) {
	t.Helper()
	ctl, srv, broker, clock := liveSetup(t)
	start := t0.Add(3 * time.Second)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(s.length()))))

	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock})
	goLive(t, srv, clock, topic, start)
	sent := ctl.sendLive(clock, topic, send(topic, ps))
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()
	pcm, ok := b.wav(it.ID)
	if !ok {
		t.Fatal("nothing played")
	}
	got := mono(t, pcm)
	if len(got) != int(s.length()) {
		t.Fatalf("played %d samples, want %d", len(got), s.length())
	}
	return got, ctl
}

// TestLiveSessionLostPackets: packets lost on the way (600 ms of them) are
// concealed for 120 ms, then silent; the frames after the gap sound at
// their own positions, and the final answer says what was missed.
func TestLiveSessionLostPackets(t *testing.T) {
	t.Parallel()
	s := makeLiveSession(t, 2500*time.Millisecond)
	from, to := time.Second, 1600*time.Millisecond // packets 10..15
	got, ctl := runLive(t, s, func(topic string, ps []protocol.StreamPacket) []sending {
		plan := onTime(t, topic, ps...)
		return slices.Delete(plan, 10, 16)
	})
	lost := func(i int) bool { return i >= frameAt(from) && i < frameAt(to) }
	assertMatches(t, got, s.boxDecode(t, lost), 0, 0, len(got))
	// Placement and content: silence after the concealment, to the sample
	// where the frames come back, then the session as ffmpeg decodes it.
	assertSilent(t, got, at(from+streamConcealMax), at(to))
	if got[at(to)] == 0 && got[at(to)+1] == 0 {
		t.Fatalf("no sound at %v, where the frames come back", to)
	}
	assertPlays(t, s, got, 0, s.preSkip, at(from))
	if snr := snrAt(s, got, 0, at(to+200*time.Millisecond), len(got)); snr < 40 {
		t.Fatalf("after the gap the sound is %.1f dB from ffmpeg's decode, want at least 40", snr)
	}
	ev := ctl.finalEvent("live-1")
	if ev.Type != protocol.EventPlayed || ev.MissedMS != 600 || ev.HeardMS != streamDur(s.length()).Milliseconds()-600 ||
		!strings.Contains(ev.Reason, "missed 0.6 s of 2.5 s") {
		t.Fatalf("final answer %s, heard %d ms, missed %d ms, %q; want played, missed 600 ms", ev.Type, ev.HeardMS, ev.MissedMS, ev.Reason)
	}
}

// TestLiveSessionLatePackets: packets that arrive after the box has read
// their position (300 ms of them, sent 100 ms after their time) are
// dropped, never played late: their place is concealed, then silent.
func TestLiveSessionLatePackets(t *testing.T) {
	t.Parallel()
	s := makeLiveSession(t, 2500*time.Millisecond)
	from, to := time.Second, 1300*time.Millisecond // packets 10..12
	got, ctl := runLive(t, s, func(topic string, ps []protocol.StreamPacket) []sending {
		plan := onTime(t, topic, ps...)
		for i := 10; i < 13; i++ {
			plan[i].at = ps[i].At.Add(100 * time.Millisecond)
		}
		return plan
	})
	lost := func(i int) bool { return i >= frameAt(from) && i < frameAt(to) }
	assertMatches(t, got, s.boxDecode(t, lost), 0, 0, len(got))
	assertSilent(t, got, at(from+streamConcealMax), at(to))
	if snr := snrAt(s, got, 0, at(to+200*time.Millisecond), len(got)); snr < 40 {
		t.Fatalf("after the late packets the sound is %.1f dB from ffmpeg's decode, want at least 40", snr)
	}
	if ev := ctl.finalEvent("live-1"); ev.MissedMS != 300 {
		t.Fatalf("final answer missed %d ms (%q), want 300", ev.MissedMS, ev.Reason)
	}
}

// TestLiveSessionJitter: packets that arrive out of order (each run of five
// sent last first, up to 400 ms late) and twice sound exactly as if they
// had come in order.
func TestLiveSessionJitter(t *testing.T) {
	t.Parallel()
	s := makeLiveSession(t, 2500*time.Millisecond)
	got, ctl := runLive(t, s, func(topic string, ps []protocol.StreamPacket) []sending {
		plan := onTime(t, topic, ps...)
		frames := plan[:len(plan)-1] // the end packet goes last
		for i := 0; i+5 <= len(frames); i += 5 {
			for k := range 5 {
				frames[i+k].at = ps[i+4-k].At.Add(-liveDelay)
			}
		}
		for i := 3; i < len(frames); i += 7 {
			again := frames[i]
			again.at = again.at.Add(300 * time.Millisecond)
			plan = append(plan, again)
		}
		return plan
	})
	assertPlays(t, s, got, 0, s.preSkip, len(got))
	if ev := ctl.finalEvent("live-1"); ev.MissedMS != 0 {
		t.Fatalf("final answer missed %d ms (%q), want none", ev.MissedMS, ev.Reason)
	}
}

// TestLiveSessionForged: packets not signed by the controller (another
// key, or the controller's signature for another session) are never
// played, and the box reports them once as rejected.
func TestLiveSessionForged(t *testing.T) {
	t.Parallel()
	s := makeLiveSession(t, 2500*time.Millisecond)
	from, to := time.Second, 1500*time.Millisecond // packets 10..14
	forger := protocol.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	got, ctl := runLive(t, s, func(topic string, ps []protocol.StreamPacket) []sending {
		plan := onTime(t, topic, ps...)
		for i := 10; i < 15; i++ {
			// The session's own opening, loud and clear, in its place.
			p := ps[i]
			p.Frames = ps[i-10].Frames
			signer, on := forger, topic
			if i == 12 {
				signer, on = testSigner, protocol.NewTopics(testSite).Stream("s2") // a genuine packet of another session
			}
			plan[i].payload = encodeStream(t, on, p, signer)
		}
		return plan
	})
	lost := func(i int) bool { return i >= frameAt(from) && i < frameAt(to) }
	assertMatches(t, got, s.boxDecode(t, lost), 0, 0, len(got))
	assertSilent(t, got, at(from+streamConcealMax), at(to))
	var rejected []protocol.Event
	eventually(t, "a rejected event", func() bool {
		rejected = rejected[:0]
		for _, ev := range ctl.allEvents() {
			if ev.Type == protocol.EventRejected {
				rejected = append(rejected, ev)
			}
		}
		return len(rejected) > 0
	}, nil)
	if len(rejected) != 1 || !strings.Contains(rejected[0].Reason, ctl.topics.Stream("s1")) {
		t.Fatalf("rejected events %+v, want one naming the session's topic", rejected)
	}
}

// TestLiveSessionJoinsLate: a box that starts while a session runs joins
// it at the live point (on the session's 20 ms grid, at least the cue lead
// ahead), never from its beginning; the first frames it can have are
// those sent after it subscribed.
func TestLiveSessionJoinsLate(t *testing.T) {
	t.Parallel()
	ctl, _, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 4*time.Second)
	start := t0.Add(-time.Second - 7*time.Millisecond) // the session began before the box
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(s.length()))))
	followRealTime(t, clock)
	began := clock.Now()
	var plan []sending // from now on, as a running controller
	for _, x := range onTime(t, topic, ps...) {
		if !x.at.Before(began) {
			plan = append(plan, x)
		}
	}
	sent := ctl.sendLive(clock, topic, plan)
	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock})
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()

	play := ctl.nthEvent(it.ID, protocol.EventPlaying, 0)
	join := play.At
	if off := join.Sub(start); off%streamGrid != 0 || join.Before(began.Add(cueLead)) || join.After(began.Add(cueLead+time.Second)) {
		t.Fatalf("joined at %v into the session (box started at %v in): want the first 20 ms step a cue lead after the box started",
			join.Sub(start), began.Sub(start))
	}
	if !strings.HasPrefix(play.Reason, "joining the live session at ") {
		t.Errorf("playing reason %q", play.Reason)
	}
	pcm, ok := b.wav(it.ID)
	if !ok {
		t.Fatal("nothing played")
	}
	got := mono(t, pcm)
	jp := streamPos(start, join)
	if want := s.length() - jp; int64(len(got)) != want {
		t.Fatalf("played %d samples, want %d: from the live point to the end", len(got), want)
	}
	// Packets for before began+liveDelay were sent before the box was there:
	// silence (a fresh decoder conceals nothing), then the session in place.
	firstSent := began.Add(liveDelay)
	assertSilent(t, got, 0, int(streamPos(start, firstSent)-jp))
	from := int(streamPos(start, firstSent.Add(500*time.Millisecond)) - jp)
	if snr := snrAt(s, got, jp, from, len(got)); snr < 40 {
		t.Fatalf("the session is %.1f dB from ffmpeg's decode, want at least 40", snr)
	}
	ev := ctl.finalEvent(it.ID)
	if total := streamDur(int64(len(got))).Milliseconds(); ev.Type != protocol.EventPlayed || ev.HeardMS+ev.MissedMS < total-1 ||
		ev.HeardMS+ev.MissedMS > total || ev.MissedMS < firstSent.Sub(join).Milliseconds() || ev.MissedMS > firstSent.Sub(join).Milliseconds()+300 {
		t.Fatalf("final answer %s: heard %d ms, missed %d ms (%q); want %d ms in all, about %v missed before the first packets",
			ev.Type, ev.HeardMS, ev.MissedMS, ev.Reason, total, firstSent.Sub(join))
	}
}

// TestLiveSessionEnds: with no end packet, a session ends where a newer
// plan says it ended, or else at the item's expiry.
func TestLiveSessionEnds(t *testing.T) {
	t.Parallel()
	s := makeLiveSession(t, 2500*time.Millisecond)
	for _, tt := range []struct {
		name   string
		window time.Duration // the item's
		ends   time.Duration // the plan's end, 0 for none
		length time.Duration // what plays
	}{
		{"end in the plan", time.Minute, 1900 * time.Millisecond, 1900 * time.Millisecond},
		{"expiry", 1700 * time.Millisecond, 0, 1700 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctl, srv, broker, clock := liveSetup(t)
			start := t0.Add(3 * time.Second)
			it := streamItem("live-1", "s1", start, tt.window)
			ctl.plan("all", t0, it)
			topic := ctl.topics.Stream("s1")
			ps := s.packets(start)
			b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock})
			goLive(t, srv, clock, topic, start)
			sent := ctl.sendLive(clock, topic, onTime(t, topic, ps...))
			if tt.ends > 0 {
				ctl.waitEvent(it.ID, protocol.EventPlaying)
				ended := it
				ended.Stream = &protocol.StreamRef{Session: "s1", Channels: 1, Ends: start.Add(tt.ends)}
				ctl.plan("all", t0.Add(time.Second), ended)
			}
			ctl.waitEvent(it.ID, protocol.EventPlayed)
			sent()
			pcm, ok := b.wav(it.ID)
			if !ok {
				t.Fatal("nothing played")
			}
			got := mono(t, pcm)
			if len(got) != at(tt.length) {
				t.Fatalf("played %d samples, want %d (%v)", len(got), at(tt.length), tt.length)
			}
			assertPlays(t, s, got, 0, s.preSkip, len(got))
			if ev := ctl.finalEvent(it.ID); ev.HeardMS != tt.length.Milliseconds() || ev.MissedMS != 0 {
				t.Fatalf("final answer heard %d ms, missed %d ms, want %v heard", ev.HeardMS, ev.MissedMS, tt.length)
			}
		})
	}
}

// TestLiveSessionPreempted: an emergency cuts a live session, which fades
// out; once the emergency has played the session comes back at its live
// point, on its grid, in place, and the final answer counts both plays.
func TestLiveSessionPreempted(t *testing.T) {
	t.Parallel()
	ctl, srv, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 4*time.Second)
	start := t0.Add(3 * time.Second)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(s.length()))))
	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock, paced: true})
	goLive(t, srv, clock, topic, start)
	sent := ctl.sendLive(clock, topic, onTime(t, topic, ps...))
	ctl.waitEvent(it.ID, protocol.EventPlaying)
	b.waitHeard(it.ID, 800*time.Millisecond)

	alarm := protocol.PlanItem{ID: "alarm", Announcement: "ann-alarm", Start: clock.Now(), Expires: clock.Now().Add(time.Hour),
		Priority: protocol.Emergency, Tone: protocol.ToneFlood, Repeat: 1, Status: protocol.StatusLive}
	ctl.plan("all", t0.Add(time.Second), it, alarm)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()

	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPreempted, protocol.EventPlaying, protocol.EventPlayed}
	if got := ctl.eventsOf(it.ID); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if got := ctl.eventsOf(alarm.ID); !slices.Contains(got, protocol.EventPlayed) {
		t.Fatalf("alarm events %v", got)
	}
	// The first play: the session from its start, then a fade.
	pcm, _ := b.wav(it.ID)
	first := mono(t, pcm)
	fadeN := at(fadeOutTime)
	cut := len(first) - fadeN
	if cut < at(800*time.Millisecond) {
		t.Fatalf("first play of %d samples, want at least 0.8 s and a %d-sample fade", len(first), fadeN)
	}
	assertPlays(t, s, first, 0, s.preSkip, cut)
	for k := cut; k < len(first); k++ {
		if w := s.want(int64(k), liveGain); math.Abs(float64(first[k])) > math.Abs(float64(w))+1e-4 {
			t.Fatalf("fade-out sample %d = %v, louder than the session's %v", k, first[k], w)
		}
	}

	// The second: from the live point after the alarm, in place.
	rejoin := ctl.nthEvent(it.ID, protocol.EventPlaying, 1)
	alarmDone := ctl.nthEvent(alarm.ID, protocol.EventPlayed, 0).At
	if rejoin.At.Sub(start)%streamGrid != 0 || rejoin.At.Before(alarmDone.Add(cueLead-50*time.Millisecond)) ||
		!strings.Contains(rejoin.Reason, "after a preemption") {
		t.Fatalf("rejoined at %v (%q), the alarm done at %v: want the live point after it", rejoin.At.Sub(start), rejoin.Reason, alarmDone.Sub(start))
	}
	pcm, ok := b.wav(it.ID + "#2")
	if !ok {
		t.Fatal("no second play")
	}
	second := mono(t, pcm)
	jp := streamPos(start, rejoin.At)
	if want := s.length() - jp; int64(len(second)) != want {
		t.Fatalf("second play of %d samples, want %d: from the live point to the end", len(second), want)
	}
	// The box kept the session's packets while it was preempted: the
	// decoder settles on those before the live point, and the sound is the
	// session's from the end of the fade-in.
	if snr := snrAt(s, second, jp, at(fadeInTime), len(second)); snr < 40 {
		t.Fatalf("after the rejoin the sound is %.1f dB from ffmpeg's decode, want at least 40", snr)
	}
	ev := ctl.finalEvent(it.ID)
	heard := streamDur(int64(cut+fadeN)) + streamDur(int64(len(second)))
	if ev.MissedMS != 0 || math.Abs(float64(ev.HeardMS-heard.Milliseconds())) > 2 || !strings.Contains(ev.Reason, "not on the output") {
		t.Fatalf("final answer heard %d ms, missed %d ms (%q); want %v heard, none missed, the time off the output", ev.HeardMS, ev.MissedMS, ev.Reason, heard)
	}
}

// TestLiveSessionRestart: a box restarted in the middle of a session
// rejoins it at the live point with the next play's file, and reports it
// played (not failed), counting what both runs sounded.
func TestLiveSessionRestart(t *testing.T) {
	t.Parallel()
	ctl, srv, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 4*time.Second)
	start := t0.Add(3 * time.Second)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	ps := s.packets(start)
	ps = append(ps, endPacket(len(ps), start.Add(streamDur(s.length()))))
	cache := t.TempDir()
	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock, cache: cache})
	goLive(t, srv, clock, topic, start)
	sent := ctl.sendLive(clock, topic, onTime(t, topic, ps...))
	ctl.waitEvent(it.ID, protocol.EventPlaying)
	eventually(t, "a second of the session", func() bool { return clock.Now().After(start.Add(time.Second)) }, nil)
	b.stop()
	first, ok := b.wav(it.ID)
	if !ok {
		t.Fatal("no file of the first run")
	}

	b = startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock, cache: cache})
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	sent()
	want := []protocol.EventType{protocol.EventReceived, protocol.EventReady, protocol.EventPlaying, protocol.EventPlaying, protocol.EventPlayed}
	if got := ctl.eventsOf(it.ID); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	rejoin := ctl.nthEvent(it.ID, protocol.EventPlaying, 1)
	if rejoin.At.Sub(start)%streamGrid != 0 || !strings.Contains(rejoin.Reason, "after a restart") {
		t.Fatalf("rejoined at %v (%q): want the live point", rejoin.At.Sub(start), rejoin.Reason)
	}
	pcm, ok := b.wav(it.ID + "#2")
	if !ok {
		t.Fatal("no second play")
	}
	second := mono(t, pcm)
	jp := streamPos(start, rejoin.At)
	if want := s.length() - jp; int64(len(second)) != want {
		t.Fatalf("second play of %d samples, want %d: from the live point to the end", len(second), want)
	}
	// What was sent while the box restarted is lost; from a second after
	// the live point on, the session sounds in place.
	if snr := snrAt(s, second, jp, at(time.Second), len(second)); snr < 40 {
		t.Fatalf("after the restart the sound is %.1f dB from ffmpeg's decode, want at least 40", snr)
	}
	ev := ctl.finalEvent(it.ID)
	if run1 := streamDur(int64(len(first) / 2)).Milliseconds(); ev.Type != protocol.EventPlayed ||
		ev.HeardMS+ev.MissedMS < run1+streamDur(int64(len(second))).Milliseconds()-2 {
		t.Fatalf("final answer %s, heard %d ms, missed %d ms (%q): want both runs, %d ms and %v", ev.Type, ev.HeardMS, ev.MissedMS, ev.Reason, run1, streamDur(int64(len(second))))
	}
}

// TestLiveSessionFollowed: the box follows a session (its topic) only from
// a few seconds before the item's cue, and leaves it when the item leaves
// the plan; removal cuts the item on the output like any other.
func TestLiveSessionFollowed(t *testing.T) {
	t.Parallel()
	ctl, srv, broker, clock := liveSetup(t)
	s := makeLiveSession(t, 2500*time.Millisecond)
	start := t0.Add(time.Hour)
	it := streamItem("live-1", "s1", start, time.Minute)
	ctl.plan("all", t0, it)
	topic := ctl.topics.Stream("s1")
	b := startBox(t, boxOpts{broker: broker, server: "http://127.0.0.1:1", clock: clock})
	ctl.waitEvent(it.ID, protocol.EventReady)
	ctl.waitState(protocol.StateIdle)
	waitSubscribed(t, srv, ctl.topics.PlanAll(), true)
	if _, ok := srv.Topics.Subscribers(topic).Subscriptions["loa-"+testSite+"-"+testID]; ok {
		t.Fatal("subscribed to the session an hour before it")
	}
	clock.Set(start.Add(-cueLead - streamFollowLead))
	waitSubscribed(t, srv, topic, true)
	clock.Set(start.Add(-2 * time.Second))
	followRealTime(t, clock)
	ctl.sendLive(clock, topic, onTime(t, topic, s.packets(start)...))
	ctl.waitEvent(it.ID, protocol.EventPlaying)
	b.waitHeard(it.ID, 0)
	eventually(t, "half a second of the session", func() bool { return clock.Now().After(start.Add(500 * time.Millisecond)) }, nil)
	ctl.plan("all", t0.Add(time.Second))
	ctl.waitEvent(it.ID, protocol.EventCancelled)
	waitSubscribed(t, srv, topic, false)
	eventually(t, "the cut play's file", func() bool { _, ok := b.wav(it.ID); return ok }, nil)
	pcm, _ := b.wav(it.ID)
	if got := mono(t, pcm); len(got) > at(1500*time.Millisecond) {
		t.Fatalf("played %v of a session cancelled after half a second", streamDur(int64(len(got))))
	}
}
