package live_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/live"
)

// opusInfo reads an Ogg Opus file's pre-skip and total packet samples.
func opusInfo(t testing.TB, data []byte) (preSkip, samples int) {
	t.Helper()
	op, err := audio.NewOpusPackets(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, n, err := op.Next()
		if err == io.EOF {
			return op.PreSkip(), samples
		}
		if err != nil {
			t.Fatal(err)
		}
		samples += n
	}
}

// checkTimeline checks what every session publishes: Seq from 0, frames
// back to back, packets of PacketDuration (the last may be shorter), one
// end packet last at the end of the sound, and no packet sent earlier than
// Delay before its play time.
func checkTimeline(t *testing.T, ps []decoded, opts live.Options, sum live.Summary) {
	t.Helper()
	if len(ps) < 2 {
		t.Fatalf("%d packets", len(ps))
	}
	want := int(opts.PacketDuration * 48000 / time.Second)
	gaps := 0
	for i, p := range ps {
		if p.Seq != uint64(i) {
			t.Fatalf("packet %d has Seq %d", i, p.Seq)
		}
		if !p.End && p.At.Sub(p.sentAt) > opts.Delay {
			t.Errorf("packet %d sent %v before its play time, more than the delay", i, p.At.Sub(p.sentAt))
		}
		if i == len(ps)-1 {
			break
		}
		if p.End {
			t.Fatalf("packet %d of %d is an end packet", i, len(ps))
		}
		n := packetSamples(t, p.StreamPacket)
		next := ps[i+1]
		if i < len(ps)-2 && n != want && !next.At.After(p.At.Add(samplesDur(n))) {
			t.Errorf("packet %d carries %v, want %v", i, samplesDur(n), opts.PacketDuration)
		}
		switch end := p.At.Add(samplesDur(n)); {
		case next.At.Equal(end):
		case next.At.After(end):
			gaps++
			if gap := next.At.Sub(end); gap%(20*time.Millisecond) != 0 {
				t.Errorf("gap after packet %d of %v, not whole 20 ms", i, gap)
			}
		default:
			t.Errorf("packet %d plays at %v, before packet %d ends (%v)", i+1, next.At, i, end)
		}
	}
	last := ps[len(ps)-1]
	if !last.End || len(last.Frames) != 0 {
		t.Fatalf("the last packet is not an end packet: %+v", last.StreamPacket)
	}
	prev := ps[len(ps)-2]
	if end := prev.At.Add(samplesDur(packetSamples(t, prev.StreamPacket))); !last.At.Equal(end) || !sum.End.Equal(end) {
		t.Errorf("end packet at %v, summary end %v; the sound ends at %v", last.At, sum.End, end)
	}
	if gaps != sum.Gaps {
		t.Errorf("%d gaps in the timeline, the summary says %d", gaps, sum.Gaps)
	}
	if !sum.Start.Equal(ps[0].At) || sum.Packets != int64(len(ps)) {
		t.Errorf("summary start %v, %d packets; published %v, %d", sum.Start, sum.Packets, ps[0].At, len(ps))
	}
	frames := int64(0)
	for _, p := range ps {
		frames += int64(len(p.Frames))
	}
	if frames != sum.Frames {
		t.Errorf("%d frames published, the summary says %d", frames, sum.Frames)
	}
}

