package api

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/internal/ratelimit"
	"github.com/loa-commune/loa/internal/summarylog"
	"github.com/loa-commune/loa/messages"
)

// Rate is a token bucket: a client may make Burst requests at once, then
// PerSec a second.
type Rate struct {
	PerSec float64 `yaml:"per_sec"`
	Burst  int     `yaml:"burst"`
}

// Limits bound what one client may ask of the API, so that a runaway script
// or a flood of requests cannot crowd out the others. Each client has its
// own bucket: a staff or trigger token by its name, a box by its id, and a
// caller without valid credentials by its address (IPv4, or the /64 of an
// IPv6 address). A request over the limit is answered 429 with Retry-After
// and is not written to the audit log. The bootstrap admin token
// (admin.token, on the controller's machine only) is not limited: `loa
// bench` and bulk provisioning use it, and its holder owns the controller
// anyway. Zero fields take the value of DefaultLimits.
type Limits struct {
	// Staff is each token's rate on every route but the two below.
	Staff Rate `yaml:"staff"`
	// Boxes is each box's rate on GET /v1/media/{id} (HTTP Basic): a box
	// fetches a file or two for a new item, resuming with Range after a cut;
	// every box has its own bucket, so a whole commune may download at once.
	Boxes Rate `yaml:"boxes"`
	// CAP is each token's rate on POST /v1/alerts/cap, which may render speech.
	CAP Rate `yaml:"cap"`
	// Unauthenticated is each address's rate of requests that show no valid
	// credentials (none, unknown, expired or revoked ones).
	Unauthenticated Rate `yaml:"unauthenticated"`
	// MaxClients bounds the buckets kept: full buckets of idle clients are
	// dropped (a new one is the same), then the least recently used.
	MaxClients int `yaml:"max_clients"`
	// BodyTimeout bounds reading a request's body, UploadTimeout a media
	// upload's or an agent build's (50 MB over a slow link), so a slow sender cannot hold a
	// connection open. Headers have the HTTP server's ReadHeaderTimeout.
	BodyTimeout   time.Duration `yaml:"body_timeout"`
	UploadTimeout time.Duration `yaml:"upload_timeout"`
	// LogEvery: the first refused request is logged at once, then at most
	// one summary line per LogEvery.
	LogEvery time.Duration `yaml:"log_every"`
	// Now is the limiter's clock; time.Now when nil. (Options.Now, which
	// tests fix, is the business clock.)
	Now func() time.Time `yaml:"-"`
}

// DefaultLimits are generous for people, boxes and feeds, and small enough
// that a flood costs the controller little.
func DefaultLimits() Limits {
	return Limits{
		Staff:           Rate{PerSec: 20, Burst: 40},
		Boxes:           Rate{PerSec: 2, Burst: 20},
		CAP:             Rate{PerSec: 1, Burst: 10},
		Unauthenticated: Rate{PerSec: 5, Burst: 50},
		MaxClients:      10000,
		BodyTimeout:     time.Minute,
		UploadTimeout:   30 * time.Minute,
		LogEvery:        time.Minute,
	}
}

// withDefaults fills in the zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	for _, r := range []struct{ v, d *Rate }{{&l.Staff, &d.Staff}, {&l.Boxes, &d.Boxes}, {&l.CAP, &d.CAP}, {&l.Unauthenticated, &d.Unauthenticated}} {
		if r.v.PerSec == 0 {
			r.v.PerSec = r.d.PerSec
		}
		if r.v.Burst == 0 {
			r.v.Burst = r.d.Burst
		}
	}
	if l.MaxClients == 0 {
		l.MaxClients = d.MaxClients
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = d.BodyTimeout
	}
	if l.UploadTimeout == 0 {
		l.UploadTimeout = d.UploadTimeout
	}
	if l.LogEvery == 0 {
		l.LogEvery = d.LogEvery
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// Validate checks every limit; the error names the field.
func (l Limits) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		r    Rate
	}{{"staff", l.Staff}, {"boxes", l.Boxes}, {"cap", l.CAP}, {"unauthenticated", l.Unauthenticated}} {
		if !(r.r.PerSec > 0) || math.IsInf(r.r.PerSec, 0) {
			errs = append(errs, fmt.Errorf("%s.per_sec: %v is not a positive number", r.name, r.r.PerSec))
		}
		if r.r.Burst < 1 {
			errs = append(errs, fmt.Errorf("%s.burst: %d is less than 1", r.name, r.r.Burst))
		}
	}
	if l.MaxClients < 1 {
		errs = append(errs, fmt.Errorf("max_clients: %d is less than 1", l.MaxClients))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"body_timeout", l.BodyTimeout}, {"upload_timeout", l.UploadTimeout}, {"log_every", l.LogEvery}} {
		if d.d < time.Second {
			errs = append(errs, fmt.Errorf("%s: %v is shorter than 1s", d.name, d.d))
		}
	}
	return errors.Join(errs...)
}

// limitClass is which of Limits' rates a request is held to.
type limitClass uint8

const (
	classStaff limitClass = iota
	classBox
	classCAP
	classUnauthenticated
	classUnlimited // the bootstrap admin token
)

