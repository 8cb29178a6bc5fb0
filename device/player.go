package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// Playback timings.
const (
	// alertToneLength is how long an alert tone plays before the message,
	// on every repeat.
	alertToneLength = 8 * time.Second
	// toneGap is the silence between an alert tone and the message.
	toneGap = 500 * time.Millisecond
	// fadeOutTime is how long a cut item takes to fade to silence.
	fadeOutTime = 30 * time.Millisecond
	// fadeInTime is how a resumed item comes back in mid-sound.
	fadeInTime = 20 * time.Millisecond
	// resumeRewind is how far before the cut a resumed item goes on: the
	// position at the cut is known to within the sink's mixing period, and
	// the last moments before it were fading, so a moment is played twice
	// rather than lost.
	resumeRewind = 100 * time.Millisecond
	// cueLead is how long before its start an item goes on an idle
	// output, so that a sound card opens in time to put its first sample
	// exactly on the start (the boxes of a village then start together).
	cueLead = time.Second
	// cutBackstop bounds how long a sink that is faded through its PCM may
	// take to return after a cut before its context is cancelled.
	cutBackstop = 500 * time.Millisecond
)

// playJob is one play of an item, for the player goroutine.
type playJob struct {
	// ctx is the sink's context: it ends at shutdown, and at a cut on a
	// sink that fades out by itself.
	ctx  context.Context
	stop context.CancelFunc
	// cut ends when the loop wants the item faded out.
	cut    context.Context
	item   protocol.PlanItem
	name   string // for the sink: the item id, with "#<run>" from the second run on
	path   string // decoded PCM; "" for a tone-only item
	volume int
	from   int64 // program frame to start from (resume)
	// at is when the first sample must be heard (time.Now()-based); zero
	// for at once.
	at time.Time
	// stream, for a live session's item, is the session to play instead
	// of a program.
	stream *streamJob
}

// sinkFadesOnCancel reports whether s fades its sound out by itself when
// Play's context ends. The sound card does (oto ramps its volume down over
// a buffer period, and most of what it plays was read long before: a fade
// in the PCM would come too late). The file and null sinks stop at their
// next chunk without a fade, so for them the agent fades the PCM it feeds
// them and lets them reach its end.
func sinkFadesOnCancel(s audio.Sink) bool {
	switch s.(type) {
	case *audio.WAVSink, *audio.NullSink:
		return false
	}
	return true
}

// volumeFor is the volume an item plays at: emergencies at the emergency
// volume whatever the box's volume, others at the item's override or the
// box's volume.
func (a *Agent) volumeFor(it protocol.PlanItem) int {
	if it.Priority == protocol.Emergency {
		return a.emergencyVolume()
	}
	if it.Volume != nil {
		return *it.Volume
	}
	return a.volume()
}

// volume is the box's volume from the controller's config.
func (a *Agent) volume() int {
	if a.config == nil {
		return DefaultVolume
	}
	return a.config.Config.Volume
}

// emergencyVolume is the config's emergency volume; 0 means unset, since a
// silent emergency is never what anyone wants.
func (a *Agent) emergencyVolume() int {
	if a.config == nil || a.config.Config.EmergencyVolume == 0 {
		return DefaultEmergencyVolume
	}
	return a.config.Config.EmergencyVolume
}

// toneOf is the alert tone an item plays before its message: its own, or
// the siren for an emergency that names none.
func toneOf(it protocol.PlanItem) string {
	if it.Tone == "" && it.Priority == protocol.Emergency {
		return protocol.ToneSiren
	}
	return it.Tone
}

// hasMedia reports whether the item has a message to play (tone-only items
// have none).
func hasMedia(it protocol.PlanItem) bool { return it.Media != (protocol.Media{}) }

