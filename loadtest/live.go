package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/capture"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// Transports a live session can reach the boxes by (LiveOptions.Transport).
const (
	// TransportMQTT is Loa's: the controller publishes each packet once at
	// QoS 0 on the session's topic and the broker fans it out to the boxes
	// over the sessions they already have.
	TransportMQTT = "mqtt"
	// TransportHTTP is the alternative measured against it: the controller
	// writes every packet to every box over one chunked HTTP response each
	// (StreamServer).
	TransportHTTP = "http"
)

// LiveOptions say how to measure one live session to many boxes.
type LiveOptions struct {
	Boxes  int
	Groups int
	// Transport is TransportMQTT (a controller behind the api.Client given
	// to Live, boxes on Brokers) or TransportHTTP (a StreamServer at
	// StreamURL).
	Transport string
	Brokers   []string
	StreamURL string
	Site      string
	// For is how long the session speaks once on air (default 60 s).
	For time.Duration
	// Source is the sound file the session speaks (any format ffmpeg
	// reads; sent at its own pace, as `loa live --file` does). Empty: a
	// speech is made with espeak-ng (pink noise of varying loudness without
	// it), looped with a second's pause.
	Source string
	// BitrateKbps of the Opus the speaker's side encodes (default 24, as
	// `loa live`).
	BitrateKbps int
	// FFmpeg is the program that encodes the sound (default "ffmpeg").
	FFmpeg string
	// Idle is how long the controller's CPU is measured with every box
	// connected before the session (default 10 s; negative: not at all).
	Idle    time.Duration
	Timeout time.Duration
	// ConnectRate paces the boxes' first connections (Options.ConnectRate).
	ConnectRate float64
	// Connections counts an external broker's clients; nil: the
	// controller's count (embedded broker) or unknown.
	Connections func(ctx context.Context) (int64, error)
	// BrokerPID is an external broker's process, whose CPU and memory are
	// measured too (0: none).
	BrokerPID int
	// Keep leaves the simulated boxes registered (a throwaway controller).
	Keep bool
	// Delay and PacketDuration are the controller's live options, copied
	// into the result (the controller's own config decides them).
	Delay, PacketDuration time.Duration
}

// LeadStats summarise how long before its play time each packet's first
// frame arrived at each box (negative: after it).
type LeadStats struct {
	Min  time.Duration `json:"min_ns"`
	P0_1 time.Duration `json:"p0_1_ns"`
	P1   time.Duration `json:"p1_ns"`
	P50  time.Duration `json:"p50_ns"`
	Max  time.Duration `json:"max_ns"`
}

// ProcessCost is what a process used around the session.
type ProcessCost struct {
	// CPUIdle is over LiveOptions.Idle before the session, every box
	// connected; CPU over the session, from its first packet to its end
	// packet (percent of one core).
	CPUIdle float64 `json:"cpu_idle_percent"`
	CPU     float64 `json:"cpu_percent"`
	// RSS before the boxes connected, before the session (every box
	// connected), its peak sampled every 500 ms during the session, and
	// after it.
	RSSNoBoxes int64 `json:"rss_no_boxes_bytes"`
	RSSBefore  int64 `json:"rss_before_bytes"`
	RSSPeak    int64 `json:"rss_peak_bytes"`
	RSSAfter   int64 `json:"rss_after_bytes"`
}

