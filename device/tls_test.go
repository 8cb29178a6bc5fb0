package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/pki"
	"github.com/loa-commune/loa/protocol"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate for the test box, as `loa pki` writes them.
type testPKI struct {
	dir          string
	ca           *x509.Certificate
	server       tls.Certificate
	boxCert      string
	boxKey       string
	caPEM        string
	otherCAPEM   string // a CA that signed nothing here
	serverCAFile string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, srv, err := pki.Init(pki.Options{Dir: dir}, "", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	box, err := pki.IssueBox(pki.Options{Dir: dir}, testID)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	otherCA, _, err := pki.Init(pki.Options{Dir: other}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{dir: dir, ca: ca.Cert, server: cert, boxCert: box.CertFile, boxKey: box.KeyFile,
		caPEM: string(pki.EncodeCerts(ca.Cert)), otherCAPEM: string(pki.EncodeCerts(otherCA.Cert)),
		serverCAFile: ca.CertFile}
}

func TestConfigValidateTLS(t *testing.T) {
	p := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.crt")
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mut   func(*Config)
		field string // "" means valid
	}{
		{"no TLS settings", func(*Config) {}, ""},
		{"ca_pem", func(c *Config) { c.CAPEM = p.caPEM }, ""},
		{"ca_file", func(c *Config) { c.CAFile = p.serverCAFile }, ""},
		{"client certificate", func(c *Config) { c.CAPEM, c.CertFile, c.KeyFile = p.caPEM, p.boxCert, p.boxKey }, ""},
		{"ca_file and ca_pem", func(c *Config) { c.CAFile, c.CAPEM = p.serverCAFile, p.caPEM }, "ca_file"},
		{"ca_pem not PEM", func(c *Config) { c.CAPEM = "MIIB..." }, "ca_pem"},
		{"ca_file missing", func(c *Config) { c.CAFile = missing }, "ca_file"},
		{"ca_file not PEM", func(c *Config) { c.CAFile = garbage }, "ca_file"},
		{"cert_file without key_file", func(c *Config) { c.CertFile = p.boxCert }, "key_file"},
		{"key_file without cert_file", func(c *Config) { c.KeyFile = p.boxKey }, "cert_file"},
		{"key of another certificate", func(c *Config) {
			c.CertFile, c.KeyFile = p.boxCert, filepath.Join(p.dir, pki.ServerKeyFile)
		}, "cert_file"},
		{"cert_file missing", func(c *Config) { c.CertFile, c.KeyFile = missing, p.boxKey }, "cert_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mut(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a FieldError for %s", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Fatalf("message %q does not start with the field", err)
			}
		})
	}
}

func TestLoadConfigTLSKeys(t *testing.T) {
	p := newTestPKI(t)
	body := "id: box-01\nsite: xa-an-binh\nbroker: ssl://127.0.0.1:8883\nserver: https://127.0.0.1:8443\ntoken: t\n" +
		"controller_keys: [" + testKeys[0] + "]\ncache: " + t.TempDir() + "\n" +
		"cert_file: " + p.boxCert + "\nkey_file: " + p.boxKey + "\nca_pem: |\n  " +
		strings.ReplaceAll(strings.TrimSpace(p.caPEM), "\n", "\n  ") + "\n"
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CAPEM != p.caPEM || c.CertFile != p.boxCert || c.KeyFile != p.boxKey {
		t.Fatalf("TLS settings not read: %+v", c)
	}
}

