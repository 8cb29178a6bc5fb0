package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/internal/lograte"
	"github.com/loa-commune/loa/internal/sdnotify"
)

func newServe(g *globals) *cobra.Command {
	var file string
	var flags controller.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the controller: MQTT broker, HTTP API, scheduler and database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := controller.Defaults()
			if file != "" {
				if err := cfg.LoadFile(file); err != nil {
					return err
				}
				cfg.Backup.Config = file // kept with each backup: a new PC needs it
			}
			cfg.LoadEnv()
			fl := cmd.Flags()
			set := func(name string, dst *string, v string) {
				if fl.Changed(name) {
					*dst = v
				}
			}
			set("site", &cfg.Site, flags.Site)
			set("http", &cfg.HTTP, flags.HTTP)
			set("mqtt", &cfg.MQTT, flags.MQTT)
			set("broker", &cfg.Broker, flags.Broker)
			set("timezone", &cfg.Timezone, flags.Timezone)
			if cmd.Flags().Changed("data") || os.Getenv("LOA_DATA") != "" || file == "" {
				cfg.Data = g.data
			}
			// A line that repeats (a box's refusals, a lost link) is written
			// 5 times a minute, then summarised.
			logs := lograte.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}), lograte.Options{})
			defer logs.Close()
			return serve(cmd.Context(), cfg, slog.New(logs))
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "YAML config file (see configs/loa.yaml)")
	f.StringVar(&flags.Site, "site", "", "site id, used in MQTT topics (default commune)")
	f.StringVar(&flags.HTTP, "http", "", "HTTP API listen address (default :8080)")
	f.StringVar(&flags.MQTT, "mqtt", "", "embedded MQTT broker listen address (default :1883)")
	f.StringVar(&flags.Broker, "broker", "", "use this external MQTT broker (tcp://HOST:1883) instead of the embedded one")
	f.StringVar(&flags.Timezone, "timezone", "", "the site's time zone (default Asia/Ho_Chi_Minh)")
	return cmd
}

func serve(ctx context.Context, cfg controller.Config, log *slog.Logger) error {
	c, err := controller.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	broker := cfg.Broker // external
	if addr := c.BrokerAddr(); addr != "" {
		broker = "tcp://" + addr
		if cfg.TLSCert != "" {
			broker = "ssl://" + addr
		}
	}
	// `loa bench` reads the addresses from this line.
	fmt.Fprintf(os.Stderr, "Loa controller for site %q is running: API %s://%s, MQTT %s, admin token in %s/admin.token. Stop with Ctrl+C.\n",
		cfg.Site, scheme, c.HTTPAddr(), broker, cfg.Data)
	if err := sdnotify.Ready(); err != nil { // systemd's Type=notify; nothing without systemd
		log.Warn("systemd notify", "err", err)
	}
	go func() {
		if err := sdnotify.Watchdog(ctx, nil); err != nil {
			log.Error("systemd watchdog", "err", err)
		}
	}()
	<-ctx.Done()
	_ = sdnotify.Stopping()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Close(stopCtx)
}
