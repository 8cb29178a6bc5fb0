package live

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/ingest"
)

// CheckURL accepts the address of a stream to relay: http or https only,
// so that no other ffmpeg protocol (file:, pipe:, concat:...) reaches the
// controller's files or programs.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	return err
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %q", ErrBadURL, u.Redacted())
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: %q has no host", ErrBadURL, u.Redacted())
	case strings.ContainsAny(raw, " \t\r\n\x00"):
		return nil, fmt.Errorf("%w: %q has spaces or control characters", ErrBadURL, u.Redacted())
	}
	return u, nil
}

// Backoff between a relay's tries to get its source back.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// Decode errors that mean ffmpeg no longer understands the stream (its
// codec changed: MP3 then AAC): that many problem lines within the window
// start ffmpeg again, which probes the stream anew.
const (
	problemBurst       = 6
	problemBurstWindow = 2 * time.Second
)

// Relay plays the stream at rawURL (Icecast or SHOUTcast MP3 or AAC, HLS,
// anything ffmpeg reads over http or https): ffmpeg reads it at its own
// pace and encodes Opus for the boxes. When the source stops, ffmpeg is
// started again (with backoff) for up to Options.RetryWindow; the timeline
// goes on, so the boxes hear silence, then the programme at its live
// point. A programme with a known length (a file, an HLS playlist that
// ends) is not tried again: it ends when it has played.
//
// A source that never gives sound is an error wrapping ErrBadURL,
// ErrSourceUnreachable, ErrNotAStream or ingest.ErrNoFFmpeg, and nothing is
// published. Once the session went on air, the Summary says how it ended.
func (s *Session) Relay(ctx context.Context, rawURL string) (Summary, error) {
	if err := s.claim(); err != nil {
		return Summary{}, err
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return Summary{}, err
	}
	log := s.log.With("url", u.Redacted())
	res := s.runFFmpeg(ctx, u, 3*s.opts.IOTimeout, nil)
	if s.start.IsZero() {
		s.abortRecording()
		if ctx.Err() != nil {
			return Summary{}, ctx.Err()
		}
		return Summary{}, res.startError()
	}
	for {
		switch {
		case ctx.Err() != nil:
			return s.finish(stopped(ctx)), nil
		case errors.Is(res.feedErr, errMaxLength):
			return s.finish(EndMaxLength, "the session reached its maximum length of "+spoken(s.opts.MaxSession)), nil
		case res.finite && res.clean:
			return s.finish(EndFinished, "the programme ended"), nil
		case res.finite:
			// Starting it again would start the programme over.
			return s.finish(EndSourceLost, fmt.Sprintf("the source failed at %s: %s", s.clockTime(s.lastSeen), res.why())), nil
		}
		lost := s.lastSeen
		log.Warn("live: the relay's source stopped; trying to get it back", "problem", res.why(), "window", s.opts.RetryWindow)
		var last string
		res, last = s.retry(ctx, u, func() {
			s.mu.Lock()
			s.sum.Restarts++
			s.mu.Unlock()
			log.Info("live: the relay's source is back", "silent_for", s.clock.Now().Sub(lost).Round(time.Millisecond))
		})
		if !res.sound {
			if ctx.Err() != nil {
				return s.finish(stopped(ctx)), nil
			}
			reason := fmt.Sprintf("the source stopped at %s and did not come back within %s", s.clockTime(lost), spoken(s.opts.RetryWindow))
			if last != "" {
				reason += " (" + last + ")"
			}
			return s.finish(EndSourceLost, reason), nil
		}
	}
}

