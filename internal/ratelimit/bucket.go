package ratelimit

import "time"

// Bucket holds tokens, refilled at a rate up to a burst. The zero value is
// a full bucket on first use: a new client starts with its whole burst. A
// Bucket is not safe for concurrent use; its owner locks.
type Bucket struct {
	tokens float64
	at     time.Time // when tokens was computed; zero until first use
}

// refill brings the bucket to now. A clock going back adds nothing and
// keeps at, so the time is not counted twice once the clock catches up.
func (b *Bucket) refill(now time.Time, perSec float64, burst int) {
	if b.at.IsZero() {
		b.tokens, b.at = float64(burst), now
	} else if dt := now.Sub(b.at); dt > 0 {
		b.tokens, b.at = min(float64(burst), b.tokens+dt.Seconds()*perSec), now
	}
}

// Take takes a token if there is one by now and returns 0; else it takes
// nothing and returns how long until there will be one.
func (b *Bucket) Take(now time.Time, perSec float64, burst int) (wait time.Duration) {
	b.refill(now, perSec, burst)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / perSec * float64(time.Second))
}

// Full reports whether the bucket has refilled to its burst by now (or was
// never used), so dropping it loses nothing: a new one is the same. It
// does not change the bucket.
func (b *Bucket) Full(now time.Time, perSec float64, burst int) bool {
	if b.at.IsZero() {
		return true
	}
	return b.tokens+max(0, now.Sub(b.at).Seconds())*perSec >= float64(burst)
}