// startTLSBroker runs mochi with a plain listener for the test controller
// and a TLS one that wants a client certificate from the CA, for the box.
func startTLSBroker(t *testing.T, p testPKI) (plain, secure string) {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	lp := mochistop.NewListener("tcp", "127.0.0.1:0", nil)
	ls := mochistop.NewListener("tls", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	for _, l := range []*mochistop.Listener{lp, ls} {
		if err := s.AddListener(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBroker(s) })
	return "tcp://" + lp.Address(), "ssl://" + ls.Address()
}

// TestAgentOverTLSWithClockIn1970: a box with a client certificate reaches
// a TLS broker that requires one while its clock says 1970 (certificates are
// checked at its earliest plausible time), and fetches media over HTTPS once
// its clock is right.
func TestAgentOverTLSWithClockIn1970(t *testing.T) {
	p := newTestPKI(t)
	plain, secure := startTLSBroker(t, p)
	ms := newMediaServer(t) // its handler, served over TLS below
	srv := httptest.NewUnstartedServer(ms.Config.Handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	ctl := newController(t, plain)
	ctl.config(t0, protocol.DeviceConfig{Groups: []string{}, Volume: 60, EmergencyVolume: 90})
	m := makeMedia(t, 440, 500*time.Millisecond)
	ms.add(m)
	it := item("news-tls", t0.Add(time.Minute), 5*time.Minute, m)
	ctl.plan("all", t0, it)

	cache := t.TempDir()
	sink, err := audio.NewWAVSink(filepath.Join(cache, "out"), audio.DefaultFormat, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ID, cfg.Site, cfg.Broker, cfg.Server, cfg.Token, cfg.Cache = testID, testSite, secure, srv.URL, testToken, cache
	cfg.ControllerKeys = testKeys
	cfg.CAPEM, cfg.CertFile, cfg.KeyFile = p.caPEM, p.boxCert, p.boxKey
	clock := newFakeClock(time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC))
	a, err := New(cfg, sink, slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})), clock)
	if err != nil {
		t.Fatal(err)
	}
	a.thermalPath = filepath.Join(cache, "no-thermal")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), waitFor)
		defer ccancel()
		a.Close(cctx)
		cancel()
		<-done
	})

	ctl.waitState(protocol.StateWaitingForTime) // reached the broker over TLS in 1970
	clock.Set(t0)
	ctl.waitEvent(it.ID, protocol.EventReady) // fetched the media over HTTPS
	clock.Advance(time.Minute)
	ctl.waitEvent(it.ID, protocol.EventPlayed)
	if _, err := os.Stat(sink.Path(it.ID)); err != nil {
		t.Fatalf("no recording of the item: %v", err)
	}
	if ms.hits.Load() == 0 || ms.denied.Load() != 0 {
		t.Fatalf("media requests: %d, denied %d", ms.hits.Load(), ms.denied.Load())
	}
}

// TestTLSTime: certificates are checked at the measured time, or at the
// earliest plausible one while the clock is wrong.
func TestTLSTime(t *testing.T) {
	clock := newFakeClock(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC))
	a := &Agent{cfg: validConfig(), clock: &syncedClock{base: clock}}
	if got := a.tlsTime(); !got.Equal(a.cfg.minValidTime()) || got.Before(pki.NotBefore) {
		t.Fatalf("tlsTime in 1970 = %v, want %v (not before %v)", got, a.cfg.minValidTime(), pki.NotBefore)
	}
	clock.Set(t0)
	if got := a.tlsTime(); !got.Equal(t0) {
		t.Fatalf("tlsTime = %v, want %v", got, t0)
	}
}

// TestAgentTLSRefusesOtherCA: the box's TLS settings trust only its CA.
func TestAgentTLSRefusesOtherCA(t *testing.T) {
	p := newTestPKI(t)
	_, secure := startTLSBroker(t, p)
	addr := strings.TrimPrefix(secure, "ssl://")
	for _, tc := range []struct {
		name, ca string
		ok       bool
	}{{"other CA", p.otherCAPEM, false}, {"system roots", "", false}, {"its CA", p.caPEM, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.CAPEM, cfg.CertFile, cfg.KeyFile = tc.ca, p.boxCert, p.boxKey
			conf, err := cfg.tlsConfig(nil)
			if err != nil {
				t.Fatal(err)
			}
			conf.ServerName = "127.0.0.1"
			conn, err := tls.Dial("tcp", addr, conf)
			if conn != nil {
				conn.Close()
			}
			var verr *tls.CertificateVerificationError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("handshake with its CA: %v", err)
			case !tc.ok && !errors.As(err, &verr):
				t.Fatalf("handshake = %v, want a certificate verification error", err)
			}
		})
	}
}
