package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/summarylog"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/selfupdate"
)

// Version is reported in the heartbeat. Builds set it with
// -ldflags "-X github.com/loa-commune/loa/device.Version=v1.2.3".
var Version = "dev"

// Volumes used until the controller's device config says otherwise.
const (
	DefaultVolume          = 80
	DefaultEmergencyVolume = 100
)

// ErrAlreadyRun is returned by a second call to Run.
var ErrAlreadyRun = errors.New("device: Run was already called on this agent")

const (
	stateFileName = "state.json"
	// maxWait bounds how long the loop sleeps, so that a wall-clock step (NTP
	// setting the clock of a Pi that booted in 1970) is noticed within a second.
	maxWait = time.Second
	// tombstoneKeep is how long a finished item is remembered after it left
	// the plan, so that a late or re-delivered plan does not play it again.
	tombstoneKeep = 48 * time.Hour
	// shutdownWait bounds how long Close waits for the offline state to reach
	// the broker.
	shutdownWait = 5 * time.Second
	// resubscribeWait is how long the loop waits before retrying a failed
	// subscription while connected.
	resubscribeWait = 5 * time.Second
)

// Agent is the loudspeaker box: it keeps the MQTT session, reconciles plans,
// fills the media cache, plays due items on the sink and reports what it did.
// Create it with New, start it with Run, stop it by cancelling Run's context
// or with Close.
type Agent struct {
	cfg         Config
	sink        audio.Sink
	log         *slog.Logger
	clock       *syncedClock // the controller's time as estimated; every decision uses it
	sync        *timeSync
	trust       *trust // paho's goroutine checks messages; the loop updates keys
	topics      protocol.Topics
	format      audio.Format
	client      mqtt.Client
	http        *http.Client
	statePath   string
	thermalPath string
	started     time.Time // monotonic, for uptime

	// Channels between goroutines; each has one sender side and one reader.
	inbox     *inbox        // paho → loop
	out       *outbox       // loop → outbox worker
	events    *diskOutbox   // answer-back events until the broker has them
	gate      *sessionGate  // paho → outbox worker: the session may publish
	connected chan struct{} // paho on-connect → loop
	syncKick  chan struct{} // paho on-connect → time sync
	subFailed chan struct{} // outbox worker → loop
	// answerSpread is the config's AnswerSpreadMS: the loop sets it, the
	// outbox worker reads it.
	answerSpread atomic.Int64
	fetchReq     chan fetchJob    // loop → fetch workers (capacity fetchWorkers)
	fetchRes     chan fetchResult // fetch workers → loop
	playReq      chan playJob     // loop → player (capacity 1)
	playRes      chan playResult  // player → loop
	outputRes    chan error       // player → loop: what the OutputChecker said (capacity 1)

	// Set by New; read by the player.
	sinkFades bool       // the sink fades out by itself when Play's context ends
	tones     *toneCache // alert tones, synthesized once
	// outputCheckEvery is how often the player asks an OutputChecker sink
	// whether it works while idle.
	outputCheckEvery time.Duration
	// outputRestartUptime and outputRestarting: see restartOutput (owned
	// by the loop).
	outputRestartUptime time.Duration
	outputRestarting    bool

	// Set by New, replaced by tests: the free space of a folder's file
	// system, and the monotonic clock the wall clock is checked against.
	freeSpace func(dir string) (int64, error)
	mono      func() time.Time

	// streams holds the jitter buffers of the live sessions followed: the
	// loop makes and drops them, paho's goroutine fills them, the player
	// reads one (stream.go). streamRefused logs refused packets, a summary
	// a minute.
	streams       *streamSet
	streamRefused *summarylog.Log

	// Owned by the loop goroutine (and by New before Run starts it).
	runCtx      context.Context
	config      *heldConfig
	plans       map[string]*heldPlan
	items       map[string]*itemRecord
	live        map[string]protocol.PlanItem // the merged plan
	media       map[string]*mediaState
	arrival     uint64
	seq         uint64 // next envelope sequence number
	seqLimit    uint64 // first number not reserved in state.json
	queue       playQueue
	lastTick    time.Time  // the clock at the last tick
	quiet       quietHours // from the device config
	rules       ruleState  // the plans' recurring rules (rules.go)
	inflight    int        // fetch jobs out
	retryAt     time.Time
	resubAt     time.Time
	streamRun   *streamRun // the stream item on the output, while it plays
	subscribed  map[string]bool
	cacheBytes  int64
	problems    map[string]protocol.Problem // source → what is wrong (problems.go)
	healthAt    time.Time                   // last temperature reading (time.Now)
	healthEvery time.Duration
	jumpWall    time.Time            // the base clock at the last tick
	jumpMono    time.Time            // the monotonic clock then
	rejectedAt  map[string]time.Time // topic → last rejection reported
	dirty       bool
	published   protocol.State // last state sent
	nextBeat    time.Time
	haveBeat    bool
	saveFailing bool
	lastOffset  time.Duration // the controller's offset at the last estimate
	hadOffset   bool

	// Time sources other than the controller (timesource_agent.go): set by
	// New, replaced by tests. timeStat is written by Run's start and the
	// time-source goroutine, which owns tk; bootItems belongs to the loop.
	tsrc        *clockSources
	timeStat    atomic.Pointer[timeStatus]
	timeChanged chan struct{} // time-source goroutine → loop
	tk          timeKeeping
	bootItems   map[string]bool // items known when the loop started

	// Agent updates (update.go), owned by the loop. restart is
	// requestRestart unless a test replaces it (a new build is installed,
	// or the output stopped: restartOutput); trialRollout is the
	// selfupdate.EnvTrial this build runs under (empty: no trial).
	updates        *selfupdate.Store
	version        string // Version, which offers are compared with
	arch           string
	updStatus      *protocol.UpdateStatus
	upd            updateJob
	updateRes      chan updateResult // download goroutine → loop
	updWG          sync.WaitGroup
	restart        func()
	restartWanted  bool
	trialRollout   string
	trialConfig    bool       // a signed config arrived in this run
	trialPushed    bool       // the confirming state publish is out
	trialAck       chan error // outbox worker → loop: the broker has it
	trialConfirmed bool

	mu     sync.Mutex // guards ran, closed, cancel
	ran    bool
	closed bool
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
}

