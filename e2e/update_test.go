package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/store"
)

// agentVersion builds loa-agent as `make cross VERSION=v` does for this
// machine.
func agentVersion(t testing.TB, version string) string {
	t.Helper()
	out := filepath.Join(binDir, "loa-agent-"+version)
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/loa-commune/loa/device.Version="+version, "-o", out, "../cmd/loa-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build loa-agent %s: %v\n%s", version, err, b)
	}
	return out
}

// brokenAgent is a build that carries its version but never reaches the
// controller: it waits to be stopped, as a build for the wrong hardware
// that hangs would.
func brokenAgent(t testing.TB, version string) string {
	t.Helper()
	dir := t.TempDir()
	src := `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Fprintln(os.Stderr, "broken loa-agent ` + version + `: waiting for nothing")
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, os.Interrupt)
	<-c
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module broken\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(binDir, "broken-agent-"+version)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the broken agent: %v\n%s", err, b)
	}
	return out
}

// awaitRollout waits for the rollout to reach state, and returns it.
func (c *commune) awaitRollout(state string, timeout time.Duration) rollout.Status {
	c.t.Helper()
	var st rollout.Status
	eventually(c.t, timeout, "rollout "+state, func() bool {
		c.cli.json(&st, "agent", "rollout", "status")
		return st.State == state
	})
	return st
}

// TestAgentUpdateRollout: a new build goes out to a village's three boxes
// in two steps and they all run it and play; a build that never reaches the
// controller, sent to one box, is rolled back by the box on its own and
// pauses the rollout; a tampered build and an older build are refused.
func TestAgentUpdateRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four agents and waits out a trial")
	}
	c := newCommune(t, "", "")
	ids := []string{"box-1", "box-2", "box-3"}
	played := map[string]string{}
	for _, id := range ids {
		cfg := c.addBox(id, "thon-1")
		f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("update_trial: 12s\n")
		f.Close()
		played[id] = c.startBox(id, cfg)
	}
	c.waitOnline(ids...)

	good := agentVersion(t, "0.14.0")
	out := c.cli.ok("agent", "publish", good, "--version", "0.14.0", "--group", "thon-1", "--percent", "34")
	if !strings.Contains(out, "step 1") {
		t.Fatalf("publish printed:\n%s", out)
	}
	st := c.awaitRollout(store.RolloutDone, 3*time.Minute)
	if st.Step != 2 {
		t.Errorf("rollout done in %d steps, want 2 (34 %% of 3 boxes a step)", st.Step)
	}
	status := c.status()
	for _, id := range ids {
		if s := status[id]; !s.Online || s.Version != "0.14.0" {
			t.Errorf("%s after the rollout: %+v, want online running 0.14.0", id, s)
		}
	}
	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	announce := func(target ...string) map[string]reportRow {
		var ann struct {
			ID string `json:"id"`
		}
		c.cli.json(&ann, append([]string{"announce", "--media", media.ID, "--wait", "--timeout", "60s"}, target...)...)
		return c.report(ann.ID)
	}
	want := expectedPCM(t, "testdata/short.mp3", 80)
	rep := announce("--group", "thon-1")
	for _, id := range ids {
		if rep[id].Status != "played" {
			t.Fatalf("%s on the new build: %+v", id, rep[id])
		}
		assertSamples(t, id, readWAV(t, filepath.Join(played[id], rep[id].Item+".wav")), want)
	}

	// A build that never reaches the controller, to one box.
	broken := brokenAgent(t, "0.15.0")
	t0 := time.Now()
	c.cli.ok("agent", "publish", broken, "--version", "0.15.0", "--device", "box-3")
	st = c.awaitRollout(store.RolloutPaused, 3*time.Minute)
	t.Logf("from publishing a build that cannot connect to the rollout paused by its rollback: %v", time.Since(t0).Round(100*time.Millisecond))
	if !strings.Contains(st.Reason, "box-3: rolled-back") {
		t.Errorf("paused because %q, want box-3's rollback", st.Reason)
	}
	eventually(t, time.Minute, "box-3 back on 0.14.0", func() bool {
		s := c.status()["box-3"]
		return s.Online && s.Version == "0.14.0"
	})
	if rep := announce("--device", "box-3"); rep["box-3"].Status != "played" {
		t.Fatalf("box-3 after its rollback: %+v", rep["box-3"])
	}
	c.cli.ok("agent", "rollout", "abort", "--reason", "build 0.15.0 hangs")

	// A build changed after it was published: the box's check of the
	// signed SHA-256 refuses it.
	token, err := os.ReadFile(filepath.Join(c.dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	client := api.NewClient(strings.TrimPrefix(c.cli.env[0], "LOA_SERVER="), strings.TrimSpace(string(token)))
	ctx := context.Background()
	f, err := os.Open(agentVersion(t, "0.16.0"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.AddBuild(ctx, "0.16.0", f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	stored := filepath.Join(c.dir, "data", "builds", b.SHA256)
	bin, err := os.ReadFile(stored)
	if err != nil {
		t.Fatal(err)
	}
	bin[len(bin)/2] ^= 0xff
	if err := os.WriteFile(stored, bin, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StartRollout(ctx, api.RolloutRequest{Version: "0.16.0", Builds: []string{b.SHA256},
		Targets: store.Targets{Devices: []string{"box-2"}}}); err != nil {
		t.Fatal(err)
	}
	st = c.awaitRollout(store.RolloutPaused, 2*time.Minute)
	if !strings.Contains(st.Reason, "box-2: refused") || !strings.Contains(st.Reason, "tampered") {
		t.Errorf("tampered build: paused because %q", st.Reason)
	}
	c.cli.ok("agent", "rollout", "abort")

	// An older build: the controller does not offer it (a box would
	// refuse it too: device's TestUpdateRefusesOffersNotForThisBox).
	_, errOut, code := c.cli.run("agent", "publish", agentVersion(t, "0.12.0"), "--version", "0.12.0", "--device", "box-1")
	if code != 1 || !strings.Contains(errOut, "already runs 0.12.0 or newer") {
		t.Errorf("older build: exit %d, %q", code, errOut)
	}

	status = c.status()
	for _, id := range ids {
		if s := status[id]; !s.Online || s.Version != "0.14.0" {
			t.Errorf("%s at the end: %+v, want online running 0.14.0", id, s)
		}
	}
}
