package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// The links between the processes of a fault test run through Toxiproxy,
// in this test process: each link is a TCP proxy whose connections can be
// slowed (latency, bandwidth), cut all at once, or refused for a while.

func init() {
	// Toxiproxy logs with zerolog's global logger in places; the tests
	// report what matters themselves.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	// Custom toxics must be registered before any proxy exists: the
	// registry's size sizes every proxy's toxic chain.
	toxics.Register("loa_cut", new(cutToxic))
	toxics.Register("loa_sniff", new(sniffToxic))
	toxics.Register("loa_gate", new(gateToxic))
}

var toxiServer = sync.OnceValue(func() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
})

// link is one Toxiproxy proxy on a free loopback port in front of upstream.
type link struct {
	t    testing.TB
	name string
	p    *toxiproxy.Proxy
	addr string // host:port the clients use
}

func newLink(t testing.TB, name, upstream string) *link {
	t.Helper()
	p := toxiproxy.NewProxy(toxiServer(), name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy %s: %v", name, err)
	}
	l := &link{t: t, name: name, p: p, addr: p.Listen}
	t.Cleanup(p.Stop)
	return l
}

// cut closes every connection of the link and refuses new ones, like a
// dead uplink: the peers see their connections end at once.
func (l *link) cut() {
	l.p.Stop()
}

// restore listens again on the same address.
func (l *link) restore() {
	l.t.Helper()
	var err error
	for range 50 { // the port is free again at once, unless another test took it meanwhile
		if err = l.p.Start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("restore link %s on %s: %v", l.name, l.addr, err)
}

// silence makes the link a black hole, as a NAT that forgot the
// connection or a dead cell: connections stay open, nothing gets through
// either way, and new ones are accepted but go nowhere. The link must have
// been made with withGate.
func (l *link) silence() { l.gate().set(true) }

// unsilence ends the black hole: the connections it held are closed (their
// streams lost bytes) and new ones carry data again.
func (l *link) unsilence() { l.gate().set(false) }

func (l *link) gate() *gateSwitch {
	l.t.Helper()
	g, ok := gates.Load(l.name + "@" + l.addr)
	if !ok {
		l.t.Fatalf("link %s has no gate", l.name)
	}
	return g.(*gateSwitch)
}

// withGate puts a gate on both directions of l, open. Toxiproxy can hang
// when toxics are added to or removed from a proxy that carries traffic
// (Shopify/toxiproxy issues 412 and 558), so the gate is there from the
// start and only switched.
func (l *link) withGate() *link {
	key := l.name + "@" + l.addr
	gates.Store(key, &gateSwitch{change: make(chan struct{})})
	l.t.Cleanup(func() { gates.Delete(key) })
	l.toxic("gate-up", "loa_gate", stream.Upstream, 1, map[string]any{"gate": key})
	l.toxic("gate-down", "loa_gate", stream.Downstream, 1, map[string]any{"gate": key})
	return l
}

// toxic adds a toxic to the link and returns it. Toxics are best added
// before the link carries connections.
func (l *link) toxic(name, kind string, dir stream.Direction, toxicity float32, attrs any) toxics.Toxic {
	l.t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": kind, "stream": dir.String(), "toxicity": toxicity, "attributes": attrs})
	if err != nil {
		l.t.Fatal(err)
	}
	w, err := l.p.Toxics.AddToxicJson(bytes.NewReader(body))
	if err != nil {
		l.t.Fatalf("add toxic %s to %s: %v", name, l.name, err)
	}
	return w.Toxic
}

// flakyMedia is the media link of a village on a weak 3G uplink.
type flakyMedia struct {
	cutter *cutToxic
	sniff  *sniffToxic
}

// flakyLink is how bad a link is.
type flakyLink struct {
	latency  time.Duration // one way, added to the responses
	kBps     int           // bandwidth of each connection (0: no limit)
	lifetime time.Duration // a connection is reset this long after it opened (0: never)
	bytes    int64         // a connection is reset once it carried this many bytes (0: never)
}

// makeFlaky makes l as bad as f says and records the media requests that
// go through it.
func makeFlaky(l *link, f flakyLink) flakyMedia {
	// Toxiproxy sets SO_LINGER 0 on both sockets of every connection of a
	// proxy that has a reset_peer toxic, so that closing them sends an RST.
	// With toxicity 0 this one never acts itself; the cut toxic's closes
	// become resets.
	l.toxic("rst", "reset_peer", stream.Downstream, 0, map[string]any{"timeout": 0})
	if f.latency > 0 {
		l.toxic("latency", "latency", stream.Downstream, 1, map[string]any{"latency": f.latency.Milliseconds()})
	}
	if f.kBps > 0 { // toxiproxy's bandwidth toxic stalls at rate 0
		l.toxic("bandwidth", "bandwidth", stream.Downstream, 1, map[string]any{"rate": f.kBps})
	}
	return flakyMedia{
		cutter: l.toxic("cut", "loa_cut", stream.Downstream, 1, map[string]any{"lifetime_ms": f.lifetime.Milliseconds(), "bytes": f.bytes}).(*cutToxic),
		sniff:  l.toxic("sniff", "loa_sniff", stream.Upstream, 1, nil).(*sniffToxic),
	}
}

// cutToxic passes data through and resets each connection once it has
// been open for LifetimeMS, or once it has carried Bytes.
type cutToxic struct {
	LifetimeMS int64 `json:"lifetime_ms"` // 0: no limit
	Bytes      int64 `json:"bytes"`       // 0: no limit

	mu   sync.Mutex
	cuts int // connections reset
}

// cutState is one connection's: when it opened and what it carried so far
// (kept across the toxic's restarts).
type cutState struct {
	opened time.Time
	sent   int64
}

func (c *cutToxic) NewState() any { return &cutState{opened: time.Now()} }

// Cuts is how many connections were reset.
func (c *cutToxic) Cuts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

func (c *cutToxic) Pipe(stub *toxics.ToxicStub) {
	var expire <-chan time.Time
	st, _ := stub.State.(*cutState)
	if st == nil {
		st = &cutState{opened: time.Now()}
	}
	if c.LifetimeMS > 0 {
		t := time.NewTimer(time.Until(st.opened.Add(time.Duration(c.LifetimeMS) * time.Millisecond)))
		defer t.Stop()
		expire = t.C
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case <-expire:
			c.close(stub)
			return
		case p := <-stub.Input:
			if p == nil {
				stub.Close()
				return
			}
			last := false
			if c.Bytes > 0 && st.sent+int64(len(p.Data)) >= c.Bytes {
				p = &stream.StreamChunk{Data: p.Data[:c.Bytes-st.sent], Timestamp: p.Timestamp}
				last = true
			}
			select {
			case stub.Output <- p:
				st.sent += int64(len(p.Data))
			case <-expire:
				c.close(stub)
				return
			}
			if last {
				c.close(stub)
				return
			}
		}
	}
}

