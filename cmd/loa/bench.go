package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/loadtest"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
)

func newBench(g *globals) *cobra.Command {
	o := loadtest.Options{Changes: true}
	var dir, broker, boxBrokers, cpuProfile, monitor string
	var storm, attach, floor bool
	var floorOpts loadtest.FloorOptions
	var down time.Duration
	reconnect := device.DefaultReconnectPolicy()
	var liveBench, serveStream, rolloutBench bool
	ro := loadtest.RolloutOptions{Percent: 10}
	lo := loadtest.LiveOptions{Transport: loadtest.TransportMQTT}
	lf := liveFlags{delay: live.DefaultOptions().Delay}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure fan-out and cost: a controller, N simulated boxes, emergencies to all of them",
		Long: "Starts a controller (`loa serve`, as its own process, embedded broker unless --broker) in a fresh folder,\n" +
			"registers N simulated boxes (real MQTT sessions that follow plans and answer back, without audio),\n" +
			"and measures:\n" +
			"  - fan-out: from just before each emergency (or announcement) request to each box's receipt of it\n" +
			"    (an emergency plays at once), p50/p95/p99/max over all boxes and rounds;\n" +
			"  - the controller's time to recompute and publish the plans of a round, its CPU over the rounds,\n" +
			"    its resident memory and what the boxes added to it, per 1,000;\n" +
			"  - the broker's connections, and MQTT bytes per box;\n" +
			"  - a new schedule for one group and for every group: until every box it reaches has it;\n" +
			"  - heartbeat ingestion: every box sends --heartbeats at once, until the controller stored them;\n" +
			"  - the raw broker floor: as many plain subscribers on the same broker, one publisher, same payload.\n" +
			"It prints a table (or -o json), stops the controller and removes what it made.\n\n" +
			"With --attach it measures the running controller at --server (token from --token or --data) instead;\n" +
			"its boxes connect to --box-broker, and the simulated boxes and schedules are removed afterwards.\n\n" +
			"With --storm it measures a reconnect storm instead: once the boxes are connected and hold an emergency,\n" +
			"it restarts the controller and its embedded broker on the same ports (down for --down), and prints how\n" +
			"the boxes came back (peak new sessions in one second, when the last was back, each box's time from\n" +
			"losing its session to a new one), and how many did not get their plan again or the emergency sent after.\n\n" +
			"With --live it measures one live session instead: the simulated boxes follow it as loa-agent does (subscribe to\n" +
			"its stream at QoS 0, check each packet's signature) while a recording is spoken into it at its own pace, as\n" +
			"`loa live --file` sends it, for --live-for; it prints the packets lost, the frames that arrived after their play\n" +
			"time (and less than 400 ms before it: too late for a box with a sound card), how early they arrived, the bytes\n" +
			"per box and minute, and the controller's CPU and memory (with --broker-pid, the external broker's too).\n" +
			"--live-transport http measures the alternative instead: the same session served by a benchmark-only HTTP\n" +
			"server (its own process, as the controller would) as one chunked response per box.\n\n" +
			"With --rollout it measures an agent update instead: it publishes --build (a loa-agent build, e.g. from\n" +
			"`make cross VERSION=0.14.0`) as --version, and rolls it out to all the boxes, --percent of them a step; the boxes\n" +
			"(reporting version 0.13.0 and the build's architecture) take the offer in their config as loa-agent does: download\n" +
			"the build over HTTP with their credentials, check its SHA-256 and size, report healthy (nothing is installed). It\n" +
			"prints the time to done, per step (and how much of it was waiting for the engine's next look), the bytes downloaded and of\n" +
			"config messages per box, the controller's CPU and memory, and the boxes that did not finish.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if serveStream {
				return serveHTTPStream(cmd.Context(), lf, cmd.OutOrStdout())
			}
			if rolloutBench {
				switch {
				case liveBench || storm || attach:
					return usageErr(errors.New("--rollout starts a controller of its own and measures only the rollout: leave out --live, --storm and --attach"))
				case ro.Build == "" || ro.Version == "":
					return usageErr(errors.New("--rollout needs --build FILE and --version V (make cross VERSION=0.14.0 makes bin/linux-arm64/loa-agent)"))
				case ro.Percent < 1 || ro.Percent > 100:
					return usageErr(errors.New("--percent must be within 1..100"))
				}
				ro.Boxes, ro.Groups, ro.ConnectRate, ro.Timeout = o.Boxes, o.Groups, o.ConnectRate, o.Timeout
				ro.Brokers = protocol.SplitList(boxBrokers)
				return runRolloutBench(cmd.Context(), ro, dir, broker, g.output, cmd.OutOrStdout())
			}
			if liveBench {
				lo.Boxes, lo.Groups, lo.Timeout, lo.ConnectRate = o.Boxes, o.Groups, o.Timeout, o.ConnectRate
				lo.Brokers = protocol.SplitList(boxBrokers)
				switch {
				case storm:
					return usageErr(errors.New("--live and --storm measure different things: choose one"))
				case lo.Transport == loadtest.TransportHTTP && (broker != "" || attach):
					return usageErr(errors.New("--live-transport http serves the boxes from a stream server of its own: leave out --broker and --attach"))
				case monitor == "sys":
					lo.Connections = loadtest.SysConnections(loadtest.FloorOptions{Brokers: protocol.SplitList(broker),
						Username: floorOpts.Username, Password: floorOpts.Password})
				case monitor != "":
					lo.Connections = loadtest.NATSConnections(protocol.SplitList(monitor))
				}
				if attach {
					if len(lo.Brokers) == 0 {
						return usageErr(errors.New(messages.T(messages.BenchAttachBroker)))
					}
					c, err := g.client()
					if err != nil {
						return err
					}
					return runLiveBench(cmd.Context(), c, lo, g.output, cmd.OutOrStdout())
				}
				return runOwnLiveBench(cmd.Context(), lo, dir, broker, lf, g.output, cmd.OutOrStdout())
			}
			if storm {
				if broker != "" || attach {
					return usageErr(errors.New(messages.T(messages.StormEmbeddedOnly)))
				}
				so := loadtest.StormOptions{Boxes: o.Boxes, Groups: o.Groups, Reconnect: reconnect, Timeout: o.Timeout}
				return runStorm(cmd.Context(), so, dir, down, g.output, cmd.OutOrStdout())
			}
			o.Brokers = protocol.SplitList(boxBrokers)
			if floor {
				floorOpts.Brokers, floorOpts.Publisher = o.Brokers, protocol.SplitList(broker)
				if len(floorOpts.Brokers) == 0 {
					floorOpts.Brokers = floorOpts.Publisher
				}
				o.Floor = &floorOpts // no brokers: an embedded one, like the controller's
			}
			switch {
			case monitor == "sys":
				so := floorOpts
				if len(so.Brokers) == 0 {
					so.Brokers = protocol.SplitList(broker)
				}
				o.Connections = loadtest.SysConnections(so)
			case monitor != "":
				o.Connections = loadtest.NATSConnections(protocol.SplitList(monitor))
			}
			if attach {
				if len(o.Brokers) == 0 {
					return usageErr(errors.New(messages.T(messages.BenchAttachBroker)))
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				return runBench(cmd.Context(), c, o, g.output, cmd.OutOrStdout())
			}
			return runOwnController(cmd.Context(), o, dir, broker, g.output, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Boxes, "boxes", 1000, "simulated boxes")
	f.IntVar(&o.Groups, "groups", 20, "groups the boxes are spread over")
	f.IntVar(&o.Rounds, "rounds", 20, "emergencies (or announcements) to send")
	f.StringVar(&o.Kind, "kind", loadtest.KindEmergency, "what the rounds send: emergency or announcement")
	f.IntVar(&o.Schedules, "schedules", 0, "daily schedules to add first, spread over the groups")
	f.IntVar(&o.Heartbeats, "heartbeats", 3, "heartbeats every box sends at once to measure their ingestion (0: skip)")
	f.BoolVar(&o.Changes, "changes", true, "measure a new schedule for one group and for every group")
	f.BoolVar(&floor, "floor", true, "measure the raw broker floor after the rounds")
	f.StringVar(&floorOpts.Username, "floor-user", "", "MQTT user of the floor's plain clients on an external broker (it must let them use loa-floor/#)")
	f.StringVar(&floorOpts.Password, "floor-password", "", "password of --floor-user")
	f.StringVar(&monitor, "broker-monitor", "", "count an external broker's connections: NATS monitoring URLs (http://HOST:8222,...), or sys for mosquitto's $SYS (as --floor-user)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up on a round after this long")
	f.Float64Var(&o.ConnectRate, "connect-rate", 0, "boxes connecting per second at the start (0: as fast as the broker takes them)")
	f.StringVar(&dir, "dir", "", "folder for the controller's data and log (default: a temporary one, removed after)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the boxes; with --storm also the controller and broker) to this file")
	f.StringVar(&broker, "broker", "", "the controller uses this external MQTT broker (tcp://HOST:1883; a cluster's nodes separated by commas) instead of the embedded one")
	f.StringVar(&boxBrokers, "box-broker", "", "the boxes connect to these broker URLs, spread over them (default: the controller's broker)")
	f.BoolVar(&attach, "attach", false, "measure the controller at --server instead of starting one (needs --box-broker)")
	f.BoolVar(&storm, "storm", false, "measure the reconnect storm after a restart of the controller and its embedded broker")
	f.DurationVar(&down, "down", 0, "with --storm: how long the controller stays down")
	f.DurationVar(&reconnect.Spread, "spread", reconnect.Spread, "with --storm: the boxes spread their first reconnect attempt over this window")
	f.DurationVar(&reconnect.Cap, "reconnect-cap", reconnect.Cap, "with --storm: the window of later attempts doubles up to this")
	f.BoolVar(&liveBench, "live", false, "measure one live session to the boxes instead of emergencies")
	f.DurationVar(&lo.For, "live-for", time.Minute, "with --live: how long the session speaks")
	f.StringVar(&lo.Source, "live-source", "", "with --live: the recording spoken into the session (default: espeak-ng speech, looped)")
	f.IntVar(&lo.BitrateKbps, "live-bitrate", 24, "with --live: kbit/s of the Opus sent (as loa live --bitrate)")
	f.StringVar(&lo.Transport, "live-transport", loadtest.TransportMQTT, "with --live: mqtt (the controller publishes, the broker fans out) or http (a benchmark-only server writes to every box)")
	f.DurationVar(&lf.delay, "live-delay", lf.delay, "with --live: the controller's play-out delay (live.delay)")
	f.DurationVar(&lf.minLead, "live-min-lead", 0, "with --live: the controller's live.min_lead (default: its default, lowered if the delay leaves no room for a packet)")
	f.DurationVar(&lf.packet, "live-packet", 0, "with --live: the controller's live.packet_duration (default: its default, 100ms)")
	f.DurationVar(&lo.Idle, "idle", 10*time.Second, "with --live: measure the controller's CPU this long with every box connected before the session")
	f.IntVar(&lo.BrokerPID, "broker-pid", 0, "with --live: the external broker's process id, to measure its CPU and memory too")
	f.BoolVar(&serveStream, "serve-http-stream", false, "run the benchmark's HTTP stream server (started by --live-transport http)")
	_ = f.MarkHidden("serve-http-stream")
	f.BoolVar(&rolloutBench, "rollout", false, "measure an agent update rolled out to the boxes instead of emergencies (needs --build, --version)")
	f.StringVar(&ro.Build, "build", "", "with --rollout: the loa-agent build to publish and roll out")
	f.StringVar(&ro.Version, "version", "", "with --rollout: the build's version (newer than the boxes' 0.13.0)")
	f.IntVar(&ro.Percent, "percent", ro.Percent, "with --rollout: share of the boxes offered the build per step")
	f.DurationVar(&ro.Deadline, "rollout-deadline", 15*time.Minute, "with --rollout: give up on the rollout after this long")
	return cmd
}

