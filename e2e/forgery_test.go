package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/protocol"
)

// TestForgedAndReplayedPlansAreRejected is the attacker who controls the
// broker (here: an anonymous mosquitto) but not the controller's key. He
// captures a genuine plan, waits for it to be cancelled and replays it; and
// he publishes plans of his own, unsigned and signed with his own key. No
// box plays anything he sent, the cancelled item stays cancelled, and every
// box reports the rejections, which the controller writes to its audit log.
func TestForgedAndReplayedPlansAreRejected(t *testing.T) {
	broker := startMosquitto(t, t.TempDir())
	c := newCommune(t, broker, "")
	played := map[string]string{}
	for _, id := range []string{"box-1", "box-2"} {
		played[id] = c.startBox(id, c.addBox(id, "thon-1"))
	}
	c.waitOnline("box-1", "box-2")
	const site = "e2e"
	topics := protocol.NewTopics(site)

	// The attacker listens to the village's plan.
	var mu sync.Mutex
	var captured [][]byte
	attacker := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("attacker"))
	if tok := attacker.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("attacker connect:", tok.Error())
	}
	defer attacker.Disconnect(100)
	attacker.Subscribe(topics.PlanGroup("thon-1"), 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		captured = append(captured, bytes.Clone(m.Payload()))
		mu.Unlock()
	}).Wait()

	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	start := time.Now().Add(10 * time.Second).UTC().Truncate(time.Second)
	var a struct{ ID string }
	c.cli.json(&a, "announce", "--media", media.ID, "--group", "thon-1", "--at", start.Format("2006-01-02T15:04:05Z"))
	var genuine []byte
	eventually(t, 10*time.Second, "the attacker to capture the plan with the announcement", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range captured {
			if bytes.Contains(p, []byte(a.ID)) {
				genuine = p
				return true
			}
		}
		return false
	})

	// Both boxes hold it (a box that got the newer plan first would never
	// have known it).
	eventually(t, 10*time.Second, "both boxes to have the announcement", func() bool {
		r := c.report(a.ID)
		return r["box-1"].Status == "ready" && r["box-2"].Status == "ready"
	})
	// The announcement is cancelled; the boxes get a newer plan without it.
	c.api(t, http.MethodDelete, "/v1/announcements/"+a.ID)
	eventually(t, 10*time.Second, "the cancellation to reach the boxes", func() bool {
		r := c.report(a.ID)
		return r["box-1"].Status == "cancelled" && r["box-2"].Status == "cancelled"
	})

	pub := func(topic string, payload []byte, retained bool) {
		if tok := attacker.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal("attacker publish:", tok.Error())
		}
	}
	// Replay the captured genuine plan, live and retained.
	pub(topics.PlanGroup("thon-1"), genuine, false)
	pub(topics.PlanGroup("thon-1"), genuine, true)

	// Plans of his own: an "emergency" for everyone, unsigned and signed
	// with a key of his.
	now := time.Now().UTC()
	evil := protocol.Plan{Target: "all", Generated: now.Add(time.Hour), Items: []protocol.PlanItem{{
		ID: "evil-" + "1", Start: now, Expires: now.Add(time.Hour), Priority: protocol.Emergency, Tone: protocol.ToneSiren,
		Repeat: 1, Status: protocol.StatusLive,
	}}}
	unsigned, _ := protocol.Encode(protocol.KindPlan, site, uint64(now.UnixMicro())*2, now, evil)
	pub(topics.PlanAll(), unsigned, false)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := protocol.EncodeSigned(topics.PlanAll(), protocol.KindPlan, site, uint64(now.UnixMicro())*2, now, evil, protocol.NewSigner(key))
	pub(topics.PlanAll(), forged, true)

	// Every box reports what it refused (one report per topic per minute).
	eventually(t, 20*time.Second, "both boxes' rejections in the audit log", func() bool {
		seen := map[string]int{}
		for _, e := range c.audit() {
			if e.Action == "box.rejected" {
				seen[e.Actor]++
			}
		}
		return seen["device:box-1"] >= 2 && seen["device:box-2"] >= 2
	})
	for _, e := range c.audit() {
		if e.Action == "box.rejected" {
			t.Logf("%s: %s", e.Actor, e.Details)
		}
	}
	// Past the cancelled item's start: nothing played, nothing changed.
	time.Sleep(time.Until(start.Add(3 * time.Second)))
	for id, dir := range played {
		if files, _ := filepath.Glob(filepath.Join(dir, "*.wav")); len(files) != 0 {
			t.Errorf("%s played %v", id, files)
		}
	}
	if r := c.report(a.ID); r["box-1"].Status != "cancelled" || r["box-2"].Status != "cancelled" {
		t.Fatalf("report after the replay: %+v", r)
	}
	for id, s := range c.status() {
		if s.State != "idle" {
			t.Errorf("%s is %s", id, s.State)
		}
	}
}

