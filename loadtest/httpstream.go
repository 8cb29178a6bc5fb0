package loadtest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/protocol"
)

// StreamServer is the transport Loa did not choose, built only to measure
// it against MQTT: a live session's packets served by the controller
// itself as one long HTTP/1.1 chunked response per box. It runs the same
// session pump (live.Session, same options, same signed packets) with a
// Publisher that queues each packet for every connected box, and a
// goroutine per box writes them (a 4-byte length, then the packet) and
// flushes. A box whose queue is full loses the packet, as a QoS 0
// subscriber that cannot keep up would.
//
//	GET /stream   the stream (header Loa-Topic: the topic the packets are signed for)
//	PUT /feed     the session's Ogg Opus sound (as POST /v1/sessions/ID/feed); answers its summary
//	GET /key      the public key the packets are signed with
//	GET /metrics  this process's CPU and memory, and the boxes connected
//
// It is not part of the product: `loa bench --live --live-transport http`
// runs it in a process of its own.
type StreamServer struct {
	opts   live.Options
	site   string
	topic  string
	signer *protocol.Signer
	queue  int

	mu      sync.Mutex
	clients map[chan []byte]struct{}
	feeding bool

	dropped atomic.Int64 // packets not queued for a box: its queue was full
	queued  atomic.Int64
}

// streamServerSession is the id of the one session a StreamServer runs.
const streamServerSession = "bench-http"

// NewStreamServer returns a server for site's sessions with opts, signing
// with a key of its own.
func NewStreamServer(site string, opts live.Options) (*StreamServer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &StreamServer{opts: opts, site: site, topic: protocol.NewTopics(site).Stream(streamServerSession),
		signer: protocol.NewSigner(key), queue: 64, clients: map[chan []byte]struct{}{}}, nil
}

var _ live.Publisher = (*StreamServer)(nil)

// PublishStream queues the packet for every box connected.
func (s *StreamServer) PublishStream(_ string, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.clients {
		select {
		case ch <- payload:
			s.queued.Add(1)
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Handler serves the stream, the feed, the key and the metrics.
func (s *StreamServer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", s.serveStream)
	mux.HandleFunc("PUT /feed", s.serveFeed)
	mux.HandleFunc("GET /key", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONTo(w, map[string]string{"key": protocol.FormatPublicKey(s.signer.Public()), "topic": s.topic})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		m := selfMetrics()
		s.mu.Lock()
		m["clients"] = int64(len(s.clients))
		s.mu.Unlock()
		m["queued"], m["dropped"] = s.queued.Load(), s.dropped.Load()
		writeJSONTo(w, m)
	})
	return mux
}

func (s *StreamServer) serveStream(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, s.queue)
	s.mu.Lock()
	s.clients[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Loa-Topic", s.topic)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	var n [4]byte
	for {
		select {
		case <-r.Context().Done():
			return
		case p := <-ch:
			binary.BigEndian.PutUint32(n[:], uint32(len(p)))
			if _, err := w.Write(n[:]); err != nil {
				return
			}
			if _, err := w.Write(p); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// feedSummary is what PUT /feed answers.
type feedSummary struct {
	Packets int64     `json:"packets"`
	Frames  int64     `json:"frames"`
	Bytes   int64     `json:"bytes"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
}

func (s *StreamServer) serveFeed(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	busy := s.feeding
	s.feeding = true
	s.mu.Unlock()
	if busy {
		http.Error(w, "a session is running", http.StatusConflict)
		return
	}
	defer func() { s.mu.Lock(); s.feeding = false; s.mu.Unlock() }()
	sess, err := live.New(live.Config{ID: streamServerSession, Site: s.site, Signers: []*protocol.Signer{s.signer},
		Publisher: s, Options: s.opts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum, err := sess.Run(r.Context(), r.Body)
	out := feedSummary{Packets: sum.Packets, Frames: sum.Frames, Bytes: sum.Bytes, Start: sum.Start, End: sum.End}
	if err != nil {
		out.Error = err.Error()
	}
	writeJSONTo(w, out)
}

func writeJSONTo(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ServeStreamServer runs s on addr until ctx ends; ready is called with the
// URL once it listens.
func ServeStreamServer(ctx context.Context, s *StreamServer, addr string, ready func(url string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ready("http://" + ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
		srv.Close()
		return nil
	case err := <-errc:
		return err
	}
}

// selfMetrics is this process's cost, with the keys of the controller's
// /v1/metrics: cpu_ns, rss_bytes, max_rss_bytes, goroutines.
func selfMetrics() map[string]int64 {
	m := map[string]int64{"goroutines": int64(runtime.NumGoroutine())}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m["cpu_ns"] = ru.Utime.Nano() + ru.Stime.Nano()
		m["max_rss_bytes"] = ru.Maxrss << 10
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m["rss_bytes"] = pages * int64(os.Getpagesize())
			}
		}
	}
	return m
}

// httpBox is a simulated box reading the stream from a StreamServer over
// its own connection.
type httpBox struct {
	recv  *streamRecv
	wire  atomic.Int64 // bytes read from its connection
	resp  *http.Response
	close func()
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// openHTTPBox connects a box to the stream at url; it reads on its own
// goroutine until closed.
func openHTTPBox(ctx context.Context, url string, recv *streamRecv) (*httpBox, error) {
	b := &httpBox{recv: recv}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countConn{Conn: c, n: &b.wire}, nil
		},
		DisableCompression: true,
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/stream", nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s/stream: %s", url, resp.Status)
	}
	topic := resp.Header.Get("Loa-Topic")
	done := make(chan struct{})
	b.close = func() {
		cancel()
		resp.Body.Close()
		<-done
		tr.CloseIdleConnections()
	}
	go func() {
		defer close(done)
		rd := bufio.NewReaderSize(resp.Body, 4096)
		var n [4]byte
		var last int64
		for {
			if _, err := io.ReadFull(rd, n[:]); err != nil {
				return
			}
			size := binary.BigEndian.Uint32(n[:])
			if size > protocol.MaxStreamPacket {
				return
			}
			p := make([]byte, size)
			if _, err := io.ReadFull(rd, p); err != nil {
				return
			}
			now := time.Now()
			w := b.wire.Load()
			recv.onPacket(topic, p, now, int(w-last))
			last = w
		}
	}()
	return b, nil
}

// fetchJSON GETs url into v.
func fetchJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// feedHTTP sends the session's sound to a StreamServer and returns its
// summary once the session ended.
func feedHTTP(ctx context.Context, url string, sound io.Reader) (feedSummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/feed", sound)
	if err != nil {
		return feedSummary{}, err
	}
	req.Header.Set("Content-Type", "audio/ogg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return feedSummary{}, err
	}
	defer resp.Body.Close()
	var out feedSummary
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("PUT %s/feed: %s: %w", url, resp.Status, err)
	}
	if out.Error != "" {
		return out, errors.New(out.Error)
	}
	return out, nil
}