// liveFlags are the controller's live options `loa bench --live` sets.
type liveFlags struct{ delay, minLead, packet time.Duration }

// args are the flags that give a child `loa bench` the same options.
func (f liveFlags) args() []string {
	return []string{"--live-delay", f.delay.String(), "--live-min-lead", f.minLead.String(), "--live-packet", f.packet.String()}
}

// options are the controller's live options with the flags': the defaults,
// with min_lead lowered if the delay leaves no room for a packet.
func (f liveFlags) options() live.Options {
	o := live.DefaultOptions()
	o.Delay = f.delay
	if f.packet > 0 {
		o.PacketDuration = f.packet
	}
	switch {
	case f.minLead > 0:
		o.MinLead = f.minLead
	case o.Delay-o.MinLead < o.PacketDuration:
		o.MinLead = max(20*time.Millisecond, o.Delay-o.PacketDuration)
	}
	return o
}

// runOwnLiveBench measures a live session with a controller (MQTT) or a
// stream server (HTTP) of its own, each a child process.
func runOwnLiveBench(ctx context.Context, o loadtest.LiveOptions, dir, broker string, lf liveFlags, output string, out io.Writer) error {
	lopts := lf.options()
	if err := lopts.Validate(); err != nil {
		return usageErr(fmt.Errorf("--live-delay, --live-min-lead, --live-packet: %w", err))
	}
	o.Delay, o.PacketDuration = lopts.Delay, lopts.PacketDuration
	if o.Transport == loadtest.TransportHTTP {
		p, err := startBenchStreamServer(ctx, lf.args())
		if err != nil {
			return err
		}
		defer p.stop()
		o.StreamURL = p.url
		return runLiveBench(ctx, nil, o, output, out)
	}
	p, err := startBenchController(ctx, dir, broker, map[string]any{"live": map[string]string{
		"delay": lopts.Delay.String(), "min_lead": lopts.MinLead.String(), "packet_duration": lopts.PacketDuration.String()}})
	if err != nil {
		return err
	}
	defer p.stop()
	o.Site, o.Keep = p.site, true
	if len(o.Brokers) == 0 {
		o.Brokers = []string{p.broker}
	}
	return runLiveBench(ctx, p.client, o, output, out)
}

