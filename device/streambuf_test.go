package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

func TestStreamPos(t *testing.T) {
	o := t0
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"origin", 0, 0},
		{"a second", time.Second, 48000},
		{"a frame", 20 * time.Millisecond, 960},
		{"microseconds round down", 10 * time.Microsecond, 0}, // 0.48 samples
		{"and up", 11 * time.Microsecond, 1},                  // 0.528
		{"half rounds up", 31250 * time.Nanosecond, 2},        // 1.5
		{"before the origin", -20 * time.Millisecond, -960},
		{"half before rounds up", -31250 * time.Nanosecond, -1}, // -1.5
		{"just before a second before", -time.Second - time.Nanosecond, -48000},
		{"an hour in", time.Hour + 5*time.Microsecond, 3600*48000 + 0},
		{"a day in", 24*time.Hour + 21*time.Microsecond, 24*3600*48000 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamPos(o, o.Add(tt.d)); got != tt.want {
				t.Fatalf("streamPos(%v) = %d, want %d", tt.d, got, tt.want)
			}
			// Another origin, the same offset: the same position.
			if got := streamPos(o.Add(time.Hour+17), o.Add(time.Hour+17+tt.d)); got != tt.want {
				t.Fatalf("from another origin: %d, want %d", got, tt.want)
			}
			if back := streamPos(o, o.Add(streamDur(tt.want))); back != tt.want {
				t.Fatalf("streamDur(%d) = %v, which is position %d", tt.want, streamDur(tt.want), back)
			}
		})
	}
}

// opusFrame is a 20 ms CELT frame (TOC config 31, one frame) of n bytes.
func opusFrame(n int) []byte {
	f := make([]byte, n)
	f[0] = 31 << 3
	return f
}

// packetAt is a packet of frames 20 ms frames at origin+d.
func packetAt(origin time.Time, d time.Duration, frames int) protocol.StreamPacket {
	p := protocol.StreamPacket{At: origin.Add(d), Channels: 1}
	for range frames {
		p.Frames = append(p.Frames, opusFrame(10))
	}
	return p
}

// positions lists the frames' positions.
func (b *streamBuffer) positions() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int64
	for _, f := range b.frames {
		out = append(out, f.pos)
	}
	return out
}

