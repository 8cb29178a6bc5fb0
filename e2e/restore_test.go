package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestControllerRestore: the controller backs itself up to a second
// folder; its PC dies (killed, its data folder deleted); `loa restore`
// puts the backup into a fresh folder and a controller started on it, at
// the same addresses, is obeyed by the box, which was never touched: the
// next announcement plays.
func TestControllerRestore(t *testing.T) {
	dir := t.TempDir()
	usb := filepath.Join(dir, "usb")
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "loa.yaml")
	if err := os.WriteFile(cfg, []byte("site: e2e\nbackup:\n  dir: "+usb+"\n  every: 10s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, mqttAddr := freePort(t), freePort(t)
	serve := func(name string) interface{ Kill() error } {
		cmd := proc(t, dir, name, "loa", "serve", "--config", cfg, "--data", data, "--http", httpAddr, "--mqtt", mqttAddr)
		waitHTTP(t, "http://"+httpAddr)
		return cmd.Process
	}
	old := serve("controller")
	c := &commune{t: t, dir: dir, server: "http://" + httpAddr, cli: cli{t: t, bin: filepath.Join(binDir, "loa"),
		env: []string{"LOA_SERVER=http://" + httpAddr, "LOA_DATA=" + data, "LOA_TOKEN="}}}
	played := c.startBox("box-1", c.addBox("box-1", "thon-1"))
	c.waitOnline("box-1")
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var before struct{ ID string }
	c.cli.json(&before, "announce", "--media", media.ID, "--group", "thon-1", "--wait", "--timeout", "60s")
	if r := c.report(before.ID); r["box-1"].Status != "played" {
		t.Fatalf("before the loss: %+v", r)
	}

	// A backup made after the announcement, then the PC dies.
	var m struct {
		MadeAt time.Time `json:"made_at"`
	}
	announced := time.Now()
	eventually(t, 30*time.Second, "a backup after the announcement", func() bool {
		b, err := os.ReadFile(filepath.Join(usb, "manifest.json"))
		return err == nil && json.Unmarshal(b, &m) == nil && m.MadeAt.After(announced)
	})
	old.Kill()
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}

	// A new PC: restore, then the same command as before.
	start := time.Now()
	out := c.cli.ok("restore", "--from", usb, "--data", data)
	t.Logf("loa restore (%v): %s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, filepath.Join(usb, "loa.yaml")) {
		t.Errorf("loa restore does not say where the old config is:\n%s", out)
	}
	serve("controller-restored")
	t.Logf("controller serving %v after the restore began", time.Since(start).Round(time.Millisecond))
	c.waitOnline("box-1")
	t.Logf("box-1 back online %v after the restore began", time.Since(start).Round(time.Millisecond))
	if r := c.report(before.ID); r["box-1"].Status != "played" {
		t.Errorf("the restored report lost the first announcement: %+v", r)
	}
	var after struct{ ID string }
	c.cli.json(&after, "announce", "--media", media.ID, "--group", "thon-1", "--wait", "--timeout", "60s")
	r := c.report(after.ID)["box-1"]
	if r.Status != "played" {
		t.Fatalf("the box did not play the restored controller's announcement: %+v", r)
	}
	if !fileExists(filepath.Join(played, r.Item+".wav")) {
		t.Errorf("the box reported played but wrote no %s.wav", r.Item)
	}
}