// printBench writes a bench's result as JSON, or as a table of its figures.
func printBench(out io.Writer, output string, res any, rows func() [][]string) error {
	if output == "json" {
		return printJSON(out, res)
	}
	return table(out, []string{"WHAT", "FIGURE"}, rows())
}

func runLiveBench(ctx context.Context, c *api.Client, o loadtest.LiveOptions, output string, out io.Writer) error {
	if o.Site == "" && c != nil {
		site, err := c.Site(ctx)
		if err != nil {
			return err
		}
		o.Site = site.Site
	}
	res, err := loadtest.Live(ctx, c, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	return printBench(out, output, res, func() [][]string { return liveBenchRows(res) })
}

// liveBenchRows are the figures of a live run, one per row.
func liveBenchRows(r loadtest.LiveResult) [][]string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	cost := func(p loadtest.ProcessCost) string {
		return fmt.Sprintf("CPU %.1f %% (idle %.1f %%), RSS %s without boxes, %s with, %s peak, %s after", p.CPU, p.CPUIdle,
			mb(p.RSSNoBoxes), mb(p.RSSBefore), mb(p.RSSPeak), mb(p.RSSAfter))
	}
	conns := "unknown"
	if r.Connections >= 0 {
		conns = fmt.Sprint(r.Connections)
	}
	rows := [][]string{
		{"transport / boxes", fmt.Sprintf("%s / %d", r.Transport, r.Boxes)},
		{"source", fmt.Sprintf("%s, Opus %d kbit/s", r.Source, r.BitrateKbps)},
		{"play-out delay, packet duration", fmt.Sprintf("%v, %v", r.Delay, r.PacketDuration)},
		{"connect, connections", fmt.Sprintf("%s, %s", r.ConnectTime.Round(time.Millisecond), conns)},
		{"sound, packets published", fmt.Sprintf("%.1f s, %d packets (%d bytes)", r.Sound.Seconds(), r.Packets, r.PayloadBytes)},
		{"packets lost", fmt.Sprintf("%d of %d (%.3f %%); duplicates %d, bad %d, no end packet %d", r.Lost, r.Received+r.Lost, r.LostPercent, r.Duplicates, r.Bad, r.NoEnd)},
		{"frames after their play time", fmt.Sprintf("%d of %d (%.3f %%)", r.Late, r.BoxFrames, r.LatePercent)},
		{"frames < 400 ms ahead (late for a sound card)", fmt.Sprintf("%d (%.3f %%)", r.LateForCard, r.LateForCardPercent)},
		{"lead (play time - arrival)", fmt.Sprintf("min %s  p0.1 %s  p1 %s  p50 %s  max %s", ms(r.Lead.Min), ms(r.Lead.P0_1), ms(r.Lead.P1), ms(r.Lead.P50), ms(r.Lead.Max))},
		{"packet spread, first to last box", fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", ms(r.Spread.P50), ms(r.Spread.P95), ms(r.Spread.P99), ms(r.Spread.Max))},
		{"bytes per box per minute", fmt.Sprintf("%.1f kB on the wire (%.1f kB of packets)", r.WireBytesPerBoxMinute/1000, r.PayloadBytesPerBoxMinute/1000)},
		{"controller", cost(r.Controller)},
	}
	if r.Broker != nil {
		rows = append(rows, []string{"broker", cost(*r.Broker)})
	}
	rows = append(rows, []string{"simulated boxes (this process)", fmt.Sprintf("CPU %.1f %%", r.BoxesCPU)})
	if r.Dropped > 0 {
		rows = append(rows, []string{"packets dropped by the server (box behind)", fmt.Sprint(r.Dropped)})
	}
	return rows
}

// serveHTTPStream runs the benchmark's HTTP stream server until ctx ends,
// writing its URL on out.
func serveHTTPStream(ctx context.Context, lf liveFlags, out io.Writer) error {
	s, err := loadtest.NewStreamServer("bench", lf.options())
	if err != nil {
		return err
	}
	return loadtest.ServeStreamServer(ctx, s, "127.0.0.1:0", func(url string) { fmt.Fprintln(out, streamServerLine+url) })
}

// stormCloseWait bounds each stop of the controller in runStorm.
const stormCloseWait = 10 * time.Second

// runStorm starts a controller with the embedded broker, connects the boxes,
// restarts the controller under them and reports how they came back.
func runStorm(ctx context.Context, o loadtest.StormOptions, dir string, down time.Duration, output string, out io.Writer) error {
	if o.Timeout < 2*time.Minute {
		o.Timeout = 2 * time.Minute // boxes come back over their reconnect window, not in one round
	}
	cfg, log, cleanup, err := benchController(dir, "")
	if err != nil {
		return err
	}
	defer cleanup()
	ctrl, err := controller.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	// mochi v2.7.9 can deadlock in Close while clients leave
	// (mochi-mqtt/server#488); the broadcaster gives up on it at the
	// deadline, after the listener is closed, so the port is free again.
	closeCtrl := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, stormCloseWait)
		defer cancel()
		if err := ctrl.Close(ctx); err != nil {
			log.Warn("close the controller", "err", err)
			return err
		}
		return nil
	}
	defer func() { closeCtrl(context.Background()) }()
	// The restarted controller listens where the first one did, as a
	// restarted `loa serve` would.
	cfg.HTTP, cfg.MQTT = ctrl.HTTPAddr(), ctrl.BrokerAddr()
	o.Site, o.Broker = cfg.Site, "tcp://"+ctrl.BrokerAddr()
	o.Restart = func(ctx context.Context) error {
		if err := closeCtrl(ctx); err != nil && ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(down):
		}
		c, err := controller.Open(ctx, cfg, log)
		if err != nil {
			return err
		}
		ctrl = c
		return nil
	}
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	res, err := loadtest.Storm(ctx, c, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(out, res)
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	return table(out, []string{"BOXES", "SPREAD", "CAP", "RESTART", "PEAK/S", "ALL BACK", "P50", "P99", "MAX", "ATTEMPTS", "NOT BACK", "LOST PLAN", "MISSED AFTER"}, [][]string{{
		fmt.Sprint(res.Boxes), res.Spread.String(), res.Cap.String(), sec(res.RestartTime), fmt.Sprint(res.PeakPerSecond), sec(res.AllBack),
		sec(res.P50), sec(res.P99), sec(res.Max), fmt.Sprint(res.Attempts), fmt.Sprint(res.NotBack), fmt.Sprint(res.LostPlan), fmt.Sprint(res.Missed),
	}})
}