// New prepares an agent: it validates cfg, creates the cache folders and
// loads <cache>/state.json, so the box can play its stored plan before the
// network is up. It opens no connection; Run does. sink is not closed by the
// agent. logger and clock may be nil (discard, SystemClock).
func New(cfg Config, sink audio.Sink, logger *slog.Logger, clock Clock) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if sink == nil {
		return nil, errors.New("new agent: no audio sink")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = SystemClock{}
	}
	a := &Agent{
		cfg:         cfg,
		sink:        sink,
		log:         logger.With(keyDevice, cfg.ID, keySite, cfg.Site),
		clock:       &syncedClock{base: clock},
		topics:      protocol.NewTopics(cfg.Site),
		format:      sink.Format(),
		statePath:   filepath.Join(cfg.Cache, stateFileName),
		thermalPath: defaultThermalPath,
		started:     time.Now(),
		inbox:       newInbox(),
		out:         newOutbox(),
		gate:        newSessionGate(),
		connected:   make(chan struct{}, 1),
		syncKick:    make(chan struct{}, 1),
		subFailed:   make(chan struct{}, 1),
		fetchReq:    make(chan fetchJob, fetchWorkers),
		fetchRes:    make(chan fetchResult, fetchWorkers),
		playReq:     make(chan playJob, 1),
		playRes:     make(chan playResult, 1),
		outputRes:   make(chan error, 1),
		live:        map[string]protocol.PlanItem{},
		media:       map[string]*mediaState{},
		subscribed:  map[string]bool{},
		problems:    map[string]protocol.Problem{},
		healthEvery: healthEvery,
		freeSpace:   freeSpace,
		mono:        time.Now,
		rejectedAt:  map[string]time.Time{},
		done:        make(chan struct{}),
		sinkFades:   sinkFadesOnCancel(sink),
		streams:     newStreamSet(),
		version:     Version,
		arch:        selfupdate.Arch(),
		updateRes:   make(chan updateResult, 1),
		trialAck:    make(chan error, 1),
		// A trial build is told so by the launcher that supervises it.
		trialRollout: os.Getenv(selfupdate.EnvTrial),
	}
	a.restart = a.requestRestart
	a.outputRestartUptime = outputRestartUptime
	a.tsrc, a.timeChanged, a.tk = newClockSources(cfg), make(chan struct{}, 1), newTimeKeeping()
	a.outputCheckEvery = outputCheckEvery
	a.streamRefused = summarylog.New(a.log, "refusing live session packets", "refused live session packets", time.Minute)
	a.sync = newTimeSync(a.clock)
	a.tones = newToneCache(a.format, alertToneLength)
	tlsConf, err := cfg.tlsConfig(a.tlsTime) // for https:// media; mqtt.go makes the broker's
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	a.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsConf,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
	}}
	for _, dir := range []string{cfg.Cache, a.mediaDir(), a.pcmDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cache folder: %w", err)
		}
	}
	st, err := loadState(a.statePath)
	if err != nil {
		a.log.Error("state file", keyErr, err)
	}
	a.restore(st)
	keys, _ := trustedKeys(cfg, st)
	a.trust = newTrust(keys)
	for target, hp := range a.plans {
		a.trust.accepted(a.planTopic(target), hp.Seq)
	}
	if a.config != nil {
		a.trust.accepted(a.topics.DeviceConfig(cfg.ID), a.config.Seq)
	}
	a.cleanCache()
	if err := a.openUpdates(); err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	if a.events, err = openDiskOutbox(filepath.Join(cfg.Cache, outboxDirName), a.log); err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	if n := a.events.len(); n > 0 {
		a.log.Info("unsent events in the outbox", "count", n)
	}

	will, err := a.encodeState(protocol.State{Online: false, State: protocol.StateOffline, Volume: a.volume(), Version: Version, At: a.clock.Now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	a.client = mqtt.NewClient(a.newMQTTOptions(will))
	return a, nil
}

// restore takes over what state.json held.
func (a *Agent) restore(st *savedState) {
	a.setConfig(st.Config)
	a.plans = st.Plans
	if a.plans == nil {
		a.plans = map[string]*heldPlan{}
	}
	a.items = st.Items
	if a.items == nil {
		a.items = map[string]*itemRecord{}
	}
	formatChanged := st.PCMFormat != a.format
	for _, rec := range a.items {
		a.arrival = max(a.arrival, rec.Arrival)
		if rec.Status == protocol.EventPlaying {
			// Interrupted by a restart or power cut: it plays again from
			// the start if its window is still open.
			rec.Status = protocol.EventReady
		}
		if formatChanged {
			rec.Resume = 0 // frames of another format
		}
		// A preempted item keeps waiting to go on, where it was.
	}
	if formatChanged {
		if st.PCMFormat != (audio.Format{}) {
			a.log.Info("output format changed; decoding media again", "was", st.PCMFormat, "now", a.format)
		}
		a.clearPCM()
	}
	a.seq = max(st.SeqReserved, 1)
	a.seqLimit = a.seq // the first nextSeq reserves a block and saves
}

// Run connects to the broker and runs the agent until ctx is done or Close
// is called. It returns nil after a clean stop: every goroutine it started
// has ended, the offline state was published and the session closed.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.ran {
		a.mu.Unlock()
		return ErrAlreadyRun
	}
	a.ran = true
	if a.closed {
		a.mu.Unlock()
		close(a.done)
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	a.cancel = cancel
	a.mu.Unlock()
	defer close(a.done)
	defer cancel()
	a.runCtx = ctx

	// The time sources are read before the loop decides anything (at most
	// timeReadBudget): a clock that only looks right must not play.
	rctx, rcancel := context.WithTimeout(ctx, timeReadBudget)
	a.readTimeSources(rctx)
	rcancel()

	var wg sync.WaitGroup
	wg.Go(func() { a.runTimeSources(ctx) })
	for range fetchWorkers {
		wg.Go(func() { a.runFetcher(ctx) })
	}
	wg.Go(func() { a.runPlayer(ctx) })
	wg.Go(func() { a.runTimeSync(ctx, a.syncKick) })
	outCtx, outCancel := context.WithCancel(context.Background())
	defer outCancel()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		a.runOutbox(outCtx)
	}()

	a.log.Info("agent starting", keyBroker, strings.Join(a.cfg.BrokerURLs(), ","), "cache", a.cfg.Cache, "format", a.format, "version", Version)
	a.client.Connect() // with ConnectRetry it keeps trying in the background
	a.loop(ctx)

	wg.Wait()
	a.updWG.Wait()
	a.saveTime()
	a.streamRefused.Stop()
	a.foldStreamRun() // what a session played before the stop counts
	a.saveState()
	if a.client.IsConnectionOpen() {
		st := a.currentState(a.clock.Now())
		st.Online, st.State, st.Playing = false, protocol.StateOffline, ""
		if b, err := a.encodeState(st); err == nil {
			a.out.push(op{kind: opPublish, topics: []string{a.topics.DeviceState(a.cfg.ID)}, payload: b, retained: true, wait: true})
		}
	}
	a.out.close()
	t := time.NewTimer(shutdownWait)
	select {
	case <-outDone:
	case <-t.C:
		a.log.Warn("broker did not take the offline state in time", "queued", a.out.len())
		outCancel()
		<-outDone
	}
	t.Stop()
	a.client.Disconnect(250)
	a.events.close()
	a.log.Info("agent stopped")
	if a.restartWanted {
		return ErrRestart
	}
	return nil
}