// TestRunFile plays an Ogg Opus file given all at once, as an unpaced
// source: the timeline starts Delay after it arrived, the packets go out
// at real-time pace on the fake clock, and the boxes' decode of the frames
// is ffmpeg's decode of the file, sample for sample.
func TestRunFile(t *testing.T) {
	path := opusFile(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	arrival := clock.Now()
	rec := filepath.Join(t.TempDir(), "rec", "live-1.opus")
	opts := testOptions()
	var started time.Time
	var startChannels int
	s, pub, k := newSession(t, clock, opts, rec, func(c *live.Config) {
		c.OnStart = func(at time.Time, ch int) { started, startChannels = at, ch }
	})
	sum, err := s.Run(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, sum)
	preSkip, samples := opusInfo(t, data)
	if want := arrival.Add(opts.Delay - samplesDur(preSkip)); !ps[0].At.Equal(want) || !started.Equal(want) || startChannels != 1 {
		t.Errorf("first packet at %v (OnStart %v, %d channels), want arrival + delay - pre-skip = %v", ps[0].At, started, startChannels, want)
	}
	if sum.Gaps != 0 || sum.Ended != live.EndFinished || sum.Channels != 1 || sum.PublishErrors != 0 {
		t.Errorf("summary %+v", sum)
	}
	if got := sum.End.Sub(sum.Start); got != samplesDur(samples) {
		t.Errorf("the session plays %v, the file %v", got, samplesDur(samples))
	}
	// Paced: the last packet went out Delay before it plays, the whole
	// file took its own length on the clock, not an instant.
	if took := ps[len(ps)-2].sentAt.Sub(arrival); took < samplesDur(samples)-opts.Delay-opts.PacketDuration {
		t.Errorf("published %v of sound in %v", samplesDur(samples), took)
	}

	// The boxes' sound: libopus on the frames, less the pre-skip, is what
	// ffmpeg (through libopus) makes of the file.
	got := render(t, ps)[preSkip:]
	want := reference(t, path, "-c:a", "libopus", "-request_sample_fmt", "flt")
	if len(got) < len(want) || len(got) > len(want)+960 {
		t.Fatalf("decoded %d samples, ffmpeg %d", len(got), len(want))
	}
	got = got[:len(want)]
	maxDiff := 0.0
	for i := range want {
		maxDiff = max(maxDiff, float64(abs(got[i]-want[i])))
	}
	if c := mediatest.Correlation(want, got); c < 0.9999 || maxDiff > 1e-4 {
		t.Errorf("decoded frames against ffmpeg: correlation %.6f, largest difference %g", c, maxDiff)
	}

	// The recording is the file's sound.
	if sum.Recording != rec || sum.RecordingError != nil {
		t.Fatalf("recording %q, %v", sum.Recording, sum.RecordingError)
	}
	recorded := reference(t, rec, "-c:a", "libopus", "-request_sample_fmt", "flt")
	if len(recorded) < len(want) || len(recorded) > len(want)+960 {
		t.Fatalf("recording of %d samples, want %d", len(recorded), len(want))
	}
	if c := mediatest.Correlation(want, recorded); c < 0.9999 {
		t.Errorf("recording against the file: correlation %.6f", c)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(rec), ".*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// stallReader hands out src, and when after bytes are read, moves the
// clock on by stall first: the source went quiet that long.
type stallReader struct {
	src   io.Reader
	clock *fakeClock
	after int
	stall time.Duration
	read  int
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.read < r.after && r.read+len(p) > r.after {
		p = p[:r.after-r.read]
	}
	if r.read == r.after && r.stall > 0 {
		r.clock.Advance(r.stall)
		r.stall = 0
	}
	n, err := r.src.Read(p)
	r.read += n
	return n, err
}

// TestRunStall: a source silent for 3 s mid-stream moves the timeline
// once; what follows plays Delay after it came, and the recording holds
// the gap as silence.
func TestRunStall(t *testing.T) {
	data, err := os.ReadFile(opusFile(t))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	rec := filepath.Join(t.TempDir(), "stall.opus")
	opts := testOptions()
	s, pub, k := newSession(t, clock, opts, rec)
	sum, err := s.Run(context.Background(), &stallReader{src: bytes.NewReader(data), clock: clock, after: len(data) / 2, stall: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, sum)
	if sum.Gaps != 1 || sum.Ended != live.EndFinished {
		t.Fatalf("summary %+v, want one gap", sum)
	}
	segs := segments(t, ps)
	if len(segs) != 2 {
		t.Fatalf("%d segments", len(segs))
	}
	first := segs[1][0]
	if lead := first.At.Sub(first.sentAt); lead < opts.Delay || lead > opts.Delay+20*time.Millisecond {
		t.Errorf("after the stall the first packet plays %v after it went out, want the delay %v", lead, opts.Delay)
	}
	for _, p := range segs[1][1:] {
		if p.At.Sub(p.sentAt) < opts.MinLead {
			t.Errorf("packet %d went out %v before it plays", p.Seq, p.At.Sub(p.sentAt))
		}
	}
	last := segs[0][len(segs[0])-1]
	gap := first.At.Sub(last.At.Add(samplesDur(packetSamples(t, last.StreamPacket))))
	if gap != sum.GapTime || gap < 3*time.Second-opts.Delay {
		t.Errorf("gap %v, summary %v", gap, sum.GapTime)
	}
	// The recording: as long as the session, the gap silent.
	preSkip, _ := opusInfo(t, data)
	recorded := reference(t, rec)
	if want := int(sum.End.Sub(sum.Start)*48000/time.Second) - preSkip; len(recorded) != want {
		t.Errorf("recording of %d samples, the session played %d", len(recorded), want)
	}
	gapAt := int(last.At.Sub(sum.Start)*48000/time.Second) + packetSamples(t, last.StreamPacket) - preSkip
	for i, v := range recorded[gapAt+960 : gapAt+int(gap*48000/time.Second)] {
		if abs(v) > 1e-3 {
			t.Fatalf("recording: sample %d of the gap is %v", i, v)
		}
	}
	// The boxes' sound either side of the gap is the file's.
	want := reference(t, opusFile(t), "-c:a", "libopus", "-request_sample_fmt", "flt")
	for i, seg := range segs {
		got := render(t, seg)
		if i == 0 {
			got = got[preSkip:]
		}
		if lag, c := mediatest.BestMatch(want, got); c < 0.99 {
			t.Errorf("segment %d: correlation %.4f at %d", i, c, lag)
		}
	}
}

// TestRunPublishErrors: a publisher that fails now and then costs those
// packets, counted, never the session.
func TestRunPublishErrors(t *testing.T) {
	data, err := os.ReadFile(opusFile(t))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	s, pub, k := newSession(t, clock, testOptions(), "")
	pub.fail = func(n int) error {
		if n%3 == 1 {
			return errors.New("broker gone")
		}
		return nil
	}
	sum, err := s.Run(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ps := decodePackets(t, pub.all(), k)
	if sum.Packets != int64(len(ps)) || sum.PublishErrors != int64(len(ps)/3) || sum.Ended != live.EndFinished {
		t.Errorf("%d packets handed over; summary %+v", len(ps), sum)
	}
	if sum.Recording != "" || sum.RecordingError != nil {
		t.Errorf("no recording asked, got %q %v", sum.Recording, sum.RecordingError)
	}
}

// blockingReader gives data, then blocks until closed.
type blockingReader struct {
	data []byte
	done chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.done
	return 0, io.ErrClosedPipe
}

// TestRunStopped: staff stop a session whose source hangs: Run returns at
// once, with the end packet at the end of what was sent, and says why; a
// session for a set time (ctx's deadline) finishes.
func TestRunStopped(t *testing.T) {
	data, err := os.ReadFile(opusFile(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, func())
		ended  live.EndReason
		reason string
	}{
		{"cancel", func() (context.Context, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancel
		}, live.EndStopped, "the session was stopped"},
		{"cancel with a cause", func() (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(errors.New("stopped by token an")) }
		}, live.EndStopped, "the session was stopped: stopped by token an"},
		{"deadline", func() (context.Context, func()) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			return ctx, func() { <-ctx.Done(); cancel() }
		}, live.EndFinished, "its time was over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			s, pub, k := newSession(t, clock, testOptions(), filepath.Join(t.TempDir(), "r.opus"))
			src := &blockingReader{data: data[:len(data)/2], done: make(chan struct{})}
			defer close(src.done)
			ctx, stop := tc.ctx()
			go func() {
				for pub.count() < 5 {
					time.Sleep(time.Millisecond)
				}
				stop()
			}()
			sum, err := s.Run(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Ended != tc.ended || sum.Reason != tc.reason || sum.Recording == "" {
				t.Errorf("summary %+v", sum)
			}
			checkTimeline(t, decodePackets(t, pub.all(), k), testOptions(), sum)
		})
	}
}

// TestRunCutOff: a source cut off mid-stream (the CLI's connection
// dropped) ends the session, saying so.
func TestRunCutOff(t *testing.T) {
	data, err := os.ReadFile(opusFile(t))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	s, pub, k := newSession(t, clock, testOptions(), "")
	sum, err := s.Run(context.Background(), bytes.NewReader(data[:len(data)/2]))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Ended != live.EndSourceLost || !strings.Contains(sum.Reason, "the source stopped at 06:0") {
		t.Errorf("ended %s: %s", sum.Ended, sum.Reason)
	}
	checkTimeline(t, decodePackets(t, pub.all(), k), testOptions(), sum)
}

// TestRunNotOpus: what is not an Ogg Opus stream publishes nothing.
func TestRunNotOpus(t *testing.T) {
	wav, err := os.ReadFile(speechWAV(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{"wav": wav, "empty": nil, "headers only": opusHeaders(t)} {
		t.Run(name, func(t *testing.T) {
			s, pub, _ := newSession(t, newFakeClock(), testOptions(), filepath.Join(t.TempDir(), "r.opus"))
			_, err := s.Run(context.Background(), bytes.NewReader(src))
			if !errors.Is(err, live.ErrNotAStream) || pub.count() > 0 {
				t.Errorf("err = %v, %d published", err, pub.count())
			}
			if _, err := s.Run(context.Background(), bytes.NewReader(src)); err == nil {
				t.Error("a session ran twice")
			}
		})
	}
}

// opusHeaders is an Ogg Opus stream with no sound.
func opusHeaders(t testing.TB) []byte {
	var b bytes.Buffer
	w, err := audio.NewOggOpusWriter(&b, 1, 312, 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

// TestRunMaxSession: a session longer than MaxSession ends there.
func TestRunMaxSession(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	path := fixture(t, "noise-70s.opus", func(path string) {
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.2:duration=70",
			"-ac", "1", "-c:a", "libopus", "-b:a", "16k", "-f", "ogg", path)
	})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.MaxSession = time.Minute
	s, pub, k := newSession(t, newFakeClock(), opts, "")
	sum, err := s.Run(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Ended != live.EndMaxLength || sum.End.Sub(sum.Start) != time.Minute {
		t.Errorf("ended %s after %v: %s", sum.Ended, sum.End.Sub(sum.Start), sum.Reason)
	}
	checkTimeline(t, decodePackets(t, pub.all(), k), opts, sum)
}

func TestNewRefuses(t *testing.T) {
	k := newKeys(t, 3)
	pub := &publisher{clock: live.SystemClock{}}
	bad := testOptions()
	bad.Channels = 3
	for name, cfg := range map[string]live.Config{
		"bad id":       {ID: "a/b", Site: testSite, Signers: k.signers[:1], Publisher: pub, Options: testOptions()},
		"no signer":    {ID: testSession, Site: testSite, Publisher: pub, Options: testOptions()},
		"3 signers":    {ID: testSession, Site: testSite, Signers: k.signers, Publisher: pub, Options: testOptions()},
		"no publisher": {ID: testSession, Site: testSite, Signers: k.signers[:1], Options: testOptions()},
		"bad options":  {ID: testSession, Site: testSite, Signers: k.signers[:1], Publisher: pub, Options: bad},
	} {
		if _, err := live.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var fe *live.FieldError
	if _, err := live.New(live.Config{ID: testSession, Site: testSite, Signers: k.signers[:1], Publisher: pub, Options: bad}); !errors.As(err, &fe) || fe.Field != "channels" {
		t.Errorf("bad channels: %v", err)
	}
}

// clockedReader hands out data in small pieces and moves the fake clock on
// by step per byte, like a source that arrives in real time.
type clockedReader struct {
	data  []byte
	piece int
	clock *fakeClock
	step  time.Duration
}

func (r *clockedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data[:min(r.piece, len(r.data))])
	r.data = r.data[n:]
	r.clock.Advance(time.Duration(n) * r.step)
	return n, nil
}

// realTimeSpeech is speech in pages of one frame, as `loa live` sends it,
// arriving in real time on clock; and its length.
func realTimeSpeech(t *testing.T, clock *fakeClock) (*clockedReader, time.Duration) {
	path := speechFile(t, "speech-20ms-pages.opus", "-ac", "1", "-c:a", "libopus", "-b:a", "24k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, samples := opusInfo(t, data)
	length := samplesDur(samples)
	return &clockedReader{data: data, piece: 64, clock: clock, step: length / time.Duration(len(data))}, length
}

// TestAnnounce: with an announcement the session is known (OnStart) as its
// first packet arrives, its sound starts Announce + Delay later, and what
// arrived in between is not played: the boxes were still subscribing.
func TestAnnounce(t *testing.T) {
	clock := newFakeClock()
	src, length := realTimeSpeech(t, clock)
	opts := testOptions()
	opts.Announce = time.Second
	var known, started time.Time
	s, pub, k := newSession(t, clock, opts, "", func(c *live.Config) {
		c.OnStart = func(at time.Time, _ int) { known, started = clock.Now(), at }
	})
	sum, err := s.Run(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	ps := decodePackets(t, pub.all(), k)
	if want := known.Add(opts.Announce + opts.Delay); !started.Equal(want.Truncate(time.Microsecond)) || ps[0].At.Sub(started) > 250*time.Millisecond || ps[0].At.Before(started) {
		t.Errorf("known at %v, sound from %v (first packet %v); want Announce + Delay after it was known", known, started, ps[0].At)
	}
	if played := sum.End.Sub(sum.Start); played < length-opts.Announce-1200*time.Millisecond || played > length-opts.Announce+150*time.Millisecond {
		t.Errorf("played %v of %v; want all but the announcement's %v (summary %+v)", played, length, opts.Announce, sum)
	}
}

// TestStartAt: a booked session (a relay schedule's occurrence) starts its
// sound at StartAt, whatever came before, with no announcement.
func TestStartAt(t *testing.T) {
	clock := newFakeClock()
	src, length := realTimeSpeech(t, clock)
	opts := testOptions()
	startAt := clock.Now().Add(opts.Delay + 2*time.Second)
	s, pub, k := newSession(t, clock, opts, "", func(c *live.Config) { c.StartAt = startAt })
	sum, err := s.Run(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	ps := decodePackets(t, pub.all(), k)
	// The source's reader runs on its own goroutine, so how far the fake
	// clock has moved when a packet is taken varies by a few pages.
	if d := ps[0].At.Sub(startAt); d < 0 || d > 250*time.Millisecond {
		t.Errorf("the sound starts at %v, want the booked %v", ps[0].At, startAt)
	}
	if played := sum.End.Sub(sum.Start); played < length-3200*time.Millisecond || played > length-1850*time.Millisecond {
		t.Errorf("played %v of %v; want all but about the 2 s before the booked start", played, length)
	}
}
