package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type auditRow struct {
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Rule    string `json:"rule"`
	Targets string `json:"targets"`
	Details string `json:"details"`
}

// TestEmergencyFromCLI: an operator must type the target to confirm; a
// spoken emergency with a siren reaches the village's boxes, is audited,
// and cancelling it plays the all-clear.
func TestEmergencyFromCLI(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed")
	}
	c := newCommune(t, "", "")
	cfg1, cfg2 := c.addBox("box-1", "thon-1"), c.addBox("box-2", "thon-2")
	played1, played2 := c.startBox("box-1", cfg1), c.startBox("box-2", cfg2)
	c.waitOnline("box-1", "box-2")

	// A wrong confirmation sends nothing.
	cmd := exec.Command(c.cli.bin, "emergency", "--tone", "flood", "--group", "thon-1")
	cmd.Env = append(cmd.Environ(), c.cli.env...)
	cmd.Stdin = strings.NewReader("thon-2\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not confirmed") {
		t.Fatalf("a wrong confirmation: %v\n%s", err, out)
	}
	var active []struct{ ID string }
	c.cli.json(&active, "emergency", "list")
	if len(active) != 0 {
		t.Fatalf("unconfirmed emergency was started: %+v", active)
	}

	// The right confirmation, typed as an operator would.
	cmd = exec.Command(c.cli.bin, "emergency", "--text", "Lũ quét sắp đến, bà con di chuyển lên chỗ cao ngay.", "--tone", "flood",
		"--repeat", "1", "--group", "thon-1", "-o", "json")
	cmd.Env = append(cmd.Environ(), c.cli.env...)
	cmd.Stdin = strings.NewReader("group:thon-1\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("emergency: %v\n%s", err, out)
	}
	c.cli.json(&active, "emergency", "list")
	if len(active) != 1 {
		t.Fatalf("active emergencies: %+v", active)
	}
	id := active[0].ID
	eventually(t, 60*time.Second, "the emergency to play on box-1", func() bool { return c.report(id)["box-1"].Status == "played" })
	if txt := c.report(id)["box-1"].Text; !strings.Contains(txt, "Lũ quét sắp đến") {
		t.Fatalf("report does not show what the emergency said: %q", txt)
	}
	if _, ok := c.report(id)["box-2"]; ok {
		t.Fatal("box-2 in thon-2 got thon-1's emergency")
	}
	files, _ := filepath.Glob(filepath.Join(played1, id+"-*.wav"))
	if len(files) != 1 {
		t.Fatalf("box-1 played %v", files)
	}
	samples := readWAV(t, files[0])
	if len(samples) < 2*48000*3 { // tone and spoken message: several seconds
		t.Fatalf("emergency output is only %d samples", len(samples))
	}
	if other, _ := filepath.Glob(filepath.Join(played2, "*.wav")); len(other) != 0 {
		t.Fatalf("box-2 played %v", other)
	}

	var res struct {
		Cancelled []string `json:"cancelled"`
		AllClear  string   `json:"all_clear"`
	}
	c.cli.json(&res, "emergency", "cancel", id)
	if len(res.Cancelled) != 1 || res.Cancelled[0] != id || res.AllClear == "" {
		t.Fatalf("cancel: %+v", res)
	}
	eventually(t, 60*time.Second, "the all-clear to play on box-1", func() bool { return c.report(res.AllClear)["box-1"].Status == "played" })

	var audit []auditRow
	c.cli.json(&audit, "report", "--audit")
	if len(audit) != 2 || audit[0].Action != "emergency.start" || audit[0].Rule != id || audit[0].Targets != "group:thon-1" ||
		!strings.Contains(audit[0].Details, "tone=flood") || audit[1].Action != "emergency.cancel" || audit[1].Rule != id {
		t.Fatalf("audit log: %+v", audit)
	}
	if _, _, code := c.cli.run("emergency", "cancel"); code == 0 {
		t.Fatal("cancelling with no active emergency succeeded")
	}
}

// TestExerciseIsMarked: a drill says "this is an exercise" and the report
// marks it, so nobody mistakes it for a real alert afterwards.
func TestExerciseIsMarked(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed")
	}
	c := newCommune(t, "", "")
	cfg := c.addBox("box-1", "thon-1")
	played := c.startBox("box-1", cfg)
	c.waitOnline("box-1")
	var e struct {
		ID       string `json:"id"`
		Exercise bool   `json:"exercise"`
		Media    string `json:"media"`
	}
	c.cli.json(&e, "emergency", "--tone", "storm", "--repeat", "1", "--all", "--exercise", "--yes")
	if !e.Exercise || e.Media == "" {
		t.Fatalf("exercise: %+v (want the spoken exercise notice as its media)", e)
	}
	eventually(t, 60*time.Second, "the exercise to play", func() bool { return c.report(e.ID)["box-1"].Status == "played" })
	var rows []struct {
		Announcement string `json:"announcement"`
		Exercise     bool   `json:"exercise"`
	}
	c.cli.json(&rows, "report")
	for _, r := range rows {
		if r.Announcement == e.ID && !r.Exercise {
			t.Fatalf("report does not mark the exercise: %+v", rows)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(played, e.ID+"-*.wav")); len(files) != 1 {
		t.Fatalf("box-1 played %v", files)
	}
	var audit []auditRow
	c.cli.json(&audit, "report", "--audit")
	if len(audit) != 1 || !strings.Contains(audit[0].Details, "exercise") {
		t.Fatalf("audit: %+v", audit)
	}
}

// TestEmergencyReachesBoxThatComesBack: a box that is off when an
// emergency starts plays it when it comes back while the emergency is
// still active.
func TestEmergencyReachesBoxThatComesBack(t *testing.T) {
	c := newCommune(t, "", "")
	cfg := c.addBox("late", "thon-1")
	var e struct{ ID string }
	c.cli.json(&e, "emergency", "--tone", "fire", "--repeat", "1", "--group", "thon-1", "--yes")
	time.Sleep(2 * time.Second) // the box is still off
	played := c.startBox("late", cfg)
	eventually(t, 60*time.Second, "the returning box to play the emergency", func() bool { return c.report(e.ID)["late"].Status == "played" })
	if files, _ := filepath.Glob(filepath.Join(played, e.ID+"-*.wav")); len(files) != 1 {
		t.Fatalf("returning box wrote %v", files)
	}
}