// close ends the connection and drains what the toxics before it still
// hand over, so that they can end too.
func (c *cutToxic) close(stub *toxics.ToxicStub) {
	c.mu.Lock()
	c.cuts++
	c.mu.Unlock()
	stub.Close()
	for p := range stub.Input {
		if p == nil {
			return
		}
	}
}

// gates are the switches of the links' gate toxics, by link.
var gates sync.Map // name@addr → *gateSwitch

// gateSwitch is open or silent; change is closed at every switch.
type gateSwitch struct {
	mu     sync.Mutex
	silent bool
	change chan struct{}
}

func (g *gateSwitch) state() (silent bool, change <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.silent, g.change
}

func (g *gateSwitch) set(silent bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.silent != silent {
		g.silent = silent
		close(g.change)
		g.change = make(chan struct{})
	}
}

// gateToxic passes data while its gate is open and drops it while the gate
// is silent, the connection staying open. A connection that lived through
// a silence is closed when the gate opens again: bytes of its stream were
// lost.
type gateToxic struct {
	Gate string `json:"gate"`
}

func (g *gateToxic) Pipe(stub *toxics.ToxicStub) {
	v, ok := gates.Load(g.Gate)
	if !ok {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	sw := v.(*gateSwitch)
	hushed := false // this connection lost data to a silence
	for {
		silent, change := sw.state()
		hushed = hushed || silent
		if hushed && !silent {
			stub.Close()
			for p := range stub.Input {
				if p == nil {
					return
				}
			}
			return
		}
		select {
		case <-stub.Interrupt:
			return
		case <-change:
		case p := <-stub.Input:
			if p == nil {
				stub.Close()
				return
			}
			if !silent {
				stub.Output <- p
			}
		}
	}
}

// sniffToxic passes requests through and records each media GET: which box
// asked (from its Basic credentials) and from which byte (Range).
type sniffToxic struct {
	mu   sync.Mutex
	reqs []mediaRequest
}

type mediaRequest struct {
	at   time.Time
	box  string
	from int64 // the Range start; 0 without Range
}

var rangeHeader = regexp.MustCompile(`(?i)\r\nrange: bytes=(\d+)-`)
var authHeader = regexp.MustCompile(`(?i)\r\nauthorization: basic ([A-Za-z0-9+/=]+)`)

func (s *sniffToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case p := <-stub.Input:
			if p == nil {
				stub.Close()
				return
			}
			s.look(p.Data)
			stub.Output <- p
		}
	}
}

