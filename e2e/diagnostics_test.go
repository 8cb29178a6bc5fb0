package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// problemRow is a box's problem as `loa status -o json` prints it.
type problemRow struct {
	Code    string  `json:"code"`
	Level   string  `json:"level"`
	Subject string  `json:"subject"`
	Detail  string  `json:"detail"`
	Value   float64 `json:"value"`
	Since   string  `json:"since"`
}

// TestBoxWithoutItsSoundCard runs a real box whose output names an ALSA
// device that does not exist. It keeps running, says what is wrong in `loa
// status`, and answers an announcement with failed and the reason, never
// played.
func TestBoxWithoutItsSoundCard(t *testing.T) {
	c := newCommune(t, "", "")
	cfg := c.addBox("speaker", "thon-1")
	// ALSA's own configuration, no PulseAudio: alsa:nosuchcard is a PCM
	// alsa-lib has never heard of.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir}
	procEnv(t, env, c.dir, "speaker", "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, "cache"), "--output", "alsa:nosuchcard")
	c.waitOnline("speaker")

	var row boxProblems
	eventually(t, 30*time.Second, "the box to report its sound card", func() bool {
		var rows []boxProblems
		c.cli.json(&rows, "status")
		for _, r := range rows {
			if r.ID == "speaker" {
				row = r
			}
		}
		return row.State == "error" && len(row.Problems) > 0
	})
	p := row.Problems[0]
	if p.Code != "soundcard" || p.Level != "error" || p.Subject != "alsa:nosuchcard" || !strings.Contains(p.Detail, "nosuchcard") || p.Since == "" {
		t.Fatalf("problems %+v, want the sound card alsa:nosuchcard", row.Problems)
	}

	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	out, errOut, code := c.cli.run("announce", "--media", media.ID, "--device", "speaker", "--wait", "--timeout", "60s")
	if code != 3 {
		t.Fatalf("announce --wait: exit %d, want 3 (a box did not play)\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var rep []reportRow
	c.cli.json(&rep, "report", "--status", "failed")
	if len(rep) != 1 || rep[0].Device != "speaker" || !strings.HasPrefix(rep[0].Reason, "sound card alsa:nosuchcard cannot be opened: ") ||
		!strings.Contains(rep[0].Reason, "nosuchcard") {
		t.Fatalf("report of failed rows %+v, want speaker failed because its sound card cannot be opened", rep)
	}
	if played := c.cli.ok("report", "--status", "played"); !strings.Contains(played, "nothing matches") {
		t.Fatalf("a box without a sound card reported played:\n%s", played)
	}

	// The table says it in plain words, in English and in Vietnamese.
	table := c.cli.ok("status")
	for _, want := range []string{"PROBLEMS", "soundcard", "speaker: sound card alsa:nosuchcard cannot be opened: Unknown PCM nosuchcard"} {
		if !strings.Contains(table, want) {
			t.Fatalf("loa status does not say %q:\n%s", want, table)
		}
	}
	vi := cli{t: t, bin: c.cli.bin, env: append(append([]string{}, c.cli.env...), "LOA_LANG=vi")}
	if table := vi.ok("status"); !strings.Contains(table, "speaker: không mở được card âm thanh alsa:nosuchcard: Unknown PCM nosuchcard") {
		t.Fatalf("LOA_LANG=vi loa status:\n%s", table)
	}
	t.Logf("loa status:\n%s", table)
}

// boxProblems is a status row with the problems.
type boxProblems struct {
	ID       string       `json:"id"`
	State    string       `json:"state"`
	Error    string       `json:"error"`
	Problems []problemRow `json:"problems"`
}