// LiveResult is what one live session to the boxes measured.
type LiveResult struct {
	Transport   string `json:"transport"`
	Boxes       int    `json:"boxes"`
	Source      string `json:"source"`
	BitrateKbps int    `json:"bitrate_kbps"`
	// Delay and PacketDuration: LiveOptions'.
	Delay          time.Duration `json:"delay_ns"`
	PacketDuration time.Duration `json:"packet_duration_ns"`
	ConnectTime    time.Duration `json:"connect_ns"`
	// Connections are the broker's clients (MQTT) or the stream server's
	// open streams (HTTP) with every box connected; -1: unknown.
	Connections int64 `json:"connections"`
	// Sound is the session's length on the timeline, first frame to end.
	Sound time.Duration `json:"sound_ns"`
	// Packets the controller published (the end packet included),
	// PayloadBytes their size; Frames the Opus frames in them (known with
	// HTTP only: the controller's session record does not count them).
	Packets      int64 `json:"packets"`
	Frames       int64 `json:"frames"`
	PayloadBytes int64 `json:"payload_bytes"`
	// Received counts the packets that reached a box, over all boxes;
	// Lost those published with sound that did not (per box, by sequence
	// number); Duplicates arrived twice; Bad did not decode or verify;
	// NoEnd boxes never got the end packet.
	Received    int64   `json:"received"`
	Lost        int64   `json:"lost"`
	LostPercent float64 `json:"lost_percent"`
	Duplicates  int64   `json:"duplicates"`
	Bad         int64   `json:"bad"`
	NoEnd       int     `json:"no_end"`
	// BoxFrames are the frames that reached boxes; Late those that arrived
	// after their play time (a box drops them: a gap); LateForCard those
	// that arrived less than 400 ms before it, too late for a box with a
	// sound card, which reads that far ahead.
	BoxFrames          int64   `json:"box_frames"`
	Late               int64   `json:"late"`
	LatePercent        float64 `json:"late_percent"`
	LateForCard        int64   `json:"late_for_card"`
	LateForCardPercent float64 `json:"late_for_card_percent"`
	// Lead is each packet's first frame's play time minus its arrival, at
	// each box.
	Lead LeadStats `json:"lead"`
	// Spread is, per packet, from the first box's receipt to the last's.
	Spread Latency `json:"spread"`
	// Bytes a box received per minute of sound: on the wire (the
	// transport's framing, MQTT's PUBLISH header and topic, or HTTP's
	// chunks; not TCP/IP's) and the packets alone.
	WireBytesPerBoxMinute    float64 `json:"wire_bytes_per_box_minute"`
	PayloadBytesPerBoxMinute float64 `json:"payload_bytes_per_box_minute"`
	// Controller is the controller's process (with the embedded broker,
	// the broker's too; with HTTP, the stream server's), Broker an external
	// broker's.
	Controller ProcessCost  `json:"controller"`
	Broker     *ProcessCost `json:"broker,omitempty"`
	// BoxesCPU is what the simulated boxes' process used over the session
	// (percent of one core): on the bench machine they share the cores
	// with the controller and the broker.
	BoxesCPU float64 `json:"boxes_cpu_percent"`
	// Dropped are packets the HTTP server did not queue for a box that
	// was behind.
	Dropped int64 `json:"dropped,omitempty"`
}

// processProbe reads a process's CPU time and resident memory.
type processProbe func(ctx context.Context) (cpu time.Duration, rss int64, err error)

func metricsProbe(read func(ctx context.Context) (map[string]int64, error)) processProbe {
	return func(ctx context.Context) (time.Duration, int64, error) {
		m, err := read(ctx)
		if err != nil {
			return 0, 0, err
		}
		return time.Duration(m["cpu_ns"]), m["rss_bytes"], nil
	}
}

// pidProbe reads /proc/<pid>.
func pidProbe(pid int) processProbe {
	return func(context.Context) (time.Duration, int64, error) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, 0, err
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 22 {
			return 0, 0, errors.New("short /proc stat")
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		rssPages, _ := strconv.ParseInt(f[21], 10, 64)
		return time.Duration(utime+stime) * time.Second / 100, rssPages * int64(os.Getpagesize()), nil
	}
}

// probed follows one process through a run.
type probed struct {
	probe      processProbe
	cost       ProcessCost
	cpu0, cpu1 time.Duration
	t0         time.Time
	mu         sync.Mutex
}

func (p *probed) mark(ctx context.Context) (time.Duration, time.Time) {
	cpu, _, _ := p.probe(ctx)
	return cpu, time.Now()
}

func (p *probed) sample(ctx context.Context) {
	if _, rss, err := p.probe(ctx); err == nil {
		p.mu.Lock()
		p.cost.RSSPeak = max(p.cost.RSSPeak, rss)
		p.mu.Unlock()
	}
}

