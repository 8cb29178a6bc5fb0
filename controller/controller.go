package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/signing"
	"github.com/loa-commune/loa/store"
	"github.com/loa-commune/loa/tts"
)

// Controller is a running `loa serve`.
type Controller struct {
	cfg         Config
	log         *slog.Logger
	store       *store.Store
	bc          *broadcaster.Service
	httpSrv     *http.Server
	httpLn      net.Listener
	adminToken  string
	keys        *signing.Keys
	sensors     atomic.Pointer[sensors]
	stopSensors context.CancelFunc
	wg          sync.WaitGroup
}

// Open validates cfg and starts everything. On error, whatever was started
// is stopped again.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (c *Controller, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(cfg.Timezone)
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	c = &Controller{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			c.Close(context.Background())
			c = nil
		}
	}()
	if c.adminToken, err = auth.LoadOrCreateAdminToken(cfg.Data); err != nil {
		return c, err
	}
	if c.keys, err = signing.LoadOrCreate(cfg.Data); err != nil {
		return c, err
	}
	if c.store, err = store.Open(ctx, filepath.Join(cfg.Data, "loa.db")); err != nil {
		return c, err
	}
	ms, err := media.Open(filepath.Join(cfg.Data, "media"), media.Limits{
		MaxBytes: cfg.MaxMediaMB << 20, MaxDuration: time.Duration(cfg.MaxMediaMinutes) * time.Minute})
	if err != nil {
		return c, err
	}
	if c.httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
		return c, fmt.Errorf("listen for HTTP on %s: %w (is another loa serve running? use --http)", cfg.HTTP, err)
	}
	// Boxes fetch media from the public server URL; the broker address is
	// only known once the embedded broker listens, so start it first.
	c.bc = broadcaster.New(broadcaster.Options{
		Site: cfg.Site, Location: loc, Horizon: cfg.Horizon, MQTTListen: cfg.MQTT,
		BrokerURL: cfg.Broker, BrokerUsername: cfg.BrokerUsername, BrokerPassword: cfg.BrokerPassword,
		HeartbeatSec: cfg.HeartbeatSec, EmergencyVolume: cfg.EmergencyVolume, Keys: c.keys,
		OnTrigger: func(source string, payload []byte) {
			if sn := c.sensors.Load(); sn != nil { // nil until the API exists, a moment after connecting
				sn.handle(source, payload)
			}
		},
	}, c.store, log.With("part", "broadcaster"))
	serverURL, _ := cfg.publicURLs(c.httpLn.Addr().String(), cfg.MQTT)
	c.bc.SetMediaURL(serverURL)
	if err = c.bc.Open(ctx); err != nil {
		return c, err
	}
	if err = c.bc.SetBrokerLimits(cfg.MQTTLimits); err != nil {
		return c, err
	}
	serverURL, brokerURL := cfg.publicURLs(c.httpLn.Addr().String(), c.bc.BrokerAddr())
	handler := api.NewServer(api.Options{
		Site: cfg.Site, AdminToken: c.adminToken, BrokerURL: brokerURL, ServerURL: serverURL, Keys: c.keys,
		DefaultVolume: cfg.DefaultVolume, Validity: cfg.Validity,
		StaleAfter:        time.Duration(3*cfg.HeartbeatSec+10) * time.Second,
		EmergencyValidity: cfg.EmergencyValidity, Speech: tts.New(cfg.TTS),
		ExerciseNotice: cfg.ExerciseNotice, AllClearText: cfg.AllClearText, CAP: cfg.CAP, Limits: cfg.HTTPLimits,
	}, c.store, ms, c.bc, log.With("part", "api"))
	sn, err := newSensors(cfg.Site, cfg.Triggers, handler, c.store, log.With("part", "sensors"))
	if err != nil {
		return c, err
	}
	if err := sn.restore(ctx); err != nil {
		return c, fmt.Errorf("restore sensor rules: %w", err)
	}
	sensorCtx, stopSensors := context.WithCancel(context.Background())
	c.stopSensors = stopSensors
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		sn.run(sensorCtx)
	}()
	c.sensors.Store(sn)
	c.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.httpSrv.Serve(c.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("controller ready", "site", cfg.Site, "http", c.httpLn.Addr().String(), "mqtt", c.BrokerAddr(),
		"broker", cfg.Broker, "data", cfg.Data, "timezone", cfg.Timezone)
	return c, nil
}

// HTTPAddr is where the API listens.
func (c *Controller) HTTPAddr() string { return c.httpLn.Addr().String() }

// BrokerAddr is where the embedded broker listens ("" with an external one).
func (c *Controller) BrokerAddr() string { return c.bc.BrokerAddr() }

// AdminToken is the staff token.
func (c *Controller) AdminToken() string { return c.adminToken }

// Close stops the HTTP server, the broadcaster and the store, in that order.
func (c *Controller) Close(ctx context.Context) error {
	var errs []error
	if c.httpSrv != nil {
		errs = append(errs, c.httpSrv.Shutdown(ctx))
	} else if c.httpLn != nil {
		errs = append(errs, c.httpLn.Close())
	}
	if c.stopSensors != nil {
		c.stopSensors()
	}
	c.wg.Wait()
	if c.bc != nil {
		errs = append(errs, c.bc.Close(ctx))
	}
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	return errors.Join(errs...)
}