func (s *sniffToxic) look(b []byte) {
	if !bytes.HasPrefix(b, []byte("GET /v1/media/")) {
		return
	}
	r := mediaRequest{at: time.Now()}
	if m := authHeader.FindSubmatch(b); m != nil {
		if creds, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			r.box, _, _ = strings.Cut(string(creds), ":")
		}
	}
	if m := rangeHeader.FindSubmatch(b); m != nil {
		r.from, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

// requests lists the media GETs of box so far.
func (s *sniffToxic) requests(box string) []mediaRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mediaRequest
	for _, r := range s.reqs {
		if r.box == box {
			out = append(out, r)
		}
	}
	return out
}

// resumed counts the GETs of box that asked for a Range from a byte > 0.
func (s *sniffToxic) resumed(box string) int {
	n := 0
	for _, r := range s.requests(box) {
		if r.from > 0 {
			n++
		}
	}
	return n
}

// TestToxiLinkCutAndRestore checks the link helper itself: a cut ends the
// connections it carries and refuses new ones; a restore listens again on
// the same address.
func TestToxiLinkCutAndRestore(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); buf := make([]byte, 1024); n, _ := c.Read(buf); c.Write(buf[:n]) }()
		}
	}()
	l := newLink(t, "echo", ln.Addr().String())
	echo := func() error {
		c, err := net.DialTimeout("tcp", l.addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
			return fmt.Errorf("echo: %q, %v", buf, err)
		}
		return nil
	}
	if err := echo(); err != nil {
		t.Fatalf("through the link: %v", err)
	}
	l.cut()
	if err := echo(); err == nil {
		t.Fatal("a cut link still carries connections")
	}
	l.restore()
	if err := echo(); err != nil {
		t.Fatalf("through the restored link: %v", err)
	}
}

// BenchmarkDownloadFlakyLink: a real agent fetches a 60 s MP3 at 64 kbit/s
// (480 kB) through its real download path, over a link with 300 ms of
// latency whose connections are reset 20 s after they open; at 64 kB/s and
// at 8 kB/s (64 kbit/s, a link as slow as the audio's bitrate). It reports
// the time from the box's first request to the verified file in its cache,
// the requests it made and how many of them resumed with Range.
func BenchmarkDownloadFlakyLink(b *testing.B) {
	for _, kBps := range []int{64, 8} {
		b.Run(fmt.Sprintf("%dkBps", kBps), func(b *testing.B) { benchFlakyDownload(b, kBps) })
	}
}

func benchFlakyDownload(b *testing.B, kBps int) {
	var secs, requests, resumed float64
	for i := 0; i < b.N; i++ {
		var flaky flakyMedia
		fc := newFaultCommune(b, faultOptions{media: func(l *link) {
			flaky = makeFlaky(l, flakyLink{latency: 300 * time.Millisecond, kBps: kBps, lifetime: 20 * time.Second})
		}})
		mp3 := makeTestMP3(b, b.TempDir(), 60, 64)
		box := fc.addBox("box-1", "thon-1")
		fc.waitOnline("box-1")
		id, sha := fc.addMediaPlay(mp3)
		ann, _ := fc.announceAt(id, time.Now().Add(10*time.Minute)) // fetched now, played long after the benchmark
		final := filepath.Join(box.cache, "media", sha)
		var done time.Time
		deadline := time.Now().Add(10 * time.Minute)
		for done.IsZero() {
			if fileExists(final) {
				done = time.Now()
			} else if time.Now().After(deadline) {
				b.Fatalf("the media was not fetched in 10 minutes (requests: %+v)", flaky.sniff.requests("box-1"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		reqs := flaky.sniff.requests("box-1")
		secs += done.Sub(reqs[0].at).Seconds()
		requests += float64(len(reqs))
		resumed += float64(flaky.sniff.resumed("box-1"))
		fc.waitStatus(ann, time.Minute, []string{"box-1"}, "ready") // decoded too
		box.assertCacheSound(b, sha, mp3)
	}
	n := float64(b.N)
	b.ReportMetric(secs/n, "s-to-download")
	b.ReportMetric(requests/n, "requests")
	b.ReportMetric(resumed/n, "resumed-ranges")
}