// startPlayback hands an item to the player: idle → playing.
func (a *Agent) startPlayback(c candidate, now time.Time) {
	it := c.item
	rec := a.items[it.ID]
	sinkCtx, stop := context.WithCancel(a.runCtx)
	cutCtx, cut := context.WithCancel(context.Background())
	a.queue.start(c, cut)
	rec.Started = true
	rec.Runs++
	var why reason
	var at time.Time
	eventAt := now
	var sj *streamJob
	if it.Stream != nil {
		// A live session: at its start, or from the live point.
		sj, why = a.newStreamJob(c, rec, now)
		at, eventAt = time.Now().Add(sj.join.Sub(now)), sj.join
		a.streamRun = &streamRun{id: it.ID, stats: sj.stats}
	} else {
		switch {
		case c.preempted && c.resume > 0:
			why = because(protocol.WhyResuming, seconds(a.format.Duration(c.resume*int64(a.format.BytesPerFrame())).Milliseconds()))
		case c.preempted:
			why = because(protocol.WhyRestarting)
		case it.Priority == protocol.Emergency && hasMedia(it) && !c.ready:
			why = because(protocol.WhyToneFirst)
		}
		if wait := it.Start.Sub(now); wait > 0 && c.resume == 0 && !c.preempted {
			// Cued: the output opens now, the sound starts at the item's start.
			at, eventAt = time.Now().Add(wait), it.Start
		}
	}
	a.setStatusAt(it, rec, protocol.EventPlaying, why, eventAt)
	path := ""
	if hasMedia(it) {
		path = a.pcmPath(it.Media.SHA256)
		t := time.Now()
		_ = os.Chtimes(path, t, t) // last use, for the cache's LRU
	}
	name := it.ID
	if rec.Runs > 1 {
		name = fmt.Sprintf("%s#%d", it.ID, rec.Runs)
	}
	from := c.resume
	if sj != nil {
		from = 0
	}
	a.playReq <- playJob{ctx: sinkCtx, stop: stop, cut: cutCtx, item: it, name: name, path: path, volume: a.volumeFor(it), from: from, at: at, stream: sj}
	a.publishState(now)
}

// onPlayed takes the player's result: playing/stopping → idle.
func (a *Agent) onPlayed(r playResult) {
	defer a.publishState(a.clock.Now())
	c := a.queue.current
	var problem reason
	if hasMedia(c.item) {
		problem = a.mediaProblem(c.item.Media.SHA256)
	}
	out := a.queue.finished(r, problem)
	a.foldStreamRun()
	rec := a.items[r.id]
	if rec == nil || rec.Status != protocol.EventPlaying {
		return // cancelled while playing; already reported
	}
	it, ok := a.live[r.id]
	if !ok {
		it = protocol.PlanItem{ID: r.id}
	}
	var oe *outputError
	switch {
	case errors.As(r.err, &oe):
		a.setProblem(srcSoundCard, protocol.Problem{Code: protocol.ProblemSoundCard, Level: protocol.LevelError,
			Subject: oe.output, Detail: oe.err.Error()}, a.clock.Now())
	case r.err != nil && !errors.Is(r.err, context.Canceled):
		a.setProblem(srcOutput, protocol.Problem{Code: protocol.ProblemOutput, Level: protocol.LevelError,
			Subject: a.cfg.Output, Detail: r.err.Error()}, a.clock.Now())
	case r.err == nil:
		a.clearProblem(srcOutput)
		a.clearProblem(srcSoundCard)
	}
	for _, v := range out.events {
		a.setStatus(it, rec, v.event, v.why)
	}
	if out.requeue {
		rec.Resume = out.resume
		a.dirty = true
	}
}

// shuttingDown reports whether Run's context has ended.
func (a *Agent) shuttingDown() bool { return a.runCtx != nil && a.runCtx.Err() != nil }

// cutCurrent asks the output to stop its item for cause.
func (a *Agent) cutCurrent(cause cutCause, by string) {
	if a.queue.state == queuePlaying {
		a.log.Info("cutting the item on the output", keyItem, a.queue.current.item.ID, "cause", cause.String(), "by", by)
	}
	a.queue.stop(cause, by)
}

