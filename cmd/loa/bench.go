package main

import (
	"context"
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
	"github.com/loa-commune/loa/loadtest"
)

func newBench(g *globals) *cobra.Command {
	var o loadtest.Options
	var dir, broker, cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure fan-out: a controller on this machine, N simulated boxes, emergencies to all of them",
		Long: "Starts a controller (embedded broker unless --broker) in a fresh folder, registers N simulated boxes\n" +
			"(real MQTT sessions that follow plans and answer back, without audio), sends emergencies to all of\n" +
			"them one after the other, and prints how long the boxes took to get each one (from just before the\n" +
			"request to each box's receipt of its plan).",
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
	return cmd
}

func runBench(ctx context.Context, o loadtest.Options, dir, broker, output string, out io.Writer) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "loa-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	logFile, err := createLog(dir, "controller.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.Broker = "bench", filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0", broker
	cfg.AllClearText = "" // measure the emergencies alone
	ctrl, err := controller.Open(ctx, cfg, slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer ctrl.Close(context.Background())
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