func (l *Limits) rate(c limitClass) Rate {
	switch c {
	case classBox:
		return l.Boxes
	case classCAP:
		return l.CAP
	case classUnauthenticated:
		return l.Unauthenticated
	}
	return l.Staff
}

// rateLimits is the API's limiter: the limits, the buckets and the log of
// refusals.
type rateLimits struct {
	limits  Limits
	buckets *buckets
	refused *summarylog.Log
}

// refusedReason is the one reason the API's refusals are counted under.
const refusedReason = "rate_limit"

func newRateLimits(l Limits, log *slog.Logger) *rateLimits {
	l = l.withDefaults()
	return &rateLimits{limits: l, buckets: newBuckets(l.MaxClients),
		// The summary's timer ends by itself after an interval without
		// refusals: a Server has no Close to stop it from.
		refused: summarylog.New(log, "refused a request over the rate limit", "refused requests over the rate limit", l.LogEvery)}
}

// admit takes a token from the bucket of the request's client. Over the
// limit it answers 429 with Retry-After and returns false. Otherwise it
// bounds how long reading the body may take and returns true.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/healthz" {
		return true
	}
	rl := s.limits
	class, client := s.limitClient(r)
	var wait time.Duration
	if class != classUnlimited {
		wait = rl.buckets.take(class, client, rl.limits.rate(class), rl.limits.Now())
	}
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		e := messages.New(messages.RateLimited, secs)
		writeJSON(w, http.StatusTooManyRequests, ErrorResponse{Error: e.Error(), Code: string(e.Key)})
		rl.refused.Add(client, refusedReason, nil)
		return false
	}
	if r.Body == nil || r.Body == http.NoBody {
		// Nothing to read. (net/http already waits on the connection to
		// notice a client that leaves; a deadline would end that wait and
		// cancel a long media download.)
		return true
	}
	timeout := rl.limits.BodyTimeout
	if r.Method == http.MethodPost && (r.URL.Path == "/v1/media" || r.URL.Path == "/v1/agent/builds") {
		timeout = rl.limits.UploadTimeout
	}
	// Socket deadlines are wall-clock time; net/http clears this one once
	// the body is read. ErrNotSupported: not a real connection (a test
	// recorder), nothing to bound.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	return true
}

// limitClient names the request's client and the rate it is held to. It
// checks credentials as the handlers do (they check them again): only valid
// ones earn their own bucket, so an unknown token cannot dodge its address's.
func (s *Server) limitClient(r *http.Request) (limitClass, string) {
	if id, _, ok := r.BasicAuth(); ok && s.isDevice(r) {
		return classBox, "box:" + id
	}
	if p, err := s.authenticate(r); err == nil {
		if p.name == auth.AdminTokenName { // no stored token may have this name
			return classUnlimited, ""
		}
		if r.Method == http.MethodPost && r.URL.Path == "/v1/alerts/cap" {
			return classCAP, "token:" + p.name
		}
		return classStaff, "token:" + p.name
	}
	return classUnauthenticated, "addr:" + clientAddr(r.RemoteAddr)
}

// clientAddr is the address a caller is known by: an IPv4 address, or the
// /64 of an IPv6 one (a single host usually has a whole /64). Forwarded-for
// headers are not trusted: anyone can write them.
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// buckets are token buckets by class and client, at most max of them,
// kept in the order of last use.
type buckets struct {
	mu   sync.Mutex
	max  int
	byID map[bucketKey]*list.Element
	lru  list.List // of *bucket, most recently used first
}

type bucketKey struct {
	class  limitClass
	client string
}

type bucket struct {
	key    bucketKey
	rate   Rate // of its last take: full refills at it
	tokens ratelimit.Bucket
}

func newBuckets(max int) *buckets {
	return &buckets{max: max, byID: map[bucketKey]*list.Element{}}
}

// full reports whether b has refilled by now, so dropping it loses nothing.
func (b *bucket) full(now time.Time) bool {
	return b.tokens.Full(now, b.rate.PerSec, b.rate.Burst)
}

// take takes one token from the client's bucket. It returns 0 when it
// could, else how long until it can.
func (bs *buckets) take(class limitClass, client string, rate Rate, now time.Time) time.Duration {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	key := bucketKey{class, client}
	var b *bucket
	if el, ok := bs.byID[key]; ok {
		bs.lru.MoveToFront(el)
		b = el.Value.(*bucket)
		b.rate = rate
	} else {
		b = &bucket{key: key, rate: rate}
		bs.byID[key] = bs.lru.PushFront(b)
	}
	wait := b.tokens.Take(now, rate.PerSec, rate.Burst)
	bs.evict(now)
	return wait
}

// evict drops the least recently used buckets while there are too many or
// they have refilled.
func (bs *buckets) evict(now time.Time) {
	for bs.lru.Len() > 1 {
		el := bs.lru.Back()
		b := el.Value.(*bucket)
		if bs.lru.Len() <= bs.max && !b.full(now) {
			return
		}
		bs.lru.Remove(el)
		delete(bs.byID, b.key)
	}
}

// len is how many buckets are kept.
func (bs *buckets) len() int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.lru.Len()
}