// runPlayer plays one job at a time until ctx is done. While idle it asks
// an OutputChecker sink whether the output works, at once and then every
// outputCheckEvery, and tells the loop.
func (a *Agent) runPlayer(ctx context.Context) {
	checker, _ := a.sink.(OutputChecker)
	check := func() {
		if checker == nil {
			return
		}
		err := checker.Ready()
		select {
		case a.outputRes <- err:
		case <-a.outputRes: // the loop has not taken the older one: replace it
			a.outputRes <- err
		case <-ctx.Done():
		}
	}
	check()
	a.tones.get(protocol.ToneSiren) // the likeliest alert, ready before it is needed
	tick := time.NewTicker(a.outputCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			check()
		case j := <-a.playReq:
			r := a.play(j)
			select {
			case a.playRes <- r:
			case <-ctx.Done():
				return
			}
		}
	}
}

// play streams one play of an item to the sink, fading it out if the loop
// cuts it, and reports how far it got.
func (a *Agent) play(j playJob) playResult {
	res := playResult{id: j.item.ID}
	defer j.stop()
	if oc, ok := a.sink.(OutputChecker); ok {
		if err := oc.Ready(); err != nil {
			res.err = &outputError{output: a.cfg.Output, err: err}
			if j.stream != nil {
				j.stream.stats.set(0, 0, time.Time{})
			}
			return res
		}
	}
	var (
		src    io.Reader
		prog   *program
		live   *streamReader
		fadeIn time.Duration
		err    error
	)
	if j.stream != nil {
		if live, err = a.newStreamReader(j); err != nil {
			res.err = fmt.Errorf("play %s: %w", j.item.ID, err)
			j.stream.stats.set(0, 0, time.Time{})
			return res
		}
		defer live.close()
		src = live
		if j.stream.late {
			fadeIn = fadeInTime // it comes in mid-sound
		}
	} else {
		if prog, err = a.program(j.item, j.path); err != nil {
			res.err = fmt.Errorf("play %s: %w", j.item.ID, err)
			return res
		}
		defer prog.close()
		if err := prog.skip(j.from * int64(a.format.BytesPerFrame())); err != nil {
			res.err = fmt.Errorf("play %s: %w", j.item.ID, err)
			return res
		}
		src = prog
		if j.from > 0 {
			fadeIn = fadeInTime
		}
	}
	fader := audio.NewFader(audio.NewGainReader(src, audio.VolumeGain(j.volume)), a.format, fadeIn)

	var (
		mu       sync.Mutex
		over     bool  // Play returned: a late cut does nothing
		cutFrame int64 = -1
		cutAt    time.Time
		backstop *time.Timer
	)
	began := time.Now()
	if !j.at.IsZero() {
		began = j.at
	}
	stopWatch := context.AfterFunc(j.cut, func() {
		mu.Lock()
		defer mu.Unlock()
		if over {
			return
		}
		cutAt = time.Now()
		if frame, ok := fader.FadeOut(fadeOutTime); ok {
			cutFrame = frame
		}
		if a.sinkFades {
			j.stop()
		} else {
			backstop = time.AfterFunc(cutBackstop, j.stop)
		}
	})
	err = a.playOnSink(j, fader)
	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	over = true
	if backstop != nil {
		backstop.Stop()
	}
	if prog != nil {
		res.messages, res.missing = prog.messages, prog.missing
	}
	res.completed = fader.Ended() && err == nil
	heardFrames := fader.Frames()
	if !cutAt.IsZero() {
		if errors.Is(err, context.Canceled) && !a.shuttingDown() {
			err = nil // the cut itself
		}
		if !res.completed {
			frame := cutFrame
			if frame < 0 { // all of it was read already; the sink was draining
				frame = fader.Frames()
			}
			heard := int64(cutAt.Sub(began)) * int64(a.format.SampleRate) / int64(time.Second)
			rewind := a.format.Bytes(resumeRewind) / int64(a.format.BytesPerFrame())
			res.pos = j.from + max(min(frame, heard)-rewind, 0)
			if a.sinkFades {
				// The sound card had read ahead what it never played.
				fade := a.format.Bytes(fadeOutTime) / int64(a.format.BytesPerFrame())
				heardFrames = min(heardFrames, max(heard, 0)+fade)
			}
		}
	}
	if live != nil {
		res.pos = 0 // a session is rejoined at its live point, never resumed
		heard, missed, until := live.account(heardFrames)
		j.stream.stats.set(heard, missed, until)
		late, full := j.stream.buf.counts()
		a.log.Info("live session play ended", keyItem, j.item.ID, "session", j.item.Stream.Session,
			"heard", streamDur(heard), "missed", streamDur(missed), "late_frames", late, "dropped_full", full)
		if perr := live.problem(); perr != nil {
			a.log.Warn("live session frames could not be decoded", keyItem, j.item.ID, keyErr, perr)
		}
	}
	if err != nil {
		res.err = fmt.Errorf("play %s: %w", j.item.ID, err)
	}
	return res
}