// retry starts ffmpeg again, with backoff, until it makes sound (back is
// called then; the run's result once it has ended) or RetryWindow has
// passed (then the last try's problem).
func (s *Session) retry(ctx context.Context, u *url.URL, back func()) (runResult, string) {
	deadline := s.clock.Now().Add(s.opts.RetryWindow)
	backoff := firstBackoff
	last := ""
	for {
		left := deadline.Sub(s.clock.Now())
		if left <= 0 {
			return runResult{}, last
		}
		// ±20 %, so that the sessions of one source do not knock together.
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		if err := s.clock.Sleep(ctx, min(wait, left)); err != nil {
			return runResult{}, last
		}
		backoff = min(2*backoff, maxBackoff)
		if left = deadline.Sub(s.clock.Now()); left <= 0 {
			return runResult{}, last
		}
		// A try that connects but makes no sound gets the rest of the
		// window, and at least a few seconds.
		res := s.runFFmpeg(ctx, u, min(3*s.opts.IOTimeout, max(left, 3*time.Second)), back)
		if res.sound || ctx.Err() != nil {
			return res, last
		}
		last = res.why()
		s.log.Debug("live: the relay's source is not back yet", "problem", last)
	}
}

// runResult is how one ffmpeg run went.
type runResult struct {
	sound    bool   // ffmpeg made sound, which went into the timeline
	finite   bool   // ffmpeg found the programme's length: it ends
	clean    bool   // ffmpeg ended on its own, with success
	problem  string // ffmpeg's first problem line
	stopped  error  // why the relay stopped ffmpeg, if it did
	startErr error  // ffmpeg could not start
	feedErr  error
}

// why says in a few words what went wrong.
func (r runResult) why() string {
	switch {
	case r.stopped != nil:
		return r.stopped.Error()
	case r.problem != "":
		return "ffmpeg: " + r.problem
	case r.feedErr != nil:
		return r.feedErr.Error()
	case r.clean:
		return "the stream ended"
	}
	return "ffmpeg ended"
}

// unreachable are the words of ffmpeg's problems that mean the server gave
// no stream.
var unreachable = []string{
	"Connection refused", "timed out", "No route to host", "Network is unreachable",
	"Failed to resolve", "Name or service not known", "name resolution", "Server returned",
	"HTTP error", "Connection reset", "Cannot assign requested address", "End of file",
	"Input/output error", "Host is unreachable",
}

// startError is the error of a relay that never made sound.
func (r runResult) startError() error {
	switch {
	case r.startErr != nil:
		return r.startErr
	case strings.Contains(r.problem, "matches no streams"):
		return fmt.Errorf("%w: the stream has no sound track", ErrNotAStream)
	}
	for _, w := range unreachable {
		if strings.Contains(r.problem, w) {
			return fmt.Errorf("%w: ffmpeg: %s", ErrSourceUnreachable, r.problem)
		}
	}
	return fmt.Errorf("%w: %s", ErrNotAStream, r.why())
}

// ffmpegArgs read rawURL at its own pace and write Ogg Opus to stdout, a
// 20 ms frame to a page, each page flushed at once.
func (s *Session) ffmpegArgs(rawURL string) []string {
	us := strconv.FormatInt(s.opts.IOTimeout.Microseconds(), 10)
	return []string{
		"-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info",
		// Only the network: an HLS playlist must not name file: segments.
		"-protocol_whitelist", "http,https,tcp,tls,crypto",
		// A silent server fails a read (and a connect) after IOTimeout.
		"-rw_timeout", us, "-timeout", us,
		// A connection cut mid-stream is reopened at once, a few times.
		"-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "2",
		// Real-time pacing: a server's burst on connect waits its turn.
		"-re", "-i", rawURL,
		"-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
		"-ac", strconv.Itoa(s.opts.Channels), "-ar", "48000",
		"-c:a", "libopus", "-b:a", strconv.Itoa(s.opts.BitrateKbps) + "k", "-frame_duration", "20",
		"-page_duration", "20000", "-flush_packets", "1",
		"-f", "ogg", "pipe:1",
	}
}