// Live registers the boxes, connects them, puts one live session on air
// for o.For and measures what reached each box and what it cost. With
// TransportMQTT c is the controller; with TransportHTTP it is unused.
func Live(ctx context.Context, c *api.Client, o LiveOptions, log *slog.Logger) (LiveResult, error) {
	if o.Boxes <= 0 {
		return LiveResult{}, errors.New("boxes must be positive")
	}
	o.Groups = max(o.Groups, 1)
	if o.For <= 0 {
		o.For = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.BitrateKbps == 0 {
		o.BitrateKbps = 24
	}
	if o.FFmpeg == "" {
		o.FFmpeg = "ffmpeg"
	}
	if o.Idle == 0 {
		o.Idle = 10 * time.Second
	}
	if o.Transport == "" {
		o.Transport = TransportMQTT
	}
	res := LiveResult{Transport: o.Transport, Boxes: o.Boxes, BitrateKbps: o.BitrateKbps, Connections: -1,
		Delay: o.Delay, PacketDuration: o.PacketDuration}

	src, label := o.Source, o.Source
	if src == "" {
		dir, err := os.MkdirTemp("", "loa-bench-live-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		if src, label, err = makeSpeech(ctx, o.FFmpeg, dir, o.For+30*time.Second); err != nil {
			return res, err
		}
	}
	res.Source = label

	var recvs []*streamRecv
	var ctrl, broker *probed
	if o.BrokerPID > 0 {
		broker = &probed{probe: pidProbe(o.BrokerPID)}
		_, broker.cost.RSSNoBoxes, _ = broker.probe(ctx)
	}
	var clients func(ctx context.Context) (int64, error)
	t0 := time.Now()
	switch o.Transport {
	case TransportMQTT:
		if len(o.Brokers) == 0 {
			return res, errors.New("no broker for the boxes")
		}
		k, err := c.Keys(ctx)
		if err != nil {
			return res, fmt.Errorf("read the controller's keys: %w", err)
		}
		keys, err := protocol.NewKeyring(k.Trusted...)
		if err != nil {
			return res, err
		}
		cache := newStreamCache(keys)
		ctrl = &probed{probe: metricsProbe(c.Metrics)}
		_, ctrl.cost.RSSNoBoxes, _ = ctrl.probe(ctx)
		boxes, _, err := register(ctx, c, o.Boxes, o.Groups, o.Site, device.DefaultReconnectPolicy())
		if !o.Keep {
			defer unregister(c, boxes)
		}
		if err != nil {
			return res, err
		}
		for _, b := range boxes {
			b.live = newStreamRecv(cache)
			recvs = append(recvs, b.live)
		}
		t0 = time.Now()
		defer closeAll(boxes)
		if err := connectAll(ctx, boxes, o.Brokers, o.ConnectRate, o.Timeout); err != nil {
			return res, err
		}
		clients = o.Connections
		if clients == nil {
			clients = func(ctx context.Context) (int64, error) {
				m, err := c.Metrics(ctx)
				return m["broker_clients"], err
			}
		}
	case TransportHTTP:
		var key struct{ Key, Topic string }
		if err := fetchJSON(ctx, o.StreamURL+"/key", &key); err != nil {
			return res, fmt.Errorf("the stream server: %w", err)
		}
		keys, err := protocol.NewKeyring(key.Key)
		if err != nil {
			return res, err
		}
		cache := newStreamCache(keys)
		read := func(ctx context.Context) (map[string]int64, error) {
			var m map[string]int64
			return m, fetchJSON(ctx, o.StreamURL+"/metrics", &m)
		}
		ctrl = &probed{probe: metricsProbe(read)}
		_, ctrl.cost.RSSNoBoxes, _ = ctrl.probe(ctx)
		hb := make([]*httpBox, o.Boxes)
		errs := make([]error, o.Boxes)
		for range hb {
			recvs = append(recvs, newStreamRecv(cache))
		}
		defer func() {
			for _, b := range hb {
				if b != nil {
					b.close()
				}
			}
		}()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		for i := range hb {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				hb[i], errs[i] = openHTTPBox(ctx, o.StreamURL, recvs[i])
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
		clients = func(ctx context.Context) (int64, error) {
			m, err := read(ctx)
			return m["clients"], err
		}
	default:
		return res, fmt.Errorf("unknown transport %q: use %s or %s", o.Transport, TransportMQTT, TransportHTTP)
	}
	res.ConnectTime = time.Since(t0)
	log.Info("connected", "boxes", o.Boxes, "transport", o.Transport, "took", res.ConnectTime)
	if n, err := clients(ctx); err == nil {
		res.Connections = n
	} else {
		log.Warn("count the connections", "err", err)
	}
	procs := []*probed{ctrl}
	if broker != nil {
		procs = append(procs, broker)
	}

	// The controller at rest with every box connected.
	for _, p := range procs {
		_, p.cost.RSSBefore, _ = p.probe(ctx)
	}
	if o.Idle > 0 {
		for _, p := range procs {
			p.cpu0, p.t0 = p.mark(ctx)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(o.Idle):
		}
		for _, p := range procs {
			cpu, t := p.mark(ctx)
			p.cost.CPUIdle = 100 * float64(cpu-p.cpu0) / float64(t.Sub(p.t0))
		}
	}

	// The session: the sound at its own pace, as `loa live --file` sends it.
	capCtx, kill := context.WithCancel(context.Background())
	defer kill()
	cp, err := capture.Start(capCtx, capture.Options{FFmpeg: o.FFmpeg, File: src, BitrateKbps: o.BitrateKbps})
	if err != nil {
		return res, err
	}
	defer func() { cp.Stop(); _ = cp.Wait() }()
	type fed struct {
		packets, frames, bytes int64
		start, end             time.Time
		err                    error
	}
	done := make(chan fed, 1)
	var sessionID string
	switch o.Transport {
	case TransportMQTT:
		info, err := c.StartSession(ctx, api.SessionRequest{Kind: "live", Targets: store.Targets{All: true},
			ForSec: int((o.For + 5*time.Minute) / time.Second), Source: "loa bench", Name: "bench live"})
		if err != nil {
			return res, err
		}
		sessionID = info.ID
		go func() {
			x, err := c.FeedSession(ctx, info.ID, cp.Audio())
			done <- fed{x.Packets, 0, x.Bytes, x.StartedAt, x.EndedAt, err}
		}()
	case TransportHTTP:
		go func() {
			x, err := feedHTTP(ctx, o.StreamURL, cp.Audio())
			done <- fed{x.Packets, x.Frames, x.Bytes, x.Start, x.End, err}
		}()
	}
	// On air: the first packet reached a box.
	first := time.Now().Add(o.Timeout)
	for !slices.ContainsFunc(recvs, func(r *streamRecv) bool { return r.packets() > 0 }) {
		if time.Now().After(first) {
			return res, fmt.Errorf("no box got a packet of the session within %s", o.Timeout)
		}
		select {
		case f := <-done:
			return res, fmt.Errorf("the session ended before any box got a packet: %v", f.err)
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	log.Info("on air", "session", sessionID)
	self := &probed{probe: metricsProbe(func(context.Context) (map[string]int64, error) { return selfMetrics(), nil })}
	procs = append(procs, self)
	for _, p := range procs {
		p.cpu0, p.t0 = p.mark(ctx)
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			for _, p := range procs {
				p.sample(sampleCtx)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	})
	select {
	case <-ctx.Done():
		stopSampling()
		return res, ctx.Err()
	case <-time.After(o.For):
	}
	cp.Stop()
	var f fed
	select {
	case f = <-done:
	case <-time.After(o.Timeout):
		stopSampling()
		return res, errors.New("the session did not end after its sound stopped")
	}
	if f.err != nil {
		stopSampling()
		return res, fmt.Errorf("feed the session: %w", f.err)
	}
	// Every box gets the end packet, which goes out after the last frames.
	waitEnd := time.Now().Add(o.Timeout)
	for slices.ContainsFunc(recvs, func(r *streamRecv) bool { return !r.hasEnded() }) && time.Now().Before(waitEnd) {
		select {
		case <-ctx.Done():
			stopSampling()
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, p := range procs {
		cpu, t := p.mark(ctx)
		p.cost.CPU = 100 * float64(cpu-p.cpu0) / float64(t.Sub(p.t0))
	}
	stopSampling()
	sampling.Wait()
	for _, p := range procs {
		_, p.cost.RSSAfter, _ = p.probe(ctx)
	}
	res.Controller = ctrl.cost
	res.BoxesCPU = self.cost.CPU
	if broker != nil {
		res.Broker = &broker.cost
	}
	if o.Transport == TransportHTTP {
		var m map[string]int64
		if err := fetchJSON(ctx, o.StreamURL+"/metrics", &m); err == nil {
			res.Dropped = m["dropped"]
		}
	}
	res.Packets, res.Frames, res.PayloadBytes, res.Sound = f.packets, f.frames, f.bytes, f.end.Sub(f.start)
	summarise(&res, recvs)
	return res, nil
}

// summarise folds what every box received into res.
func summarise(res *LiveResult, recvs []*streamRecv) {
	type span struct{ first, last time.Time }
	spans := map[uint64]*span{}
	var leads []time.Duration
	var wire, payload int64
	sound := max(res.Packets-1, 0) // the end packet carries none
	for _, r := range recvs {
		r.mu.Lock()
		res.Received += int64(len(r.arrivals))
		res.Duplicates += r.dups
		res.Bad += r.bad
		res.BoxFrames += r.frames
		res.Late += r.late
		res.LateForCard += r.lateCard
		res.Lost += max(sound-int64(len(r.arrivals)), 0)
		if !r.ended {
			res.NoEnd++
		}
		wire += r.wire
		payload += r.payload
		for _, a := range r.arrivals {
			leads = append(leads, a.lead)
			s := spans[a.seq]
			if s == nil {
				spans[a.seq] = &span{a.at, a.at}
				continue
			}
			if a.at.Before(s.first) {
				s.first = a.at
			}
			if a.at.After(s.last) {
				s.last = a.at
			}
		}
		r.mu.Unlock()
	}
	if n := int64(len(recvs)) * sound; n > 0 {
		res.LostPercent = 100 * float64(res.Lost) / float64(n)
	}
	if res.BoxFrames > 0 {
		res.LatePercent = 100 * float64(res.Late) / float64(res.BoxFrames)
		res.LateForCardPercent = 100 * float64(res.LateForCard) / float64(res.BoxFrames)
	}
	if n := len(leads); n > 0 {
		slices.Sort(leads)
		res.Lead = LeadStats{Min: leads[0], P0_1: leads[n/1000], P1: leads[n/100], P50: leads[n/2], Max: leads[n-1]}
	}
	var spread []time.Duration
	for _, s := range spans {
		spread = append(spread, s.last.Sub(s.first))
	}
	res.Spread = latencyOf(spread, 0)
	if min := res.Sound.Minutes(); min > 0 && len(recvs) > 0 {
		res.WireBytesPerBoxMinute = float64(wire) / float64(len(recvs)) / min
		res.PayloadBytesPerBoxMinute = float64(payload) / float64(len(recvs)) / min
	}
}

// speechText is what the generated speech says: an everyday notice of a
// commune, in Vietnamese.
const speechText = "Thông báo của Ủy ban nhân dân xã. Sáng mai, từ bảy giờ, nhân dân các thôn mang gia súc đến nhà văn hóa thôn để tiêm phòng. Đề nghị các hộ gia đình chấp hành đầy đủ."

// makeSpeech writes at least d of sound into dir: espeak-ng's Vietnamese
// voice saying speechText, then a second's pause, over and over; without
// espeak-ng, pink noise whose loudness swings four times a second. It
// returns the file and what it holds.
func makeSpeech(ctx context.Context, ffmpeg, dir string, d time.Duration) (string, string, error) {
	out := filepath.Join(dir, "speech.wav")
	secs := strconv.Itoa(int(d.Seconds() + 1))
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, b)
		}
		return nil
	}
	if espeak, err := exec.LookPath("espeak-ng"); err == nil {
		once := filepath.Join(dir, "once.wav")
		if err := run(espeak, "-v", "vi", "-w", once, speechText); err != nil {
			return "", "", err
		}
		padded := filepath.Join(dir, "padded.wav")
		err := run(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", once, "-af", "apad=pad_dur=1", "-ar", "48000", "-ac", "1", padded)
		if err == nil {
			err = run(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", padded, "-t", secs, out)
		}
		if err != nil {
			return "", "", err
		}
		return out, "espeak-ng speech (vi), a second's pause between repeats", nil
	}
	if err := run(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
		"anoisesrc=color=pink:amplitude=0.3:sample_rate=48000", "-af", "tremolo=f=4:d=0.9", "-t", secs, "-ac", "1", out); err != nil {
		return "", "", err
	}
	return out, "pink noise, loudness swinging 4 times a second", nil
}