func (c *commune) audit() []auditRow {
	var rows []auditRow
	c.cli.json(&rows, "report", "--audit")
	return rows
}

// api calls the controller's HTTP API with the admin token.
func (c *commune) api(t testing.TB, method, path string) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(c.dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	server := strings.TrimPrefix(c.cli.env[0], "LOA_SERVER=")
	req, _ := http.NewRequest(method, server+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e json.RawMessage
		json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, e)
	}
}

// TestKeyRotation changes the controller's signing key without touching
// the box: after `loa key rotate` and `loa key finish` the box, still with
// its old config file, obeys the new key, also after a restart.
func TestKeyRotation(t *testing.T) {
	c := newCommune(t, "", "")
	cfg := c.addBox("box-1", "thon-1")
	played := filepath.Join(c.dir, "box-1", "played")
	box := func() *exec.Cmd {
		return proc(t, c.dir, "box-1", "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, "box-1", "cache"), "--output", "wav:"+played)
	}
	first := box()
	c.waitOnline("box-1")
	var keys struct {
		Trusted  []string `json:"trusted"`
		Rotating bool     `json:"rotating"`
		Waiting  []string `json:"waiting"`
	}
	c.cli.json(&keys, "key", "show")
	old := keys.Trusted[0]
	c.cli.json(&keys, "key", "rotate")
	if len(keys.Trusted) != 2 || keys.Trusted[0] != old || !keys.Rotating {
		t.Fatalf("after rotate: %+v", keys)
	}
	next := keys.Trusted[1]
	// The box's heartbeat after the new config marks it as having it.
	eventually(t, 30*time.Second, "the box to be heard from since the rotation", func() bool {
		keys.Waiting = nil // absent from the JSON when none wait
		c.cli.json(&keys, "key", "show")
		return len(keys.Waiting) == 0
	})
	c.cli.json(&keys, "key", "finish")
	if len(keys.Trusted) != 1 || keys.Trusted[0] != next {
		t.Fatalf("after finish: %+v", keys)
	}
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	announce := func() string {
		var a struct{ ID string }
		c.cli.json(&a, "announce", "--media", media.ID, "--device", "box-1", "--wait", "--timeout", "60s")
		return a.ID
	}
	if a := announce(); c.report(a)["box-1"].Status != "played" {
		t.Fatalf("after the rotation the box did not play: %+v", c.report(a))
	}
	// Restarted with the same old config file, it still trusts the new key.
	first.Process.Signal(syscall.SIGTERM) // the harness reaps it
	eventually(t, 20*time.Second, "the box to stop", func() bool { return !c.status()["box-1"].Online })
	box()
	c.waitOnline("box-1")
	if a := announce(); c.report(a)["box-1"].Status != "played" {
		t.Fatalf("after a restart the box did not play: %+v", c.report(a))
	}
	// Every retained plan was signed again: the box refused nothing.
	for _, e := range c.audit() {
		if e.Action == "box.rejected" {
			t.Errorf("the box rejected a genuine message: %s", e.Details)
		}
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), old) || strings.Contains(string(b), next) {
		t.Fatal("the box's config file changed; the test means the box to keep its old one")
	}
}
