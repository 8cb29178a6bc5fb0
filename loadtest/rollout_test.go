package loadtest

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/store"
)

// fakeAgent writes a stand-in for an arm64 loa-agent build: an ELF header
// for an aarch64 program, the version string the controller looks for, and
// padding to size bytes. It runs nowhere; the simulated boxes only fetch
// and check it.
func fakeAgent(t *testing.T, version string, size int) string {
	t.Helper()
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")             // 64-bit, little-endian, version 1
	binary.LittleEndian.PutUint16(b[16:], 2)   // ET_EXEC
	binary.LittleEndian.PutUint16(b[18:], 183) // EM_AARCH64
	binary.LittleEndian.PutUint32(b[20:], 1)
	binary.LittleEndian.PutUint16(b[52:], 64) // header size
	binary.LittleEndian.PutUint16(b[54:], 56)
	binary.LittleEndian.PutUint16(b[58:], 64)
	copy(b[64:], "loa-agent "+version)
	p := filepath.Join(t.TempDir(), "loa-agent")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAgentRolloutSmall rolls a build out to 20 simulated boxes, 25 % a
// step, through a real controller: every box fetches it once with its own
// credentials, checks it and reports healthy, step after step, until the
// rollout is done and the offer has left every config.
func TestAgentRolloutSmall(t *testing.T) {
	ctx := context.Background()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.AllClearText = "lt", filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", "127.0.0.1:0", ""
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctrl, err := controller.Open(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close(ctx)
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	const size = 300_000
	res, err := AgentRollout(ctx, c, RolloutOptions{Boxes: 20, Groups: 3, Brokers: []string{"tcp://" + ctrl.BrokerAddr()}, Site: "lt",
		Build: fakeAgent(t, "0.14.0", size), Version: "0.14.0", Percent: 25, Deadline: 50 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != store.RolloutDone || res.NotFinished != 0 {
		t.Fatalf("rollout %s (%s), %d boxes not finished: %v", res.State, res.Reason, res.NotFinished, res.Unfinished)
	}
	if res.Arch != "arm64" || res.BuildBytes != size {
		t.Errorf("build: %s, %d bytes", res.Arch, res.BuildBytes)
	}
	if res.Downloaded != 20*size || res.Fetches != 20 {
		t.Errorf("downloaded %d bytes in %d requests, want each box's build once: %d", res.Downloaded, res.Fetches, 20*size)
	}
	if len(res.Steps) != 4 {
		t.Fatalf("%d steps, want 4 of 5 boxes: %+v", len(res.Steps), res.Steps)
	}
	for i, s := range res.Steps {
		if s.Step != i+1 || s.Boxes != 5 || s.Work() <= 0 || s.Took() < s.Work() {
			t.Errorf("step %d: %+v", i+1, s)
		}
		if i > 0 && s.Offered < res.Steps[i-1].Healthy {
			t.Errorf("step %d offered at %v, before step %d was healthy at %v", i+1, s.Offered, i, res.Steps[i-1].Healthy)
		}
	}
	if res.Total < res.Steps[3].Healthy || res.TickWait <= 0 || res.TickPercent <= 0 || res.TickPercent > 100 {
		t.Errorf("total %v, tick wait %v (%.0f %%)", res.Total, res.TickWait, res.TickPercent)
	}
	// Each box got its config with the offer, and again without it.
	if res.ConfigsPerBox < 2 || res.ConfigBytesPerBox <= 0 || res.StateBytesPerBox <= 0 {
		t.Errorf("per box: %.1f configs, %.0f config bytes, %.0f state bytes", res.ConfigsPerBox, res.ConfigBytesPerBox, res.StateBytesPerBox)
	}
	if res.ControllerCPU <= 0 || res.ControllerRSSPeak <= 0 || res.DownloadMedian <= 0 {
		t.Errorf("controller CPU %.1f %%, RSS peak %d, download median %v", res.ControllerCPU, res.ControllerRSSPeak, res.DownloadMedian)
	}
	t.Logf("total %v, steps %+v, tick wait %v", res.Total, res.Steps, res.TickWait)
	// Without Keep the boxes are removed after the run.
	st, err := c.Rollout(ctx)
	if err != nil || len(st.Boxes) != 0 {
		t.Errorf("after the run: %d boxes in the rollout's status (%v), want none", len(st.Boxes), err)
	}
}
