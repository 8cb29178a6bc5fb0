package audio

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestStartAlignerPlacesFirstFrame simulates an output whose mixer takes
// 30 ms periods with up to 10 ms of random lateness (a sound server
// consuming in bursts), and checks that the source's first byte lands at
// the wanted moment, give or take the mean lateness, which every box on the
// same output shares.
func TestStartAlignerPlacesFirstFrame(t *testing.T) {
	f := Format{SampleRate: 48000, Channels: 2}
	const (
		period   = 30 * time.Millisecond
		jitter   = 10 * time.Millisecond
		readBuf  = 120 * time.Millisecond // the output's read-ahead
		down     = 90 * time.Millisecond  // mixer → speaker
		chunk    = 5 * time.Millisecond
		lead     = time.Second
		maxError = 2500 * time.Microsecond // the median of ~30 takes
	)
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		t0 := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
		now := t0
		var taken, written int64
		at := t0.Add(lead + time.Duration(rng.IntN(int(period))))
		src := bytes.NewReader(bytes.Repeat([]byte{1, 0, 0, 0}, 48000))
		a := NewStartAligner(f, at, src, func() int64 { return written - taken }, down, chunk, func() time.Time { return now })
		buf := make([]byte, f.Bytes(readBuf))
		for k := 0; !a.Started(); k++ {
			// Take k happens at its slot plus lateness; bytes taken in it
			// are heard from slot + down on, in order.
			now = t0.Add(time.Duration(k)*period + time.Duration(rng.Int64N(int64(jitter))))
			taken = min(written, int64(k)*f.Bytes(period))
			for !a.Started() && written-taken < f.Bytes(readBuf) {
				n, err := a.Read(buf[:f.Bytes(readBuf)-(written-taken)])
				if err != nil && err != io.EOF {
					t.Fatal(err)
				}
				if a.Started() {
					first := written + int64(bytes.IndexByte(buf[:n], 1))
					heard := t0.Add(f.Duration(first) + down) // the steady output: slot 0 heard at t0 + down
					// A late take makes the output look slower than it is by
					// the median lateness: the start comes that much early.
					if d := heard.Sub(at) + jitter/2; d > maxError || d < -maxError {
						t.Errorf("seed %d: first frame heard %v off the wanted moment (less the shared median lateness %v); want within %v", seed, d, jitter/2, maxError)
					}
				}
				written += int64(n)
			}
		}
	}
}

// TestStartAlignerLate starts at once, and says how late, when read after
// the wanted moment.
func TestStartAlignerLate(t *testing.T) {
	f := Format{SampleRate: 48000, Channels: 1}
	now := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC)
	a := NewStartAligner(f, now.Add(-time.Second), bytes.NewReader([]byte{1, 2, 3, 4}), func() int64 { return 0 }, 0, time.Millisecond, func() time.Time { return now })
	b := make([]byte, 64)
	n, err := a.Read(b)
	if n != 4 || err != nil || !bytes.Equal(b[:4], []byte{1, 2, 3, 4}) {
		t.Fatalf("Read = %d, %v, %v; want the source at once", n, err, b[:n])
	}
	if a.Late != time.Second {
		t.Fatalf("Late = %v, want 1s", a.Late)
	}
}
