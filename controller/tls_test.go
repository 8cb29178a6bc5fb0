package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/pki"
)

// commonPKI is a CA with a server certificate for 127.0.0.1 and a box's
// client certificate, and a second CA that signed nothing here.
type commonPKI struct {
	dir, other string
	ca         *x509.Certificate
	box        pki.Issued
}

func newPKI(t *testing.T) commonPKI {
	t.Helper()
	p := commonPKI{dir: t.TempDir(), other: t.TempDir()}
	ca, _, err := pki.Init(pki.Options{Dir: p.dir}, "", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	p.ca = ca.Cert
	if p.box, err = pki.IssueBox(pki.Options{Dir: p.dir}, "loa-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.Init(pki.Options{Dir: p.other}, "", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p commonPKI) file(name string) string { return filepath.Join(p.dir, name) }

func TestValidateTLS(t *testing.T) {
	p := newPKI(t)
	other := filepath.Join(p.other, pki.CACertFile)
	withTLS := func(c *controller.Config) {
		c.TLSCert, c.TLSKey = p.file(pki.ServerCertFile), p.file(pki.ServerKeyFile)
	}
	tests := []struct {
		name  string
		edit  func(c *controller.Config)
		field string // "" means valid
	}{
		{"server certificate", withTLS, ""},
		{"explicit CA", func(c *controller.Config) { withTLS(c); c.TLSCA = p.file(pki.CACertFile) }, ""},
		{"client CA", func(c *controller.Config) { withTLS(c); c.TLSClientCA = p.file(pki.CACertFile) }, ""},
		{"https public URLs", func(c *controller.Config) {
			withTLS(c)
			c.PublicServerURL, c.PublicBrokerURL = "https://loa.example:8080", "ssl://loa.example:1883"
		}, ""},
		{"external plain broker", func(c *controller.Config) { withTLS(c); c.Broker = "tcp://10.0.0.5:1883" }, ""},
		{"cert without key", func(c *controller.Config) { c.TLSCert = p.file(pki.ServerCertFile) }, "tls_key"},
		{"key without cert", func(c *controller.Config) { c.TLSKey = p.file(pki.ServerKeyFile) }, "tls_cert"},
		{"key of another certificate", func(c *controller.Config) { withTLS(c); c.TLSKey = p.file(pki.CAKeyFile) }, "tls_cert"},
		{"missing cert", func(c *controller.Config) { withTLS(c); c.TLSCert = p.file("nope.crt") }, "tls_cert"},
		{"CA without cert", func(c *controller.Config) { c.TLSCA = p.file(pki.CACertFile) }, "tls_ca"},
		{"client CA without cert", func(c *controller.Config) { c.TLSClientCA = p.file(pki.CACertFile) }, "tls_client_ca"},
		{"CA that did not sign it", func(c *controller.Config) { withTLS(c); c.TLSCA = other }, "tls_ca"},
		{"CA not PEM", func(c *controller.Config) { withTLS(c); c.TLSCA = p.file(pki.CAKeyFile) }, "tls_ca"},
		{"client CA with external broker", func(c *controller.Config) {
			withTLS(c)
			c.Broker, c.TLSClientCA = "ssl://10.0.0.5:8883", p.file(pki.CACertFile)
		}, "tls_client_ca"},
		{"plain public server URL", func(c *controller.Config) { withTLS(c); c.PublicServerURL = "http://loa.example:8080" }, "public_server_url"},
		{"plain public broker URL", func(c *controller.Config) { withTLS(c); c.PublicBrokerURL = "tcp://loa.example:1883" }, "public_broker_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := controller.Defaults()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *controller.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate = %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
}

func TestLoadTLSFromFileAndEnv(t *testing.T) {
	p := newPKI(t)
	c := controller.Defaults()
	if err := c.LoadFile(writeFile(t, "tls_cert: "+p.file(pki.ServerCertFile)+"\ntls_key: "+p.file(pki.ServerKeyFile)+"\n")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOA_TLS_CLIENT_CA", p.file(pki.CACertFile))
	c.LoadEnv()
	if c.TLSCert != p.file(pki.ServerCertFile) || c.TLSClientCA != p.file(pki.CACertFile) {
		t.Fatalf("config %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

func mqttConnect(url, user, pass string, tc *tls.Config) error {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(user).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("no answer")
	}
	if tok.Error() == nil {
		c.Disconnect(100)
	}
	return tok.Error()
}

// TestOpenWithTLS: the API serves HTTPS and the broker MQTT over TLS with
// the commune's certificate; agent configs point boxes at both and carry the
// CA; the broker lets in only boxes with a client certificate; a CLI on the
// machine finds the CA in the data folder.
func TestOpenWithTLS(t *testing.T) {
	ctx := context.Background()
	p := newPKI(t)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA = p.file(pki.ServerCertFile), p.file(pki.ServerKeyFile), p.file(pki.CACertFile)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := controller.Open(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	caPEM, err := os.ReadFile(filepath.Join(dir, pki.DataCAFile))
	if err != nil || string(caPEM) != string(pki.EncodeCerts(p.ca)) {
		t.Fatalf("data/ca.crt: %v\n%s", err, caPEM)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	client := api.NewClient("https://"+c.HTTPAddr(), c.AdminToken())
	client.SetTLSConfig(&tls.Config{RootCAs: roots})
	box, err := client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-1", Groups: []string{"thon-1"}})
	if err != nil {
		t.Fatalf("device add over HTTPS: %v", err)
	}
	var agentCfg struct {
		Broker string `yaml:"broker"`
		Server string `yaml:"server"`
		CAPEM  string `yaml:"ca_pem"`
	}
	if err := yaml.Unmarshal([]byte(box.AgentConfig), &agentCfg); err != nil {
		t.Fatalf("agent config: %v\n%s", err, box.AgentConfig)
	}
	if agentCfg.Broker != "ssl://127.0.0.1:"+port(c.BrokerAddr()) || agentCfg.Server != "https://127.0.0.1:"+port(c.HTTPAddr()) ||
		agentCfg.CAPEM != string(caPEM) || !strings.Contains(box.AgentConfig, "loa pki box loa-1") {
		t.Fatalf("agent config does not reach this controller over TLS:\n%s", box.AgentConfig)
	}

	t.Run("HTTP", func(t *testing.T) {
		if resp, err := httpsClient(roots).Get("https://" + c.HTTPAddr() + "/healthz"); err != nil {
			t.Fatalf("with the CA: %v", err)
		} else {
			resp.Body.Close()
		}
		otherPEM, _ := os.ReadFile(filepath.Join(p.other, pki.CACertFile))
		otherRoots, _ := pki.PoolFromPEM(otherPEM)
		for name, roots := range map[string]*x509.CertPool{"system roots": nil, "another CA": otherRoots} {
			_, err := httpsClient(roots).Get("https://" + c.HTTPAddr() + "/healthz")
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("%s: %v, want a certificate verification error", name, err)
			}
		}
		if resp, err := http.Get("http://" + c.HTTPAddr() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("plain HTTP is served")
			}
		}
	})

	t.Run("MQTT", func(t *testing.T) {
		boxCert, err := tls.LoadX509KeyPair(p.box.CertFile, p.box.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		url := "ssl://127.0.0.1:" + port(c.BrokerAddr())
		if err := mqttConnect(url, "loa-1", box.Token, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{boxCert}}); err != nil {
			t.Fatalf("the box with its certificate: %v", err)
		}
		if err := mqttConnect(url, "loa-1", box.Token, &tls.Config{RootCAs: roots}); err == nil {
			t.Error("a box without a client certificate was let in")
		}
		if err := mqttConnect(url, "loa-1", box.Token, &tls.Config{Certificates: []tls.Certificate{boxCert}}); err == nil {
			t.Error("a client that does not trust the CA connected")
		}
		if err := mqttConnect("tcp://127.0.0.1:"+port(c.BrokerAddr()), "loa-1", box.Token, nil); err == nil {
			t.Error("plain MQTT is served")
		}
	})

	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c, err = controller.Open(ctx, testConfig(dir), log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pki.DataCAFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data/ca.crt left after restarting without TLS: %v", err)
	}
}