// benchController is the config and log of a benchmark's controller in dir
// (a temporary folder when empty), with an external broker if given;
// cleanup closes the log and removes a temporary folder.
func benchController(dir, broker string) (controller.Config, *slog.Logger, func(), error) {
	cleanup := func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "loa-bench-")
		if err != nil {
			return controller.Config{}, nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		dir = tmp
	}
	logFile, err := createLog(dir, "controller.log")
	if err != nil {
		cleanup()
		return controller.Config{}, nil, func() {}, err
	}
	rm := cleanup
	cleanup = func() { logFile.Close(); rm() }
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.Broker = "bench", filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0", broker
	cfg.AllClearText = "" // measure the emergencies alone
	return cfg, slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})), cleanup, nil
}

// runOwnController starts `loa serve` as a child process (so its CPU and
// memory are its own, not the simulated boxes'), measures it and stops it.
func runOwnController(ctx context.Context, o loadtest.Options, dir, broker, output string, out io.Writer) error {
	p, err := startBenchController(ctx, dir, broker, nil)
	if err != nil {
		return err
	}
	defer p.stop()
	o.Site, o.Keep = p.site, true // the whole folder goes
	if len(o.Brokers) == 0 {
		o.Brokers = []string{p.broker}
	}
	return runBench(ctx, p.client, o, output, out)
}