func TestStreamBuffer(t *testing.T) {
	o := t0
	b := newStreamBuffer("s", o)

	// Frames sit at the packet's time plus the frames before them.
	if err := b.put(packetAt(o, 100*time.Millisecond, 2), o); err != nil {
		t.Fatal(err)
	}
	if err := b.put(packetAt(o, 0, 5), o); err != nil { // out of order
		t.Fatal(err)
	}
	if err := b.put(packetAt(o, 0, 5), o); err != nil { // again
		t.Fatal(err)
	}
	want := []int64{0, 960, 1920, 2880, 3840, 4800, 5760}
	if got := b.positions(); !equalInts(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}

	// Too far ahead of now: dropped whole.
	if err := b.put(packetAt(o, streamAheadMax+time.Second, 1), o); !errors.Is(err, errStreamAhead) {
		t.Fatalf("a packet 11 s ahead: %v", err)
	}

	// A join at 60 ms settles the decoder on what comes before and drops it.
	warm := b.join(2880, streamSamples(40*time.Millisecond))
	if len(warm) != 2 || warm[0].pos != 960 || warm[1].pos != 1920 {
		t.Fatalf("join warms up on %+v, want the frames at 960 and 1920", warm)
	}
	if got := b.positions(); !equalInts(got, []int64{2880, 3840, 4800, 5760}) {
		t.Fatalf("after the join: %v", got)
	}

	// Take: the frame covering a position, or the gap to the next.
	if f, ok, _ := b.take(2880, 960); !ok || f.pos != 2880 {
		t.Fatalf("take(2880) = %+v, %v", f, ok)
	}
	if f, ok, _ := b.take(3840+100, 960); !ok || f.pos != 3840 {
		t.Fatalf("take inside a frame = %+v, %v: want it, to be trimmed", f, ok)
	}
	b.take(4800, 960)
	b.take(5760, 960)
	if _, ok, gap := b.take(6720, 960); ok || gap != 960 {
		t.Fatalf("take past the frames: ok %v gap %d, want a gap of 960", ok, gap)
	}
	// A frame whose place was read is late.
	if err := b.put(packetAt(o, 120*time.Millisecond, 1), o); err != nil {
		t.Fatal(err)
	}
	if late, _ := b.counts(); late != 1 || len(b.positions()) != 0 {
		t.Fatalf("late %d, frames %v: want the frame at 120 ms dropped as late", late, b.positions())
	}
	b.put(packetAt(o, 200*time.Millisecond, 1), o)
	if _, ok, gap := b.take(6720, 10000); ok || gap != 2880 {
		t.Fatalf("before a frame at 200 ms: gap %d (ok %v), want 2880, its distance", gap, ok)
	}

	// Frames long before now are never played.
	if err := b.put(packetAt(o, 300*time.Millisecond, 1), o.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if late, _ := b.counts(); late != 2 {
		t.Fatalf("late %d after a frame 1.7 s old, want 2", late)
	}

	// The end drops what comes after it, and the earliest end wins.
	b.put(packetAt(o, time.Second, 5), o)
	b.setEnd(streamPos(o, o.Add(1040*time.Millisecond)))
	b.setEnd(streamPos(o, o.Add(2*time.Second)))
	if got, _ := b.endTime(); !got.Equal(o.Add(1040 * time.Millisecond)) {
		t.Fatalf("end %v", got.Sub(o))
	}
	if got := b.positions(); !equalInts(got, []int64{48000, 48960}) {
		t.Fatalf("after the end: %v", got)
	}
	if err := b.put(protocol.StreamPacket{At: o.Add(time.Second), Channels: 1, End: true}, o); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.endTime(); !got.Equal(o.Add(time.Second)) {
		t.Fatalf("an earlier end packet: end %v", got.Sub(o))
	}

	// Memory is bounded.
	big := newStreamBuffer("s", o)
	for i := range 500 {
		p := packetAt(o, time.Duration(i)*20*time.Millisecond, 1)
		p.Frames[0] = opusFrame(protocol.MaxOpusFrame)
		big.put(p, o)
	}
	if _, full := big.counts(); full == 0 || big.bytes > streamMaxBytes {
		t.Fatalf("%d bytes held, %d frames refused: want at most %d bytes", big.bytes, full, streamMaxBytes)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readAll reads s to its end.
func readAll(t *testing.T, s audio.Stream) []float32 {
	t.Helper()
	var out []float32
	buf := make([]float32, 1000)
	for {
		n, err := s.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamOverlap: when the controller re-bases its timeline, a frame
// stamped before the position already played is trimmed to it: the output
// goes on from the position, never back.
func TestStreamOverlap(t *testing.T) {
	s := makeLiveSession(t, 2500*time.Millisecond)
	o := t0
	b := newStreamBuffer("s", o)
	first := protocol.StreamPacket{At: o, Channels: 1, Frames: s.frames[0:5]}
	rebased := protocol.StreamPacket{At: o.Add(90 * time.Millisecond), Channels: 1, Frames: s.frames[5:10]} // 10 ms early
	for _, p := range []protocol.StreamPacket{first, rebased, endPacket(2, o.Add(190*time.Millisecond))} {
		if err := b.put(p, o); err != nil {
			t.Fatal(err)
		}
	}
	j := &streamJob{buf: b, channels: 1, join: o, startPos: 0, endPos: streamPos(o, o.Add(time.Minute)), stats: &streamStats{}}
	src, err := newStreamSource(context.Background(), context.Background(), j, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	got := readAll(t, src)

	want := s.boxDecode(t, func(i int) bool { return false })
	if len(got) != 9120 {
		t.Fatalf("%d samples, want 9120 (the end packet's position)", len(got))
	}
	trim := 480
	for k := range got {
		w := want[k]
		if k >= 4800 {
			w = want[k+trim]
		}
		if got[k] != w {
			t.Fatalf("sample %d = %v, want %v", k, got[k], w)
		}
	}
	if heard, missed := src.account(9120); heard != 9120 || missed != 0 {
		t.Fatalf("heard %d missed %d", heard, missed)
	}
}

// TestStreamSourceCut: a play that waits for its time stops waiting when it
// is cut (the fade-out comes at once) and ends when its context does.
func TestStreamSourceCut(t *testing.T) {
	s := makeLiveSession(t, 2500*time.Millisecond)
	b := newStreamBuffer("s", t0)
	j := &streamJob{buf: b, channels: 1, join: t0, endPos: streamPos(t0, t0.Add(time.Minute)), stats: &streamStats{}}
	b.put(protocol.StreamPacket{At: t0, Channels: 1, Frames: s.frames[:5]}, t0)

	ctx, stop := context.WithCancel(context.Background())
	cut, cutNow := context.WithCancel(context.Background())
	src, err := newStreamSource(ctx, cut, j, time.Now().Add(time.Hour)) // it sounds in an hour
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	done := make(chan int)
	buf := make([]float32, 960)
	go func() { n, _ := src.Read(buf); done <- n }()
	select {
	case n := <-done:
		t.Fatalf("read %d samples an hour ahead of their time", n)
	case <-time.After(50 * time.Millisecond):
	}
	cutNow()
	select {
	case n := <-done:
		if n != 960 {
			t.Fatalf("read %d samples after the cut, want a frame", n)
		}
	case <-time.After(waitFor):
		t.Fatal("the cut did not stop the wait")
	}

	src2, err := newStreamSource(ctx, context.Background(), j, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer src2.close()
	errc := make(chan error)
	go func() { _, err := src2.Read(buf); errc <- err }()
	stop()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after the play's end: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the end of the play did not stop the wait")
	}
}

// TestStreamReaderFormats: a session plays in the sink's format: remixed
// to its channels, resampled to its rate, its length and accounting kept.
func TestStreamReaderFormats(t *testing.T) {
	s := makeLiveSession(t, 2500*time.Millisecond)
	dec := s.boxDecode(t, func(int) bool { return false })
	for _, f := range []audio.Format{{SampleRate: 48000, Channels: 2}, {SampleRate: 48000, Channels: 1}, {SampleRate: 44100, Channels: 2}} {
		t.Run(fmt.Sprintf("%d Hz × %d", f.SampleRate, f.Channels), func(t *testing.T) {
			b := newStreamBuffer("s", t0)
			b.put(protocol.StreamPacket{At: t0, Channels: 1, Frames: s.frames[:50]}, t0)
			b.put(endPacket(1, t0.Add(time.Second)), t0)
			j := &streamJob{buf: b, channels: 1, join: t0, endPos: streamPos(t0, t0.Add(time.Minute)), stats: &streamStats{}}
			a := &Agent{format: f}
			r, err := a.newStreamReader(playJob{ctx: context.Background(), cut: context.Background(), stream: j, at: time.Now().Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			pcm, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			got := audio.Floats(pcm)
			frames := len(got) / f.Channels
			if want := f.SampleRate; frames < want-1 || frames > want+1 {
				t.Fatalf("%d frames for a second, want %d", frames, want)
			}
			if heard, missed, until := r.account(int64(frames)); heard < 47999 || missed != 0 || until.Sub(t0) < time.Second-time.Millisecond {
				t.Fatalf("accounted %d heard, %d missed, until %v", heard, missed, until.Sub(t0))
			}
			if f.SampleRate != streamRate {
				return
			}
			for k := range frames {
				for c := range f.Channels {
					if got[k*f.Channels+c] != dec[k] {
						t.Fatalf("frame %d channel %d = %v, want %v", k, c, got[k*f.Channels+c], dec[k])
					}
				}
			}
		})
	}
}

// TestStreamResync: when time sync corrects the clock during a play, the
// output moves to where the session is by the corrected clock: 100 ms on
// (the frames skipped are decoded unheard, so what follows is exact), then
// 100 ms back (silence while the session catches up).
func TestStreamResync(t *testing.T) {
	s := makeLiveSession(t, 2500*time.Millisecond)
	dec := s.boxDecode(t, func(int) bool { return false })
	b := newStreamBuffer("s", t0)
	b.put(protocol.StreamPacket{At: t0, Channels: 1, Frames: s.frames[:50]}, t0)
	b.put(protocol.StreamPacket{At: t0.Add(time.Second), Channels: 1, Frames: s.frames[50:100]}, t0)
	b.put(endPacket(2, t0.Add(2*time.Second)), t0)
	var offset atomic.Int64
	j := &streamJob{buf: b, channels: 1, join: t0, endPos: streamPos(t0, t0.Add(time.Minute)), stats: &streamStats{},
		offset: func() time.Duration { return time.Duration(offset.Load()) }}
	src, err := newStreamSource(context.Background(), context.Background(), j, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	read := func(n int) []float32 {
		buf := make([]float32, n)
		for k := 0; k < n; {
			m, err := src.Read(buf[k:])
			if err != nil {
				t.Fatal(err)
			}
			k += m
		}
		return buf
	}
	got := read(9600)
	offset.Store(int64(100 * time.Millisecond))
	got = append(got, read(9600)...)
	offset.Store(0)
	got = append(got, readAll(t, src)...)

	var want []float32
	want = append(want, dec[:9600]...)
	want = append(want, dec[14400:24000]...)
	want = append(want, make([]float32, 4800)...)
	want = append(want, dec[24000:96000]...)
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for k := range got {
		if got[k] != want[k] {
			t.Fatalf("sample %d = %v, want %v", k, got[k], want[k])
		}
	}
	if heard, missed := src.account(int64(len(got))); heard != int64(len(got))-4800 || missed != 4800 || src.resyncs != 2 {
		t.Fatalf("heard %d missed %d after %d moves", heard, missed, src.resyncs)
	}
}

// FuzzStreamPlay puts packets made from the input (times, frame counts and
// bytes: the controller signs what it relays, but a frame is whatever the
// encoder made) into a session's buffer, with an end, and plays it: the
// output is exactly as long as the session, whatever the frames hold, and
// every sample is accounted heard or missed.
func FuzzStreamPlay(f *testing.F) {
	f.Add([]byte{0, 0, 2, 1, 0xf8, 1, 0xf8, 0, 20, 1, 3, 0xfc, 0xff, 0xfe})
	f.Add([]byte{0xff, 0xf0, 3, 0, 0, 0, 0, 100, 1, 2, 0x08, 0x01})
	f.Add([]byte{0, 10, 1, 5, 0x4b, 0x41, 0x02, 0x00, 0x07, 0, 5, 1, 1, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newStreamBuffer("s", t0)
		end := t0.Add(300 * time.Millisecond)
		for len(data) >= 3 {
			at := t0.Add(time.Duration(int16(uint16(data[0])<<8|uint16(data[1]))) * time.Millisecond / 8)
			n := int(data[2] % 5)
			data = data[3:]
			p := protocol.StreamPacket{At: at, Channels: 1}
			for range n {
				if len(data) < 1 {
					break
				}
				l := min(int(data[0])%40+1, len(data)-1)
				if l == 0 {
					break
				}
				p.Frames = append(p.Frames, data[1:1+l])
				data = data[1+l:]
			}
			p.End = len(p.Frames) == 0
			_ = b.put(p, t0)
			if b.bytes > streamMaxBytes || b.bytes < 0 {
				t.Fatalf("%d bytes held", b.bytes)
			}
		}
		if e, ok := b.endTime(); ok && e.Before(end) {
			end = e
		}
		j := &streamJob{buf: b, channels: 1, join: t0, endPos: streamPos(t0, t0.Add(300*time.Millisecond)), stats: &streamStats{}}
		src, err := newStreamSource(context.Background(), context.Background(), j, time.Now().Add(-time.Hour))
		if err != nil {
			t.Skip(err) // no libopus
		}
		defer src.close()
		got := readAll(t, src)
		want := max(streamPos(t0, end), 0)
		if int64(len(got)) != want {
			t.Fatalf("played %d samples of a session of %d", len(got), want)
		}
		if heard, missed := src.account(int64(len(got))); heard+missed != want || heard < 0 || missed < 0 {
			t.Fatalf("heard %d + missed %d, want %d in all", heard, missed, want)
		}
	})
}
