package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"
)

// tlsCommune is a commune whose controller serves HTTPS and MQTT over TLS
// with the certificates `loa pki init` made.
type tlsCommune struct {
	*commune
	pki        string // the folder loa pki init wrote
	httpAddr   string
	mqttAddr   string
	roots      *x509.CertPool
	otherCA    string // a CA file that signed nothing here
	otherRoots *x509.CertPool
}

// newTLSCommune runs `loa pki init` and `loa serve` with its certificates;
// with clientCerts boxes must show one; broker, when not nil, starts an
// external broker with the certificates in pkiDir and returns its URL.
func newTLSCommune(t *testing.T, clientCerts bool, broker func(pkiDir string) string) *tlsCommune {
	t.Helper()
	dir := t.TempDir()
	loa := cli{t: t, bin: filepath.Join(binDir, "loa"), env: []string{"LOA_SERVER=", "LOA_CA=", "LOA_PKI="}}
	pkiDir := filepath.Join(dir, "pki")
	out := loa.ok("pki", "init", "--dir", pkiDir, "--host", "127.0.0.1", "--host", "loa.e2e.test", "--name", "E2E CA")
	for _, want := range []string{"tls_cert: " + filepath.Join(pkiDir, "server.crt"), "tls_key: " + filepath.Join(pkiDir, "server.key"), "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("loa pki init output lacks %q:\n%s", want, out)
		}
	}
	for _, key := range []string{"ca.key", "server.key"} {
		if fi, err := os.Stat(filepath.Join(pkiDir, key)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", key, fi, err)
		}
	}
	if _, errOut, code := loa.run("pki", "init", "--dir", pkiDir, "--host", "127.0.0.1"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("loa pki init over existing files: exit %d, %s", code, errOut)
	}
	otherDir := filepath.Join(dir, "other-pki")
	loa.ok("pki", "init", "--dir", otherDir, "--host", "127.0.0.1")

	c := &tlsCommune{pki: pkiDir, httpAddr: freePort(t), mqttAddr: freePort(t), otherCA: filepath.Join(otherDir, "ca.crt")}
	c.roots, c.otherRoots = certPool(t, filepath.Join(pkiDir, "ca.crt")), certPool(t, c.otherCA)
	config := fmt.Sprintf("site: e2e\ntls_cert: %s\ntls_key: %s\n", filepath.Join(pkiDir, "server.crt"), filepath.Join(pkiDir, "server.key"))
	if clientCerts {
		config += "tls_client_ca: " + filepath.Join(pkiDir, "ca.crt") + "\n"
	}
	cfg := filepath.Join(dir, "loa.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"loa", "serve", "--config", cfg, "--data", data, "--http", c.httpAddr, "--mqtt", c.mqttAddr}
	if broker != nil {
		args = append(args, "--broker", broker(pkiDir))
	}
	proc(t, dir, "controller", args...)
	server := "https://" + c.httpAddr
	eventually(t, 20*time.Second, "the controller at "+server, func() bool {
		resp, err := httpsClient(c.roots).Get(server + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// No LOA_CA: the CLI finds the CA where the controller put it, in its data folder.
	c.commune = &commune{t: t, dir: dir, cli: cli{t: t, bin: filepath.Join(binDir, "loa"),
		env: []string{"LOA_SERVER=" + server, "LOA_DATA=" + data, "LOA_TOKEN=", "LOA_CA="}}}
	return c
}

func certPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", path)
	}
	return pool
}

func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

// boxToken reads the token from an agent config.
func boxToken(t *testing.T, path string) string {
	t.Helper()
	var cfg struct {
		Token string `yaml:"token"`
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = yaml.Unmarshal(b, &cfg)
	}
	if err != nil || cfg.Token == "" {
		t.Fatalf("agent config %s: %v", path, err)
	}
	return cfg.Token
}

// mqttConnect tries one MQTT connection as user.
func mqttConnect(url, user, pass string, tc *tls.Config) error {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("probe-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("no answer in 10 s")
	}
	if tok.Error() == nil {
		c.Disconnect(100)
	}
	return tok.Error()
}

// announceAndCheck plays the test recording on group and checks that every
// box in ids played it, bytes and all.
func (c *tlsCommune) announceAndCheck(group string, played map[string]string) {
	t := c.t
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var ann struct{ ID string }
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", group, "--wait", "--timeout", "60s")
	rep := c.report(ann.ID)
	want := expectedPCM(t, "testdata/short.mp3", 80)
	for id, dir := range played {
		if rep[id].Status != "played" {
			t.Fatalf("report for %s: %+v", id, rep[id])
		}
		assertSamples(t, id, readWAV(t, filepath.Join(dir, rep[id].Item+".wav")), want)
	}
}

// TestTLSAnnounce: boxes configured by `loa device add --write-config` reach
// a controller that speaks only TLS (ssl:// and https://, the CA in their
// config), also one whose clock says 1970, and play an announcement; clients
// without the commune's CA are refused on both ports.
func TestTLSAnnounce(t *testing.T) {
	c := newTLSCommune(t, false, nil)
	cfg1, cfg2 := c.addBox("box-1", "thon-1"), c.addBox("box-2", "thon-1")
	b, _ := os.ReadFile(cfg1)
	for _, want := range []string{"broker: ssl://127.0.0.1:", "server: https://127.0.0.1:", "ca_pem: |\n  -----BEGIN CERTIFICATE-----"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("agent config lacks %q:\n%s", want, b)
		}
	}
	played := map[string]string{"box-1": c.startBox("box-1", cfg1)}
	played["box-2"] = filepath.Join(c.dir, "box-2", "played")
	behind := time.Since(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))
	proc(t, c.dir, "box-2", "loa-agent", "--config", cfg2, "--cache", filepath.Join(c.dir, "box-2", "cache"),
		"--output", "wav:"+played["box-2"], "--clock-skew", (-behind).String())
	c.waitOnline("box-1", "box-2")
	eventually(t, 30*time.Second, "box-2 to measure its clock", func() bool {
		st := c.status()["box-2"]
		return st.ClockOffsetMS != nil && st.State == "idle"
	})
	c.announceAndCheck("thon-1", played)

	t.Run("CLI", func(t *testing.T) {
		wrongCA := cli{t: t, bin: c.cli.bin, env: append(append([]string{}, c.cli.env...), "LOA_CA="+c.otherCA)}
		if _, errOut, code := wrongCA.run("status"); code == 0 || !strings.Contains(errOut, "--ca") || !strings.Contains(errOut, "does not trust") {
			t.Errorf("loa status with another CA: exit %d, stderr %s", code, errOut)
		}
		plain := cli{t: t, bin: c.cli.bin, env: append(append([]string{}, c.cli.env...), "LOA_SERVER=http://"+c.httpAddr)}
		if _, errOut, code := plain.run("status"); code == 0 || !strings.Contains(errOut, "https://"+c.httpAddr) {
			t.Errorf("loa status over plain HTTP: exit %d, stderr %s", code, errOut)
		}
	})

	t.Run("HTTP", func(t *testing.T) {
		for name, roots := range map[string]*x509.CertPool{"no CA": nil, "another CA": c.otherRoots} {
			_, err := httpsClient(roots).Get("https://" + c.httpAddr + "/healthz")
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("HTTPS with %s: %v, want a certificate verification error", name, err)
			}
		}
	})

	t.Run("MQTT", func(t *testing.T) {
		token := boxToken(t, cfg1)
		for name, tc := range map[string]*tls.Config{"no CA": {}, "another CA": {RootCAs: c.otherRoots}} {
			err := mqttConnect("ssl://"+c.mqttAddr, "box-1", token, tc)
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("MQTT with %s: %v, want a certificate verification error", name, err)
			}
		}
		if err := mqttConnect("tcp://"+c.mqttAddr, "box-1", token, nil); err == nil {
			t.Error("plain MQTT connected to the TLS broker")
		}
	})
}

