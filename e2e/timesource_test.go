package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealBoxTimeSources runs a real loa-agent whose clock is in 1969
// (--clock-skew) and whose modem (a fake mmcli named in time_sources)
// knows the time: the box takes the network's time at once, then the
// controller's. `loa status` shows where its time comes from, and the box
// saves the controller's time when it stops.
func TestRealBoxTimeSources(t *testing.T) {
	c := newCommune(t, "", "")
	cfg := c.addBox("thon1-a", "thon-1")
	mmcli := filepath.Join(c.dir, "mmcli")
	script := "#!/bin/sh\necho \"modem.time.current : $(date -u +%Y-%m-%dT%H:%M:%S+00:00)\"\n"
	if err := os.WriteFile(mmcli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("time_sources:\n  rtc: none\n  nitz: " + mmcli + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cache := filepath.Join(c.dir, "thon1-a", "cache")
	agent := proc(t, c.dir, "thon1-a", "loa-agent", "--config", cfg, "--cache", cache, "--output", "wav:"+filepath.Join(c.dir, "played"),
		"--clock-skew", (-500000 * time.Hour).String())
	c.waitOnline("thon1-a")

	var row struct {
		statusRow
		TimeSource string `json:"time_source"`
	}
	eventually(t, 30*time.Second, "time from the controller", func() bool {
		var rows []json.RawMessage
		c.cli.json(&rows, "status")
		return len(rows) == 1 && json.Unmarshal(rows[0], &row) == nil && row.TimeSource == "controller"
	})
	log, _ := os.ReadFile(filepath.Join(c.dir, "thon1-a.log"))
	if !strings.Contains(string(log), "time from nitz") {
		t.Fatalf("the box did not take the modem's time before the controller's:\n%s", tail(string(log), 3000))
	}
	if table := c.cli.ok("status"); !strings.Contains(table, "TIME") || !strings.Contains(table, "controller") {
		t.Fatalf("loa status:\n%s", table)
	}

	agent.Process.Signal(syscall.SIGTERM)
	eventually(t, 15*time.Second, "the time saved at shutdown", func() bool {
		b, err := os.ReadFile(filepath.Join(cache, "time.saved"))
		return err == nil && strings.Contains(string(b), `"source":"controller"`)
	})
}