func runBench(ctx context.Context, c *api.Client, o loadtest.Options, output string, out io.Writer) error {
	if o.Site == "" {
		site, err := c.Site(ctx)
		if err != nil {
			return err
		}
		o.Site = site.Site
	}
	res, err := loadtest.Run(ctx, c, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	return printBench(out, output, res, func() [][]string { return benchRows(res) })
}

// benchRows are the figures of a run, one per row.
func benchRows(r loadtest.Result) [][]string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	lat := func(l loadtest.Latency) string {
		return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (%d, %d missing)", ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max), l.N, l.Missing)
	}
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	rows := [][]string{
		{"boxes / groups / schedules", fmt.Sprintf("%d / %d / %d", r.Boxes, r.Groups, r.Schedules)},
		{"register, connect", fmt.Sprintf("%s, %s", r.RegisterTime.Round(time.Millisecond), r.ConnectTime.Round(time.Millisecond))},
		{fmt.Sprintf("fan-out (%d %s rounds)", r.Rounds, r.Kind), lat(r.FanOut)},
		{"request → plan leaves the controller", fmt.Sprintf("p50 %s  max %s", ms(r.ControllerPath.P50), ms(r.ControllerPath.Max))},
		{"controller: recompute+publish a round", ms(r.Publish)},
	}
	if r.Floor != nil {
		rows = append(rows,
			[]string{"raw broker floor, same fan-out", lat(*r.Floor)},
			[]string{"fan-out / floor", fmt.Sprintf("p50 %.2f×  p99 %.2f×", r.FloorRatio[0], r.FloorRatio[1])})
	}
	if r.FloorError != "" {
		rows = append(rows, []string{"raw broker floor", "failed: " + r.FloorError})
	}
	conns := "unknown"
	if r.BrokerConnections >= 0 {
		conns = fmt.Sprint(r.BrokerConnections)
	}
	rows = append(rows,
		[]string{"controller CPU over the rounds", fmt.Sprintf("%.1f %% of one core", r.Controller.CPUPercent)},
		[]string{"controller RSS (peak), per 1,000 boxes", fmt.Sprintf("%s (%s), %s", mb(r.Controller.RSSBytes), mb(r.Controller.MaxRSSBytes), mb(r.Controller.RSSPerThousand))},
		[]string{"broker connections", conns},
		[]string{"MQTT bytes per box over the rounds", fmt.Sprintf("in %.0f, out %.0f (plan %.0f B)", r.BytesInPerBox, r.BytesOutPerBox, r.PlanBytesMean)},
	)
	for _, ch := range []struct {
		name string
		c    *loadtest.Change
	}{{"new schedule, one group", r.OneGroup}, {"new schedule, every group", r.AllGroups}} {
		if ch.c != nil {
			rows = append(rows, []string{ch.name, fmt.Sprintf("all %d boxes have it in %s; replan %s (%d targets, %d recomputed, %d published)",
				ch.c.Boxes, ms(ch.c.AllHave), ms(ch.c.Replan), ch.c.Targets, ch.c.Recomputed, ch.c.Published)})
		}
	}
	rows = append(rows, []string{"answer-back ingestion over the rounds", fmt.Sprintf("%.0f events/s", r.EventsPerSec)})
	if r.Heartbeats > 0 {
		rows = append(rows, []string{"heartbeat ingestion", fmt.Sprintf("%.0f /s (%d heartbeats)", r.HeartbeatsPerSec, r.Heartbeats)})
	}
	return rows
}