// Close stops Run and waits for it to return, or for ctx. It may be called
// from any goroutine, more than once, and before or without Run.
func (a *Agent) Close(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	ran, cancel := a.ran, a.cancel
	a.mu.Unlock()
	if !ran {
		return nil
	}
	if cancel != nil {
		cancel()
	}
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close agent: %w", ctx.Err())
	}
}

// loop is the agent's one decision maker: every change of plans, media,
// playback and time is handled here, one at a time.
func (a *Agent) loop(ctx context.Context) {
	a.resendEvents() // what an earlier run left in the outbox goes first
	a.reconcile()
	a.tick()
	for {
		t := a.clock.NewTimer(a.nextWake(a.clock.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.inbox.ready:
			a.applyInbox()
		case <-a.connected:
			a.onConnected()
		case <-a.sync.changed:
			a.log.Info("clock synchronised with the controller", "offset", a.clock.Offset(), "now", a.clock.Now().UTC())
			a.offsetChanged(a.lastOffset, a.hadOffset)
			a.lastOffset, a.hadOffset = a.clock.Offset(), a.clock.Synced()
			a.publishState(a.clock.Now())
		case <-a.timeChanged:
			a.onTimeSource()
		case err := <-a.outputRes:
			a.onOutputChecked(err)
		case <-a.subFailed:
			if a.client.IsConnectionOpen() && a.resubAt.IsZero() {
				a.resubAt = a.clock.Now().Add(resubscribeWait)
			}
		case r := <-a.fetchRes:
			a.onFetched(r)
		case r := <-a.playRes:
			a.onPlayed(r)
		case r := <-a.updateRes:
			a.onUpdateFetched(r)
		case err := <-a.trialAck:
			a.onTrialAck(err)
		case <-t.C():
		}
		t.Stop()
		a.tick()
	}
}

// tick makes every time-driven decision for now.
func (a *Agent) tick() {
	now := a.clock.Now()
	a.lastTick = now
	a.checkClockJump(now)
	a.checkHealth(now)
	plausible := a.plausible(now)
	a.syncStreams(now) // a session's buffer is there before its item starts
	if plausible {
		if a.rulesDue(now) {
			a.reconcile() // the rules' window moved
		}
		a.schedule(now)
		a.pruneTombstones(now)
	}
	// Why the clock is not placed; emergencies that arrive (timesource_agent.go).
	a.unplacedTick(now, plausible)
	a.syncStreams(now) // and dropped once it is final
	a.dispatchFetches(now, plausible)
	a.checkUpdate(now)
	if !a.resubAt.IsZero() && !now.Before(a.resubAt) {
		a.resubAt = time.Time{}
		clear(a.subscribed)
		a.syncSubs()
	}
	if a.dirty {
		a.saveState()
	}
	a.heartbeat(now) // after the save: its failure is in this beat
}

// nextWake is how long the loop may sleep before something is due.
func (a *Agent) nextWake(now time.Time) time.Duration {
	d := maxWait
	consider := func(t time.Time) {
		if !t.IsZero() {
			d = min(d, t.Sub(now))
		}
	}
	if a.plausible(now) {
		// Starts and expiries after the last tick: one that passed while
		// the loop was busy (or the clock jumped) wakes it at once.
		for id, it := range a.live {
			rec := a.items[id]
			if rec == nil || rec.Status.Final() || a.queue.onOutput(id) {
				continue
			}
			switch cue := it.Start.Add(-cueLead); {
			case it.Stream != nil && cue.Add(-streamFollowLead).After(a.lastTick):
				consider(cue.Add(-streamFollowLead)) // follow the session
			case cue.After(a.lastTick):
				consider(cue)
			case it.Start.After(a.lastTick):
				consider(it.Start)
			}
			until := it.Expires
			if it.Stream != nil {
				until = a.streamUntil(it)
			}
			if exp := until.Add(time.Millisecond); exp.After(a.lastTick) {
				consider(exp)
			}
		}
	}
	consider(a.retryAt)
	consider(a.resubAt)
	consider(a.nextBeat)
	return max(d, 0)
}

// onConnected (re)subscribes and announces the box.
func (a *Agent) onConnected() {
	clear(a.subscribed)
	a.resubAt = time.Time{}
	a.syncSubs()
	a.publishState(a.clock.Now())
	a.resendEvents()
}

// resendEvents queues the events of the disk outbox that are neither queued
// nor waiting in paho for an acknowledgement, oldest first, unchanged.
func (a *Agent) resendEvents() {
	for _, ev := range a.events.takePending() {
		a.out.push(a.eventOp(ev.payload, ev.id))
	}
}

// syncSubs subscribes to what the box must follow and unsubscribes from what
// it left: its config always; once a config is known, plan/all, its own plan
// and the plan of each of its groups; and the stream of each live session it
// follows (syncStreams).
func (a *Agent) syncSubs() {
	if !a.client.IsConnectionOpen() {
		return // onConnected will do it
	}
	want := map[string]bool{a.topics.DeviceConfig(a.cfg.ID): true, a.topics.TimeResponse(a.cfg.ID): true}
	if a.config != nil {
		want[a.topics.PlanAll()] = true
		want[a.topics.PlanDevice(a.cfg.ID)] = true
		for _, g := range a.config.Config.Groups {
			want[a.topics.PlanGroup(g)] = true
		}
	}
	for _, s := range a.streams.sessions() {
		want[a.topics.Stream(s)] = true
	}
	var add, drop []string
	for t := range want {
		if !a.subscribed[t] {
			add = append(add, t)
		}
	}
	for t := range a.subscribed {
		if !want[t] {
			drop = append(drop, t)
		}
	}
	if len(add) > 0 {
		sortTopics(add, a.topics.DeviceConfig(a.cfg.ID))
		a.out.push(op{kind: opSubscribe, topics: add})
	}
	if len(drop) > 0 {
		a.out.push(op{kind: opUnsubscribe, topics: drop})
	}
	a.subscribed = want
}

// nextSeq hands out the next envelope sequence number, reserving a new block
// in state.json when the current one is used up.
func (a *Agent) nextSeq() uint64 {
	if a.seq >= a.seqLimit {
		a.seqLimit = a.seq + seqBlock
		a.saveState()
	}
	s := a.seq
	a.seq++
	return s
}

// saveState writes state.json; a failure is logged and reported in the
// heartbeat, and retried on the next change.
func (a *Agent) saveState() {
	st := &savedState{
		Version:     stateFileVersion,
		PCMFormat:   a.format,
		SeqReserved: a.seqLimit,
		Config:      a.config,
		Plans:       a.plans,
		Items:       a.items,

		ProvisionedKeys: a.cfg.ControllerKeys,
	}
	if err := st.save(a.statePath); err != nil {
		// The plan stays in memory and plays; saving is tried again on
		// the next change.
		a.writeProblem(srcState, err)
		if !a.saveFailing {
			a.log.Error("cannot save state", keyErr, err)
		}
		a.saveFailing = true
		return
	}
	if a.saveFailing {
		a.log.Info("state saved again")
	}
	a.saveFailing = false
	a.clearProblem(srcState)
	a.dirty = false
}
