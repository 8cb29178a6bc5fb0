package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/auth"
)

// TestTwoSitesOneMosquitto: two communes, each with its own controller and
// topic root, share one mosquitto secured by their merged files. Each box
// plays its own commune's announcement; neither can read or write the other
// commune's topics, nor can one commune's controller.
func TestTwoSitesOneMosquitto(t *testing.T) {
	bin := aclMosquittoBin(t)
	dir := t.TempDir()
	loa := cli{t: t, bin: filepath.Join(binDir, "loa")}
	merged := filepath.Join(dir, "merged")
	if err := os.MkdirAll(merged, 0o755); err != nil { // mosquitto starts before the first merge
		t.Fatal(err)
	}
	broker, mosq := startACLMosquitto(t, bin, dir, merged)
	// Until the files are merged, nobody is let in; so start with the
	// controllers' users alone (no database yet), as an operator would.
	type site struct {
		name, user, password, files, box, cfg string
		c                                     *commune
	}
	sites := []*site{{name: "xa-an", user: "ctl-xa-an", box: "an-loa-1"}, {name: "xa-binh", user: "ctl-xa-binh", box: "binh-loa-1"}}
	for _, s := range sites {
		s.password, s.files = auth.NewToken(), filepath.Join(dir, s.name+"-files")
	}
	gen := func(s *site, data string) {
		t.Helper()
		cfg := filepath.Join(dir, s.name+"-gen.yaml")
		if err := os.WriteFile(cfg, []byte("site: "+s.name+"\nbroker_username: "+s.user+"\nbroker_password: "+s.password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		loa.run("broker", "config", "--format", "mosquitto", "--config", cfg, "--data", data, "--out", s.files)
	}
	merge := func() {
		t.Helper()
		out := loa.ok("broker", "merge", "--format", "mosquitto", "--out", merged, sites[0].files, sites[1].files)
		if !strings.Contains(out, "acl_file "+filepath.Join(merged, "loa.acl")) {
			t.Fatalf("broker merge:\n%s", out)
		}
		mosq.Process.Signal(syscall.SIGHUP)
	}
	for _, s := range sites {
		gen(s, filepath.Join(dir, s.name+"-no-data-yet"))
	}
	merge()
	for _, s := range sites {
		s.c = newCommune(t, broker, "site: "+s.name+"\nbroker_username: "+s.user+"\nbroker_password: "+s.password+"\n")
		s.cfg = s.c.addBox(s.box, "thon-1")
		gen(s, filepath.Join(s.c.dir, "data"))
	}
	merge()

	// A user in two sites is refused, naming it.
	dupCfg := filepath.Join(dir, "dup-gen.yaml")
	os.WriteFile(dupCfg, []byte("site: xa-dup\nbroker_username: "+sites[0].user+"\nbroker_password: x\n"), 0o600)
	loa.run("broker", "config", "--format", "mosquitto", "--config", dupCfg, "--data", filepath.Join(dir, "none"), "--out", filepath.Join(dir, "dup"))
	if _, errOut, code := loa.run("broker", "merge", "--out", filepath.Join(dir, "dup-merged"), sites[0].files, filepath.Join(dir, "dup")); code == 0 || !strings.Contains(errOut, sites[0].user) {
		t.Fatalf("merging two sites with one controller username: exit %d, %s", code, errOut)
	}

	// Each commune's box plays its own announcement, through the one broker.
	played := map[string]string{}
	for _, s := range sites {
		played[s.name] = s.c.startBox(s.box, s.cfg)
	}
	var media struct {
		ID string `json:"id"`
	}
	for _, s := range sites {
		s.c.waitOnline(s.box)
		s.c.cli.json(&media, "media", "add", "testdata/short.mp3")
		var ann struct {
			ID string `json:"id"`
		}
		s.c.cli.json(&ann, "announce", "--media", media.ID, "--all", "--wait", "--timeout", "60s")
		rep := s.c.report(ann.ID)
		if len(rep) != 1 || rep[s.box].Status != "played" {
			t.Fatalf("%s: report %+v, want played on %s only", s.name, rep, s.box)
		}
		assertSamples(t, s.box, readWAV(t, filepath.Join(played[s.name], rep[s.box].Item+".wav")), expectedPCM(t, "testdata/short.mp3", 80))
	}

	// With their own credentials: the box of xa-an and the controller of
	// xa-an get nothing of xa-binh, and what they publish there is dropped.
	an, binh := sites[0], sites[1]
	anBox, err := aclConnect(broker, "e2e-an-box", an.box, agentToken(t, an.cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer anBox.close()
	anCtl, err := aclConnect(broker, "e2e-an-ctl", an.user, an.password)
	if err != nil {
		t.Fatal(err)
	}
	defer anCtl.close()
	binhCtl, err := aclConnect(broker, "e2e-binh-ctl", binh.user, binh.password)
	if err != nil {
		t.Fatal(err)
	}
	defer binhCtl.close()
	other := []string{"loa/xa-binh/plan/all", "loa/xa-binh/plan/group/thon-1", "loa/xa-binh/device/binh-loa-1/config", "loa/xa-binh/#"}
	anBox.subscribe(t, other...)
	anCtl.subscribe(t, other...)
	binhCtl.subscribe(t, "loa/xa-binh/#")
	own := "loa/xa-an/plan/all"
	anBox.subscribe(t, own)
	eventually(t, 10*time.Second, "xa-an's box to read its own retained plan", func() bool { return len(anBox.messages(own)) > 0 })
	for _, p := range []struct {
		cl    *aclClient
		topic string
	}{
		{anCtl, "loa/xa-binh/plan/all"},
		{anBox, "loa/xa-binh/device/binh-loa-1/events"},
		{anBox, "loa/xa-binh/trigger/" + an.box},
	} {
		p.cl.publish(t, p.topic, marker(p.cl.user, p.topic))
	}
	// xa-binh's own controller publishes a marker on its root: once it has
	// it back, what xa-an sent would have arrived too.
	binhCtl.publish(t, "loa/xa-binh/bench-marker", "done")
	eventually(t, 10*time.Second, "xa-binh's controller to see its own marker", func() bool { return binhCtl.has("loa/xa-binh/bench-marker", "done") })
	for topic := range binhCtl.topics() {
		for _, m := range binhCtl.messages(topic) {
			if strings.Contains(m, "acl-marker from "+an.box) || strings.Contains(m, "acl-marker from "+an.user) {
				t.Errorf("xa-an's publish reached xa-binh on %s", topic)
			}
		}
	}
	for _, cl := range []*aclClient{anBox, anCtl} {
		for topic := range cl.topics() {
			if strings.HasPrefix(topic, "loa/xa-binh/") {
				t.Errorf("%s read xa-binh's %s", cl.user, topic)
			}
		}
	}
}