// runRolloutBench starts `loa serve` as a child process, rolls an agent
// build out to the simulated boxes and prints what it took.
func runRolloutBench(ctx context.Context, o loadtest.RolloutOptions, dir, broker, output string, out io.Writer) error {
	p, err := startBenchController(ctx, dir, broker, nil)
	if err != nil {
		return err
	}
	defer p.stop()
	o.Site, o.Keep = p.site, true // the whole folder goes
	if len(o.Brokers) == 0 {
		o.Brokers = []string{p.broker}
	}
	res, err := loadtest.AgentRollout(ctx, p.client, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	return printBench(out, output, res, func() [][]string { return rolloutBenchRows(res) })
}

// rolloutBenchRows are the figures of a rollout run, one per row.
func rolloutBenchRows(r loadtest.RolloutResult) [][]string {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	rows := [][]string{
		{"boxes, per step", fmt.Sprintf("%d, %d %%", r.Boxes, r.Percent)},
		{"build", fmt.Sprintf("%s for %s, %d bytes", r.Version, r.Arch, r.BuildBytes)},
		{"register, connect", fmt.Sprintf("%s, %s", r.RegisterTime.Round(time.Millisecond), r.ConnectTime.Round(time.Millisecond))},
		{"rollout", fmt.Sprintf("%s %s", r.State, r.Reason)},
		{"start to done", sec(r.Total)},
		{"per step (median)", fmt.Sprintf("%s, of which the boxes' work %s (%d steps)", sec(r.StepMedian), sec(r.WorkMedian), len(r.Steps))},
		{"waiting for the engine's tick", fmt.Sprintf("%s (%.0f %% of the time)", sec(r.TickWait), r.TickPercent)},
		{"downloaded (builds over HTTP)", fmt.Sprintf("%s in %d requests; per box %s median, %s max", mb(r.Downloaded), r.Fetches, sec(r.DownloadMedian), sec(r.DownloadMax))},
		{"MQTT config messages per box", fmt.Sprintf("%.1f, %.0f bytes (states sent: %.0f bytes)", r.ConfigsPerBox, r.ConfigBytesPerBox, r.StateBytesPerBox)},
		{"controller over the rollout", fmt.Sprintf("CPU %.1f %%, RSS %s before, %s peak (process peak %s)", r.ControllerCPU, mb(r.ControllerRSS), mb(r.ControllerRSSPeak), mb(r.ControllerMaxRSS))},
		{"simulated boxes (this process)", fmt.Sprintf("CPU %.1f %%", r.BoxesCPU)},
		{"boxes not finished", fmt.Sprintf("%d %v", r.NotFinished, r.Unfinished)},
	}
	for _, s := range r.Steps {
		rows = append(rows, []string{fmt.Sprintf("step %d (%d boxes)", s.Step, s.Boxes),
			fmt.Sprintf("offered at %s, all healthy %s later, next %s after that", sec(s.Offered), sec(s.Work()), sec(s.Wait()))})
	}
	return rows
}