// TestTLSClientCertificates: with tls_client_ca the broker lets in a box
// with the certificate `loa pki box` made, and not one without.
func TestTLSClientCertificates(t *testing.T) {
	c := newTLSCommune(t, true, nil)
	loa := cli{t: t, bin: c.cli.bin, env: []string{"LOA_PKI=" + c.pki}}
	out := loa.ok("pki", "box", "box-1")
	if !strings.Contains(out, "cert_file: /etc/loa-agent/box-box-1.crt") {
		t.Fatalf("loa pki box output:\n%s", out)
	}
	cfg := c.addBox("box-1", "thon-1")
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "loa pki box box-1") {
		t.Fatalf("agent config does not say a client certificate is needed:\n%s", b)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "cert_file: %s\nkey_file: %s\n", filepath.Join(c.pki, "box-box-1.crt"), filepath.Join(c.pki, "box-box-1.key"))
	f.Close()
	played := map[string]string{"box-1": c.startBox("box-1", cfg)}
	c.waitOnline("box-1")
	c.announceAndCheck("thon-1", played)

	if err := mqttConnect("ssl://"+c.mqttAddr, "box-1", boxToken(t, cfg), &tls.Config{RootCAs: c.roots}); err == nil {
		t.Error("a box without a client certificate was let in")
	}
}

// TestTLSMosquitto: the controller and the boxes reach Debian's mosquitto
// over TLS with the commune's CA (`loa serve --broker ssl://...`).
func TestTLSMosquitto(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto is not installed: apt-get install mosquitto")
		}
		t.Skip("mosquitto is not installed: apt-get install mosquitto")
	}
	var url string
	c := newTLSCommune(t, false, func(pkiDir string) string {
		dir := t.TempDir()
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\ncafile %s\ncertfile %s\nkeyfile %s\n",
			port, filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "server.crt"), filepath.Join(pkiDir, "server.key"))
		if os.Getuid() == 0 {
			conf += "user root\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		proc(t, dir, "mosquitto", bin, "-c", filepath.Join(dir, "mosquitto.conf"))
		url = "ssl://" + addr
		eventually(t, 10*time.Second, "mosquitto to listen", func() bool {
			return mqttConnect(url, "probe", "", &tls.Config{RootCAs: certPool(t, filepath.Join(pkiDir, "ca.crt"))}) == nil
		})
		return url
	})
	cfg := c.addBox("box-1", "thon-1")
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "broker: "+url+"\n") || !strings.Contains(string(b), "ca_pem: |") {
		t.Fatalf("agent config does not name the broker %s with the CA:\n%s", url, b)
	}
	played := map[string]string{"box-1": c.startBox("box-1", cfg)}
	c.waitOnline("box-1")
	c.announceAndCheck("thon-1", played)
}
