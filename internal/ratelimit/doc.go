// Package ratelimit is a token bucket: a client may do burst things at
// once, then perSec a second. The caller keeps the buckets (by client, in
// whatever map or LRU suits it) and passes the rate on every call, so a
// changed limit takes effect at once.
package ratelimit
