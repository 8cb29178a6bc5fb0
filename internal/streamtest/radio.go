package streamtest

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Radio is an Icecast-like server: one programme broadcast from the
// server's start, each part at its own byte rate; a listener gets the last
// second at once (Icecast's burst on connect), then the programme as it
// goes. It can die (stop listening, cut its listeners) and come back on the
// same address. It cuts the programme at any byte, where a real Icecast
// server cuts MP3 at frame boundaries: ffmpeg finds its way into AAC (ADTS)
// joined mid-broadcast, not into MP3 joined more than a few seconds in.
type Radio struct {
	t     testing.TB
	parts []Part
	loop  bool
	ctype string
	start time.Time

	mu   sync.Mutex
	addr string
	srv  *http.Server
}

// Part is a stretch of the programme: its bytes, and how long they play.
type Part struct {
	Data    []byte
	Seconds float64
}

// NewRadio starts a radio broadcasting parts (looping them if loop) with
// the Content-Type ctype; it dies at the test's end.
func NewRadio(t testing.TB, ctype string, loop bool, parts ...Part) *Radio {
	r := &Radio{t: t, parts: parts, loop: loop, ctype: ctype, start: time.Now()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.Kill)
	return r
}

// URL is the stream's address.
func (r *Radio) URL() string { return "http://" + r.addr + "/stream" }

func (r *Radio) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.listen)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// bytesAt is how much of the programme has gone out at elapsed seconds
// (counting the loops), and how long a loop is in bytes.
func (r *Radio) bytesAt(elapsed float64) (at, loopBytes int) {
	loopSeconds := 0.0
	for _, p := range r.parts {
		loopSeconds += p.Seconds
		loopBytes += len(p.Data)
	}
	loops := 0
	if r.loop {
		loops = int(elapsed / loopSeconds)
		elapsed -= float64(loops) * loopSeconds
	}
	at = loops * loopBytes
	for _, p := range r.parts {
		if elapsed <= p.Seconds {
			return at + int(elapsed/p.Seconds*float64(len(p.Data))), loopBytes
		}
		elapsed -= p.Seconds
		at += len(p.Data)
	}
	return at, loopBytes
}

// chunk is the programme's bytes from..to, up to the end of a loop.
func (r *Radio) chunk(from, to int) []byte {
	var all []byte
	for _, p := range r.parts {
		all = append(all, p.Data...)
	}
	i := from % len(all)
	return all[i : i+min(to-from, len(all)-i)]
}

// listen sends the programme to one listener.
func (r *Radio) listen(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", r.ctype)
	w.Header().Set("icy-name", "Loa test radio")
	elapsed := time.Since(r.start).Seconds()
	pos, loopBytes := r.bytesAt(max(0, elapsed-1))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		now, _ := r.bytesAt(time.Since(r.start).Seconds())
		for pos < now {
			if !r.loop && pos >= loopBytes {
				return // the programme is over
			}
			c := r.chunk(pos, now)
			if _, err := w.Write(c); err != nil {
				return
			}
			pos += len(c)
		}
		w.(http.Flusher).Flush()
		if !r.loop && pos >= loopBytes {
			return
		}
		select {
		case <-tick.C:
		case <-req.Context().Done():
			return
		}
	}
}

// Kill stops the server and cuts its listeners: the source died.
func (r *Radio) Kill() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Revive listens again on the same address.
func (r *Radio) Revive() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Errorf("revive the radio: %v", err)
		return
	}
	r.serve(ln)
}