// playOnSink plays pcm on the sink, its first frame at j.at if set: a
// TimedSink aligns it itself; for others the player waits until then.
func (a *Agent) playOnSink(j playJob, pcm io.Reader) error {
	if j.at.IsZero() {
		return a.sink.Play(j.ctx, j.name, pcm)
	}
	if ts, ok := a.sink.(audio.TimedSink); ok {
		return ts.PlayAt(j.ctx, j.name, j.at, pcm)
	}
	t := time.NewTimer(time.Until(j.at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-j.cut.Done():
		return nil // cut before it began: nothing was heard
	case <-j.ctx.Done():
		return j.ctx.Err()
	}
	return a.sink.Play(j.ctx, j.name, pcm)
}

// program is the sound of one play of an item: the chime if asked, then
// for every repeat the gap, the alert tone, a short pause and the message
// (tone-only items have neither pause nor message).
// The message is a section of the decoded PCM file. An emergency may start
// before its media is there: its message is looked for when each repeat
// reaches it, and skipped (counted missing) while absent.
type program struct {
	parts    []part
	cur      io.Reader
	path     string
	lazy     bool // the file may appear while playing
	file     *os.File
	size     int64
	messages int
	missing  int
	bpf      int64
}

// part is one piece of a program.
type part struct {
	data    []byte // a tone or the chime
	silence int64  // bytes of silence; before the message: the pause after the tone
	message bool   // the item's media
}

// program builds the program of it; path is its decoded PCM.
func (a *Agent) program(it protocol.PlanItem, path string) (*program, error) {
	p := &program{path: path, bpf: int64(a.format.BytesPerFrame())}
	if hasMedia(it) {
		p.lazy = it.Priority == protocol.Emergency
		if err := p.open(); err != nil && !p.lazy {
			return nil, err
		}
	}
	if it.Chime {
		p.parts = append(p.parts, part{data: audio.Chime(a.format)})
	}
	var tone []byte
	if kind := toneOf(it); kind != "" {
		if tone = a.tones.get(kind); tone == nil {
			a.log.Warn("unknown tone; playing the media only", keyItem, it.ID, "tone", kind)
		}
	}
	gap := a.format.Bytes(time.Duration(it.GapMS) * time.Millisecond)
	for i := range max(it.Repeat, 1) {
		if i > 0 && gap > 0 {
			p.parts = append(p.parts, part{silence: gap})
		}
		msg := part{message: true}
		if tone != nil {
			p.parts = append(p.parts, part{data: tone})
			msg.silence = a.format.Bytes(toneGap)
		}
		if hasMedia(it) {
			p.parts = append(p.parts, msg)
		}
	}
	return p, nil
}

// open opens the PCM file if it is not open yet.
func (p *program) open() error {
	if p.file != nil {
		return nil
	}
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	p.file, p.size = f, fi.Size()/p.bpf*p.bpf
	return nil
}

// reader returns part x from byte off, counting messages.
func (p *program) reader(x part, off int64) io.Reader {
	switch {
	case x.message:
		if p.open() != nil {
			p.missing++ // and no pause after the tone either
			return nil
		}
		p.messages++
		if off < x.silence {
			return io.MultiReader(io.LimitReader(zeros{}, x.silence-off), io.NewSectionReader(p.file, 0, p.size))
		}
		return io.NewSectionReader(p.file, off-x.silence, p.size-(off-x.silence))
	case x.data != nil:
		return bytes.NewReader(x.data[off:])
	}
	return io.LimitReader(zeros{}, x.silence-off)
}

// length is the size of part x (a missing message is empty).
func (p *program) length(x part) int64 {
	switch {
	case x.message:
		if p.open() != nil {
			return 0
		}
		return x.silence + p.size
	case x.data != nil:
		return int64(len(x.data))
	}
	return x.silence
}

// skip moves the start n bytes into the program (whole frames).
func (p *program) skip(n int64) error {
	n -= n % p.bpf
	for n > 0 && len(p.parts) > 0 {
		x := p.parts[0]
		if l := p.length(x); n >= l {
			n -= l
			p.parts = p.parts[1:]
			continue
		}
		p.cur = p.reader(x, n)
		p.parts = p.parts[1:]
		return nil
	}
	if n > 0 {
		return errors.New("resume point is past the end")
	}
	return nil
}

func (p *program) Read(b []byte) (int, error) {
	for {
		if p.cur == nil {
			if len(p.parts) == 0 {
				return 0, io.EOF
			}
			x := p.parts[0]
			p.parts = p.parts[1:]
			if p.cur = p.reader(x, 0); p.cur == nil {
				continue
			}
		}
		n, err := p.cur.Read(b)
		if err == io.EOF {
			p.cur = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (p *program) close() {
	if p.file != nil {
		p.file.Close()
	}
}

// zeros yields silence: float32 zero is all-zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// toneCache keeps the alert tones synthesized so far: each is made once,
// on first use.
type toneCache struct {
	mu     sync.Mutex
	format audio.Format
	length time.Duration
	tones  map[string][]byte
}

func newToneCache(f audio.Format, length time.Duration) *toneCache {
	return &toneCache{format: f, length: length, tones: map[string][]byte{}}
}

// get returns the tone of kind, or nil for an unknown kind.
func (c *toneCache) get(kind string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tones[kind]
	if !ok {
		t = audio.AlertTone(c.format, kind, c.length)
		c.tones[kind] = t
	}
	return t
}

// onOutputChecked takes what the output said when the player asked it.
func (a *Agent) onOutputChecked(err error) {
	if err != nil {
		a.setProblem(srcSoundCard, protocol.Problem{Code: protocol.ProblemSoundCard, Level: protocol.LevelError,
			Subject: a.cfg.Output, Detail: err.Error()}, a.clock.Now())
		a.restartOutput(err)
		return
	}
	if _, ok := a.problems[srcSoundCard]; ok {
		a.log.Info("the sound card works again", "output", a.cfg.Output)
	}
	a.clearProblem(srcSoundCard)
}

// restartOutput restarts the agent when its output stopped for good in this
// process (an unplugged and replugged USB card; oto opens a card once per
// process), once it has run outputRestartUptime: nothing can sound until
// then, an emergency included, and the new process opens the card afresh.
// Its state, plan and unsent answers are on disk.
func (a *Agent) restartOutput(err error) {
	if !errors.Is(err, audio.ErrOutputStopped) || a.outputRestarting {
		return
	}
	if up := time.Since(a.started); up < a.outputRestartUptime {
		a.log.Warn("the sound card stopped working; restarting loa-agent once it has run long enough", keyErr, err,
			"in", (a.outputRestartUptime - up).Round(time.Second))
		return
	}
	a.outputRestarting = true
	a.log.Error("the sound card stopped working: restarting loa-agent to open it again", keyErr, err)
	a.restart()
}
