package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/auth"
)

// TestBrokerACLMosquitto runs a real mosquitto with only the files
// `loa broker config` writes, a real `loa serve --broker` with its broker
// credentials and a real loa-agent, and checks that mosquitto keeps every
// client to what the embedded broker's access hook allows.
//
// What mosquitto 2.0 does with a forbidden subscription from an MQTT 3.1.1
// client (paho, so every box): the SUBACK grants it (QoS 1) — its changelog
// says ACL checks on 3.1.1 subscriptions are off — and the ACL is applied to
// each message instead, so nothing on the topic is ever delivered. A
// forbidden publish is acknowledged (PUBACK) and dropped.
func TestBrokerACLMosquitto(t *testing.T) {
	bin := aclMosquittoBin(t)
	dir := t.TempDir()
	loa := cli{t: t, bin: filepath.Join(binDir, "loa")}
	password := auth.NewToken()
	genCfg := filepath.Join(dir, "broker-gen.yaml")
	if err := os.WriteFile(genCfg, []byte("site: e2e\nbroker_password: "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(dir, "mosquitto-loa")
	genArgs := func(data string) []string {
		return []string{"broker", "config", "--format", "mosquitto", "--config", genCfg, "--data", data, "--out", files}
	}

	// A fresh install: no controller database yet, only the controller user.
	out, errOut, code := loa.run(genArgs(filepath.Join(dir, "no-data-yet"))...)
	if code != 0 || !strings.Contains(out, "acl_file "+filepath.Join(files, "loa.acl")) ||
		!strings.Contains(out, "allow_anonymous false") || !strings.Contains(errOut, "no controller database") {
		t.Fatalf("first broker config: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	broker, mosq := startACLMosquitto(t, bin, dir, files)

	for _, tc := range []struct{ name, user, pass string }{
		{"anonymous", "", ""},
		{"controller with a wrong password", auth.ControllerUser, "not-" + password},
		{"unknown user", "box-x", password},
	} {
		if c, err := aclConnect(broker, "e2e-"+strings.ReplaceAll(tc.name, " ", "-"), tc.user, tc.pass); err == nil {
			c.close()
			t.Fatalf("%s connected", tc.name)
		} else if !strings.Contains(err.Error(), "not Authorized") {
			t.Fatalf("%s: connect error %v, want not Authorized", tc.name, err)
		}
	}

	c := newCommune(t, broker, "broker_username: "+auth.ControllerUser+"\nbroker_password: "+password+"\n")
	data := filepath.Join(c.dir, "data")
	cfgA, cfgB := c.addBox("box-a", "thon-1"), c.addBox("box-b", "thon-2")
	cfgGauge := filepath.Join(c.dir, "gauge.yaml")
	c.cli.ok("device", "add", "gauge", "--write-config", cfgGauge)
	tokB, tokGauge := agentToken(t, cfgB), agentToken(t, cfgGauge)

	// Boxes are unknown to mosquitto until the files are written again.
	if cl, err := aclConnect(broker, "e2e-early-b", "box-b", tokB); err == nil {
		cl.close()
		t.Fatal("box-b connected before `loa broker config` wrote it")
	}
	out = loa.ok(genArgs(data)...)
	if !strings.Contains(out, "and 3 boxes") {
		t.Fatalf("broker config after adding boxes:\n%s", out)
	}
	acl, _ := os.ReadFile(filepath.Join(files, "loa.acl"))
	if !strings.Contains(string(acl), "user box-b\n") || !strings.Contains(string(acl), "topic read loa/e2e/plan/group/thon-2\n") {
		t.Fatalf("ACL:\n%s", acl)
	}
	if out := loa.ok(genArgs(data)...); !strings.Contains(out, "Nothing changed") {
		t.Fatalf("a second run with nothing new:\n%s", out)
	}
	// A wrong --data must not shut every box out.
	if out, errOut, code := loa.run(genArgs(filepath.Join(dir, "typo"))...); code != 1 || !strings.Contains(errOut, "nothing was written") {
		t.Fatalf("broker config with a wrong --data: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if again, _ := os.ReadFile(filepath.Join(files, "loa.acl")); string(again) != string(acl) {
		t.Fatal("a run with a wrong --data changed the ACL")
	}
	reload := func() {
		t.Helper()
		if err := mosq.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload()

	// box-b, as a bare MQTT client with its own credentials.
	var boxB *aclClient
	eventually(t, 10*time.Second, "mosquitto to reload and admit box-b", func() bool {
		cl, err := aclConnect(broker, "e2e-box-b", "box-b", tokB)
		boxB = cl
		return err == nil
	})
	defer boxB.close()
	watcher, err := aclConnect(broker, "e2e-watcher", auth.ControllerUser, password)
	if err != nil {
		t.Fatalf("the controller's credentials: %v", err)
	}
	defer watcher.close()
	if granted := watcher.subscribe(t, "loa/e2e/#"); granted["loa/e2e/#"] != 1 {
		t.Fatalf("controller's subscription to loa/e2e/#: %v", granted)
	}

	own := []string{"loa/e2e/plan/all", "loa/e2e/plan/device/box-b", "loa/e2e/device/box-b/config", "loa/e2e/plan/group/thon-2"}
	forbidden := []string{"loa/e2e/plan/group/thon-1", "loa/e2e/plan/device/box-a", "loa/e2e/device/box-a/config", "loa/e2e/device/box-a/state", "loa/e2e/#"}
	granted := boxB.subscribe(t, append(append([]string{}, own...), forbidden...)...)
	for _, f := range forbidden {
		if granted[f] != 1 {
			t.Errorf("SUBACK for forbidden %s = %#x; mosquitto 2.0 grants it to MQTT 3.1.1 clients (and delivers nothing)", f, granted[f])
		}
	}
	// Its own retained plans and config arrive (the controller publishes a
	// plan for every box and group, if only an empty one).
	eventually(t, 10*time.Second, "box-b to read its own retained plans and config", func() bool {
		for _, topic := range own {
			if len(boxB.messages(topic)) == 0 {
				return false
			}
		}
		return true
	})

	// A real box plays an announcement through mosquitto.
	played := c.startBox("box-a", cfgA)
	c.waitOnline("box-a")
	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var ann struct {
		ID      string   `json:"id"`
		Devices []string `json:"devices"`
	}
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", "thon-1", "--wait", "--timeout", "60s")
	rep := c.report(ann.ID)
	if len(rep) != 1 || rep["box-a"].Status != "played" {
		t.Fatalf("report = %+v, want played on box-a", rep)
	}
	assertSamples(t, "box-a", readWAV(t, filepath.Join(played, rep["box-a"].Item+".wav")), expectedPCM(t, "testdata/short.mp3", 80))
	if !watcher.has("loa/e2e/plan/group/thon-1", ann.ID) {
		t.Fatal("the controller's own credentials did not see the thon-1 plan")
	}

	// The thon-1 plan went through mosquitto before box-a could play it:
	// box-b, subscribed all along, got none of what it may not read.
	for _, f := range forbidden {
		if f == "loa/e2e/#" {
			continue
		}
		if m := boxB.messages(f); len(m) != 0 {
			t.Errorf("box-b read %d messages on %s, the first: %.200s", len(m), f, m[0])
		}
	}
	for topic := range boxB.topics() {
		if !slices.Contains(own, topic) {
			t.Errorf("box-b received a message on %s", topic)
		}
	}

	// Publishing: box-b and the gauge send what they must not, then what
	// they may; once the allowed marker reaches the controller's
	// credentials, the forbidden ones would have too.
	gauge, err := aclConnect(broker, "e2e-gauge", "gauge", tokGauge)
	if err != nil {
		t.Fatalf("the gauge: %v", err)
	}
	defer gauge.close()
	publishes := []struct {
		cl      *aclClient
		topic   string
		allowed bool
	}{
		{boxB, "loa/e2e/plan/all", false},
		{boxB, "loa/e2e/plan/group/thon-1", false},
		{boxB, "loa/e2e/plan/device/box-a", false},
		{boxB, "loa/e2e/device/box-a/state", false},
		{boxB, "loa/e2e/device/box-a/events", false},
		{boxB, "loa/e2e/device/box-b/config", false},
		{boxB, "loa/e2e/device/box-b/time/resp", false},
		{boxB, "loa/e2e/trigger/gauge", false},
		{gauge, "loa/e2e/trigger/river", false},
		{gauge, "loa/e2e/plan/all", false},
		{boxB, "loa/e2e/device/box-b/events", true},
		{boxB, "loa/e2e/device/box-b/time/req", true},
		{gauge, "loa/e2e/trigger/gauge", true},
		{boxB, "loa/e2e/device/box-b/state", true},
	}
	for _, p := range publishes {
		p.cl.publish(t, p.topic, marker(p.cl.user, p.topic))
	}
	for _, p := range publishes {
		if p.allowed {
			eventually(t, 10*time.Second, p.cl.user+"'s allowed publish on "+p.topic, func() bool { return watcher.has(p.topic, marker(p.cl.user, p.topic)) })
		}
	}
	for _, p := range publishes {
		if !p.allowed && watcher.has(p.topic, marker(p.cl.user, p.topic)) {
			t.Errorf("%s's forbidden publish on %s was delivered", p.cl.user, p.topic)
		}
	}

	// Group change: box-b joins thon-1. It reads that plan only once the
	// files are written again and mosquitto reloaded.
	c.cli.ok("group", "add", "thon-1", "box-b")
	if m := boxB.messages("loa/e2e/plan/group/thon-1"); len(m) != 0 {
		t.Fatalf("box-b read thon-1's plan before the files were written again: %.200s", m[0])
	}
	if out := loa.ok(genArgs(data)...); !strings.Contains(out, "Wrote") {
		t.Fatalf("broker config after a group change:\n%s", out)
	}
	reload()
	eventually(t, 10*time.Second, "box-b to read thon-1's retained plan after the reload", func() bool {
		boxB.subscribe(t, "loa/e2e/plan/group/thon-1") // subscribing again delivers the retained plan
		time.Sleep(100 * time.Millisecond)
		return boxB.has("loa/e2e/plan/group/thon-1", ann.ID)
	})
}

func aclMosquittoBin(t testing.TB) string {
	t.Helper()
	if bin, err := exec.LookPath("mosquitto"); err == nil {
		return bin
	}
	if fileExists("/usr/sbin/mosquitto") {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto is not installed: apt-get install mosquitto")
	}
	t.Skip("mosquitto is not installed: apt-get install mosquitto")
	return ""
}

// startACLMosquitto runs mosquitto on a free loopback port with a
// mosquitto.conf that has only a listener and includes the generated folder
// (as Debian's include_dir /etc/mosquitto/conf.d does), so the generated
// loa.conf is what secures it.
func startACLMosquitto(t testing.TB, bin, dir, files string) (string, *exec.Cmd) {
	t.Helper()
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	body := fmt.Sprintf("listener %s 127.0.0.1\npersistence false\nlog_type all\ninclude_dir %s\n", port, files)
	if os.Getuid() == 0 {
		body += "user root\n"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := proc(t, dir, "mosquitto", bin, "-c", conf)
	eventually(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return "tcp://" + addr, cmd
}

// agentToken reads the token from an agent config `loa device add` wrote.
func agentToken(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if tok, ok := strings.CutPrefix(sc.Text(), "token: "); ok {
			return strings.TrimSpace(tok)
		}
	}
	t.Fatalf("no token in %s", path)
	return ""
}

// aclClient is a bare MQTT 3.1.1 client that records what it receives.
type aclClient struct {
	c    paho.Client
	user string
	mu   sync.Mutex
	got  map[string][]string
}

func marker(user, topic string) string { return "acl-marker from " + user + " on " + topic }

func aclConnect(broker, clientID, user, pass string) (*aclClient, error) {
	a := &aclClient{user: user, got: map[string][]string{}}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(a.record)
	a.c = paho.NewClient(o)
	tok := a.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect as %q: no answer", user)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *aclClient) record(_ paho.Client, m paho.Message) {
	a.mu.Lock()
	a.got[m.Topic()] = append(a.got[m.Topic()], string(m.Payload()))
	a.mu.Unlock()
}

// subscribe subscribes to filters in one SUBSCRIBE and returns the SUBACK
// codes.
func (a *aclClient) subscribe(t testing.TB, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := a.c.SubscribeMultiple(m, a.record)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()
}

func (a *aclClient) publish(t testing.TB, topic, payload string) {
	t.Helper()
	tok := a.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: %v (mosquitto acknowledges even what its ACL drops)", topic, tok.Error())
	}
}

func (a *aclClient) messages(topic string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got[topic]...)
}

// has reports whether a message on topic contains s.
func (a *aclClient) has(topic, s string) bool {
	for _, m := range a.messages(topic) {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func (a *aclClient) topics() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]bool{}
	for k := range a.got {
		out[k] = true
	}
	return out
}

func (a *aclClient) close() {
	if a != nil && a.c != nil {
		a.c.Disconnect(100)
	}
}