// runFFmpeg runs ffmpeg once on u, its sound feeding the timeline, until it
// ends, the session's ctx ends, or it stalls: no sound within startTimeout,
// then none for IOTimeout, or a burst of decode errors. sound, if set, is
// called at its first packet.
func (s *Session) runFFmpeg(ctx context.Context, u *url.URL, startTimeout time.Duration, sound func()) runResult {
	var res runResult
	rawURL := u.String()
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cmd := ingest.Command(runCtx, s.opts.FFmpeg, s.ffmpegArgs(rawURL)...)
	pr, pw, err := os.Pipe()
	if err != nil {
		res.startErr = fmt.Errorf("relay: %w", err)
		return res
	}
	defer pr.Close()
	er, ew, err := os.Pipe()
	if err != nil {
		pw.Close()
		res.startErr = fmt.Errorf("relay: %w", err)
		return res
	}
	defer er.Close()
	cmd.Stdout, cmd.Stderr = pw, ew
	err = ingest.Start(cmd, s.opts.MemoryMB)
	pw.Close()
	ew.Close()
	if err != nil {
		res.startErr = err
		return res
	}

	mon := &ffmpegMonitor{url: rawURL, redacted: u.Redacted(), burst: make(chan struct{}, 1)}
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		mon.scan(er)
	}()
	tick := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		t := time.NewTimer(startTimeout)
		defer t.Stop()
		timeout := startTimeout
		for {
			select {
			case <-tick:
				timeout = s.opts.IOTimeout
				t.Reset(timeout)
			case <-t.C:
				stop(fmt.Errorf("no sound from the source for %v", timeout))
				return
			case <-mon.burst:
				stop(fmt.Errorf("ffmpeg cannot decode the stream any more (%s)", mon.firstProblem()))
				return
			case <-watchDone:
				return
			}
		}
	})

	res.feedErr = s.feed(ctx, pr, func() {
		select {
		case tick <- struct{}{}:
		default:
		}
		if !res.sound {
			res.sound = true
			if sound != nil {
				sound()
			}
		}
	})
	if res.feedErr != nil && !errors.Is(res.feedErr, io.ErrUnexpectedEOF) {
		// The session ended (ctx, maximum length), or the stream broke:
		// ffmpeg goes.
		stop(res.feedErr)
	}
	// Otherwise ffmpeg ended or is ending (its output did); the watchdog
	// still guards the wait.
	waitErr := cmd.Wait()
	ingest.KillGroup(cmd)
	close(watchDone)
	watch.Wait()
	pr.Close()
	<-stderrDone
	res.stopped = context.Cause(runCtx)
	if res.stopped != nil && (errors.Is(res.stopped, res.feedErr) || ctx.Err() != nil) {
		res.stopped = nil // not the source's fault
	}
	res.clean = waitErr == nil && res.stopped == nil
	res.problem = mon.firstProblem()
	res.finite = mon.isFinite()
	if res.problem == "" && waitErr != nil && res.stopped == nil && ctx.Err() == nil {
		res.problem = waitErr.Error()
	}
	return res
}

// ffmpegMonitor reads what ffmpeg prints while it runs: its first problem,
// whether the input has a length, and bursts of decode errors.
type ffmpegMonitor struct {
	url, redacted string
	burst         chan struct{}

	mu       sync.Mutex
	problem  string
	finite   bool
	duration bool
	recent   []time.Time
}

func (m *ffmpegMonitor) firstProblem() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.problem
}

func (m *ffmpegMonitor) isFinite() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.finite
}

// scan reads ffmpeg's standard error to its end.
func (m *ffmpegMonitor) scan(r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line this long says nothing useful; skip the rest of it.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			m.line(string(line))
		}
		if err != nil {
			return
		}
	}
}

func (m *ffmpegMonitor) line(line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.duration {
		if i := strings.Index(line, "Duration: "); i >= 0 {
			m.duration = true
			m.finite = !strings.HasPrefix(line[i+len("Duration: "):], "N/A")
		}
	}
	p, ok := ingest.Problem(line)
	if !ok {
		return
	}
	// ffmpeg names the input by its URL: the staff know it, and it may
	// carry a password.
	p = strings.TrimPrefix(p, m.url+": ")
	p = strings.ReplaceAll(p, m.url, m.redacted)
	if m.problem == "" {
		m.problem = p
	}
	now := time.Now()
	m.recent = append(m.recent, now)
	for len(m.recent) > 0 && now.Sub(m.recent[0]) > problemBurstWindow {
		m.recent = m.recent[1:]
	}
	if len(m.recent) >= problemBurst {
		select {
		case m.burst <- struct{}{}:
		default:
		}
	}
}
