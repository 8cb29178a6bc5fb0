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
	"github.com/loa-commune/loa/loadtest"
	"github.com/loa-commune/loa/messages"
)

func newBench(g *globals) *cobra.Command {
	var o loadtest.Options
	var dir, broker, cpuProfile string
	var storm bool
	var down time.Duration
	reconnect := device.DefaultReconnectPolicy()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure fan-out: a controller on this machine, N simulated boxes, emergencies to all of them",
		Long: "Starts a controller (embedded broker unless --broker) in a fresh folder, registers N simulated boxes\n" +
			"(real MQTT sessions that follow plans and answer back, without audio), sends emergencies to all of\n" +
			"them one after the other, and prints how long the boxes took to get each one (from just before the\n" +
			"request to each box's receipt of its plan).\n\n" +
			"With --storm it measures a reconnect storm instead: once the boxes are connected and hold an emergency,\n" +
			"it restarts the controller and its embedded broker on the same ports (down for --down), and prints how\n" +
			"the boxes came back (peak new sessions in one second, when the last was back, each box's time from\n" +
			"losing its session to a new one), and how many did not get their plan again or the emergency sent after.",
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
			if storm {
				if broker != "" {
					return usageErr(errors.New(messages.T(messages.StormEmbeddedOnly)))
				}
				so := loadtest.StormOptions{Boxes: o.Boxes, Groups: o.Groups, Reconnect: reconnect, Timeout: o.Timeout}
				return runStorm(cmd.Context(), so, dir, down, g.output, cmd.OutOrStdout())
			}
			return runBench(cmd.Context(), o, dir, broker, g.output, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Boxes, "boxes", 1000, "simulated boxes")
	f.IntVar(&o.Groups, "groups", 20, "groups the boxes are spread over")
	f.IntVar(&o.Rounds, "rounds", 20, "emergencies to send")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up on a round after this long")
	f.StringVar(&dir, "dir", "", "folder for the controller's data (default: a temporary one, removed after)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (controller, broker and boxes) to this file")
	f.StringVar(&broker, "broker", "", "use this external MQTT broker (tcp://HOST:1883) instead of the embedded one")
	f.BoolVar(&storm, "storm", false, "measure the reconnect storm after a restart of the controller and its embedded broker")
	f.DurationVar(&down, "down", 0, "with --storm: how long the controller stays down")
	f.DurationVar(&reconnect.Spread, "spread", reconnect.Spread, "with --storm: the boxes spread their first reconnect attempt over this window")
	f.DurationVar(&reconnect.Cap, "reconnect-cap", reconnect.Cap, "with --storm: the window of later attempts doubles up to this")
	return cmd
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

func runBench(ctx context.Context, o loadtest.Options, dir, broker, output string, out io.Writer) error {
	cfg, log, cleanup, err := benchController(dir, broker)
	if err != nil {
		return err
	}
	defer cleanup()
	ctrl, err := controller.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		// Bounded: mochi v2.7.9 can deadlock in Close while clients leave
		// (mochi-mqtt/server#488).
		ctx, cancel := context.WithTimeout(context.Background(), stormCloseWait)
		defer cancel()
		ctrl.Close(ctx)
	}()
	o.Site, o.Emergency, o.Broker = cfg.Site, true, broker
	if o.Broker == "" {
		o.Broker = "tcp://" + ctrl.BrokerAddr()
	}
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	res, err := loadtest.Run(ctx, c, o, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(out, res)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	return table(out, []string{"BOXES", "ROUNDS", "KIND", "P50", "P95", "P99", "MAX", "MISSING", "EVENTS/S", "PLAN BYTES"}, [][]string{{
		fmt.Sprint(res.Boxes), fmt.Sprint(res.Rounds), res.Kind, ms(res.P50), ms(res.P95), ms(res.P99), ms(res.Max),
		fmt.Sprint(res.Missing), fmt.Sprintf("%.0f", res.EventsPerSec), fmt.Sprintf("%.0f", res.PlanBytesMean),
	}})
}
