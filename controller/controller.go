package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/loa-commune/loa/backup"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/broadcaster"
	"github.com/loa-commune/loa/console"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/media"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/onair"
	"github.com/loa-commune/loa/pki"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/signing"
	"github.com/loa-commune/loa/store"
	"github.com/loa-commune/loa/tts"
)

// Controller is a running `loa serve`.
type Controller struct {
	cfg        Config
	log        *slog.Logger
	store      *store.Store
	bc         *broadcaster.Service
	httpSrv    *http.Server
	backup     *backup.Backup // nil without backup.dir
	httpLn     net.Listener
	adminToken string
	keys       *signing.Keys
	sensors    atomic.Pointer[sensors]
	onair      *onair.Manager
	// stopWork ends the background work: sensor rules, media conversion.
	stopWork context.CancelFunc
	wg       sync.WaitGroup
}

// Open validates cfg and starts everything. On error, whatever was started
// is stopped again.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (c *Controller, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(cfg.Timezone)
	tlsFiles, err := cfg.loadTLS()
	if err != nil {
		return nil, err
	}
	mqttTLS, clientTLS, err := brokerTLS(cfg, tlsFiles)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	if err := writeLocalCA(cfg.Data, tlsFiles); err != nil {
		return nil, err
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
	render := ingest.New(cfg.Media)
	if err := render.Check(ctx); err != nil {
		return c, messages.New(messages.NoFFmpeg, strings.TrimPrefix(err.Error(), ingest.ErrNoFFmpeg.Error()+": "))
	}
	ms, err := media.Open(filepath.Join(cfg.Data, "media"), media.Limits{MaxBytes: cfg.MaxMediaMB << 20}, render)
	if err != nil {
		return c, err
	}
	if c.httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
		return c, fmt.Errorf("listen for HTTP on %s: %w (is another loa serve running? use --http)", cfg.HTTP, err)
	}
	// Boxes fetch media from the public server URL; the broker address is
	// only known once the embedded broker listens, so start it first.
	c.bc = broadcaster.New(broadcaster.Options{
		Site: cfg.Site, Location: loc, Horizon: cfg.Horizon, OfflineFor: time.Duration(cfg.OfflineDays) * 24 * time.Hour, MQTTListen: cfg.MQTT,
		BrokerURLs: cfg.BrokerURLs(), BrokerUsername: cfg.BrokerUsername, BrokerPassword: cfg.BrokerPassword,
		MQTTTLS: mqttTLS, ClientTLS: clientTLS,
		HeartbeatSec: cfg.HeartbeatSec, AnswerSpreadMS: int(cfg.AnswerSpread.Milliseconds()), EmergencyVolume: cfg.EmergencyVolume, Keys: c.keys,
		OnTrigger: func(source string, payload []byte) {
			if sn := c.sensors.Load(); sn != nil { // nil until the API exists, a moment after connecting
				sn.handle(source, payload)
			}
		},
	}, c.store, log.With("part", "broadcaster"))
	serverURL, _ := cfg.publicURLs(c.httpLn.Addr().String(), cfg.MQTT)
	c.bc.SetMediaURL(serverURL)
	rollouts := rollout.New(c.store, c.bc.PublishConfigs, time.Now, log.With("part", "rollout"))
	c.bc.SetUpdateOffers(rollouts.Offers)
	if err = c.bc.Open(ctx); err != nil {
		return c, err
	}
	if err = c.bc.SetBrokerLimits(cfg.MQTTLimits); err != nil {
		return c, err
	}
	serverURL, brokerURL := cfg.publicURLs(c.httpLn.Addr().String(), c.bc.BrokerAddr())
	var caPEM string
	if tlsFiles != nil {
		caPEM = string(tlsFiles.caPEM)
	}
	c.onair, err = onair.New(onair.Options{Live: cfg.Live, Site: cfg.Site, Location: loc, Dir: filepath.Join(cfg.Data, "recordings"),
		Scheduler: c.bc.Scheduler()},
		c.store, c.bc, log.With("part", "live"))
	if err != nil {
		return c, err
	}
	collectors := []prometheus.Collector{c.bc.Collector(), c.onair.Collector()}
	if cfg.Backup.Dir != "" {
		c.backup = backup.New(cfg.Data, cfg.Backup, c.store, log.With("part", "backup"))
		collectors = append(collectors, c.backup.Collector())
	}
	handler := api.NewServer(api.Options{
		CAPEM: caPEM, ClientCertRequired: tlsFiles != nil && tlsFiles.clientCAs != nil,
		Site: cfg.Site, AdminToken: c.adminToken, BrokerURL: brokerURL, ServerURL: serverURL, Keys: c.keys,
		DefaultVolume: cfg.DefaultVolume, Validity: cfg.Validity,
		StaleAfter:        time.Duration(3*cfg.HeartbeatSec+10) * time.Second,
		EmergencyValidity: cfg.EmergencyValidity, Speech: tts.New(cfg.TTS),
		ExerciseNotice: cfg.ExerciseNotice, AllClearText: cfg.AllClearText, CAP: cfg.CAP, Limits: cfg.HTTPLimits,
		OnAir: c.onair, Collectors: collectors,
		Rollouts: rollouts, BuildsDir: filepath.Join(cfg.Data, "builds"),
	}, c.store, ms, c.bc, log.With("part", "api"))
	sn, err := newSensors(cfg.Site, cfg.Triggers, handler, c.store, log.With("part", "sensors"))
	if err != nil {
		return c, err
	}
	if err := sn.restore(ctx); err != nil {
		return c, fmt.Errorf("restore sensor rules: %w", err)
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	c.stopWork = stopWork
	c.wg.Add(3)
	go func() {
		defer c.wg.Done()
		sn.run(workCtx)
	}()
	go func() {
		defer c.wg.Done()
		rollouts.Run(workCtx, rolloutEvery)
	}()
	go func() {
		defer c.wg.Done()
		c.convertMedia(workCtx, ms)
	}()
	c.sensors.Store(sn)
	if c.backup != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.backup.Run(workCtx)
		}()
	}
	web, err := console.New(console.Options{API: handler, Secure: tlsFiles != nil, Tiles: cfg.Console.Tiles,
		SessionTTL: cfg.Console.SessionTTL, MaxUpload: (cfg.MaxMediaMB + 1) << 20}, log.With("part", "console"))
	if err != nil {
		return c, err
	}
	c.httpSrv = &http.Server{Handler: web.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveHTTP := func() error { return c.httpSrv.Serve(c.httpLn) }
	if tlsFiles != nil {
		c.httpSrv.TLSConfig = &tls.Config{MinVersion: pki.MinVersion, Certificates: []tls.Certificate{tlsFiles.cert}}
		serveHTTP = func() error { return c.httpSrv.ServeTLS(c.httpLn, "", "") }
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := serveHTTP(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("controller ready", "site", cfg.Site, "http", c.httpLn.Addr().String(), "mqtt", c.BrokerAddr(),
		"broker", cfg.Broker, "data", cfg.Data, "timezone", cfg.Timezone, "tls", tlsFiles != nil)
	return c, nil
}

// rolloutEvery is how often the rollout under way is looked at: a step
// moves on within a second of its last box's healthy report. With none
// under way a look is one indexed query; during one it reads the targets'
// states (a few ms for a commune, tens of ms at 10,000 boxes).
const rolloutEvery = time.Second

// brokerTLS is the embedded broker's TLS configuration and the one the
// controller's own client uses to reach the broker. The controller trusts
// exactly its own certificate on the loopback address, whatever names that
// certificate has; when boxes must show a client certificate, so must the
// controller: it makes one for itself at each start, known only to the
// broker it starts.
func brokerTLS(cfg Config, f *tlsFiles) (server, client *tls.Config, err error) {
	if f == nil {
		return nil, nil, nil
	}
	if cfg.Broker != "" { // an external broker: trust the commune's CA, or the system's
		return nil, &tls.Config{MinVersion: pki.MinVersion, RootCAs: f.caPool}, nil
	}
	server = &tls.Config{MinVersion: pki.MinVersion, Certificates: []tls.Certificate{f.cert}}
	if f.clientCAs == nil {
		return server, pki.Pinned(f.leaf), nil
	}
	own, ownCert, err := pki.EphemeralClient(auth.ControllerUser)
	if err != nil {
		return nil, nil, err
	}
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.ClientCAs = f.clientCAs.Clone()
	server.ClientCAs.AddCert(ownCert)
	return server, pki.Pinned(f.leaf, own), nil
}

// writeLocalCA puts the CA boxes trust into the data folder, where a CLI on
// this machine finds it (as it finds admin.token), or removes a stale one.
func writeLocalCA(data string, f *tlsFiles) error {
	path := filepath.Join(data, pki.DataCAFile)
	if f == nil || f.caPEM == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	if old, err := os.ReadFile(path); err == nil && string(old) == string(f.caPEM) {
		return nil
	}
	return atomicfile.Write(path, f.caPEM, 0o644)
}

// HTTPAddr is where the API listens.
func (c *Controller) HTTPAddr() string { return c.httpLn.Addr().String() }

// BrokerAddr is where the embedded broker listens ("" with an external one).
func (c *Controller) BrokerAddr() string { return c.bc.BrokerAddr() }

// AdminToken is the staff token.
func (c *Controller) AdminToken() string { return c.adminToken }

// Close stops the live sessions, the HTTP server, the broadcaster and the
// store, in that order.
func (c *Controller) Close(ctx context.Context) error {
	var errs []error
	if c.onair != nil {
		// Sessions end first, and record how, while the broker and the
		// store still run; a live speech's upload then ends, so the HTTP
		// server need not wait for it.
		errs = append(errs, c.onair.Close(ctx))
	}
	if c.httpSrv != nil {
		errs = append(errs, c.httpSrv.Shutdown(ctx))
	} else if c.httpLn != nil {
		errs = append(errs, c.httpLn.Close())
	}
	if c.stopWork != nil {
		c.stopWork()
	}
	c.wg.Wait()
	if c.bc != nil {
		errs = append(errs, c.bc.Close(ctx))
	}
	if c.backup != nil {
		// The last reports before a planned stop reach the second place.
		if _, err := c.backup.Once(ctx, false); err != nil {
			errs = append(errs, fmt.Errorf("last backup: %w", err))
		}
	}
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	return errors.Join(errs...)
}
