package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/enrol"
	"github.com/loa-commune/loa/protocol"
)

// TestEnrolBox: a box added with --enroll fetches its config with the code
// the CLI printed (typed in groups, in lower case), writes it mode 0600,
// connects and plays; the same code again, a typo, a forged code and an
// existing config are refused in plain words, and the audit log has it all.
func TestEnrolBox(t *testing.T) {
	c := newCommune(t, "", "")
	out := c.cli.ok("device", "add", "box-e", "--group", "thon-1", "--enroll")
	m := regexp.MustCompile(`loa-agent enroll (\S+) ((?:[0-9A-Z]{4}-){7}[0-9A-Z]{4})`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "▀") {
		t.Fatalf("device add --enroll printed no command and QR code:\n%s", out)
	}
	server, code := m[1], m[2]
	agent := cli{t: t, bin: filepath.Join(binDir, "loa-agent")}
	cfgPath := filepath.Join(c.dir, "etc", "loa", "agent.yaml")
	typed := strings.Fields(strings.ToLower(strings.ReplaceAll(code, "-", " ")))
	stdout, stderr, exit := agent.run(append(append([]string{"enroll", server}, typed...), "--config", cfgPath, "--no-start")...)
	if exit != 0 || !strings.Contains(stdout, "Enrolled as box box-e") {
		t.Fatalf("loa-agent enroll: exit %d\n%s%s", exit, stdout, stderr)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v, mode %v; want mode 0600", cfgPath, err, fi.Mode().Perm())
	}
	cfg, err := device.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	played := filepath.Join(c.dir, "box-e", "played")
	proc(t, c.dir, "box-e", "loa-agent", "--config", cfgPath, "--cache", filepath.Join(c.dir, "box-e", "cache"), "--output", "wav:"+played)
	c.waitOnline("box-e")
	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var ann struct {
		ID string `json:"id"`
	}
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", "thon-1", "--wait", "--timeout", "60s")
	rep := c.report(ann.ID)["box-e"]
	if rep.Status != "played" {
		t.Fatalf("enrolled box: report %+v", rep)
	}
	assertSamples(t, "box-e", readWAV(t, filepath.Join(played, rep.Item+".wav")), expectedPCM(t, "testdata/short.mp3", 80))

	key, err := protocol.ParsePublicKey(cfg.ControllerKeys[0])
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(c.dir, "other.yaml")
	typo := []byte(code)
	typo[0] = map[bool]byte{true: '1', false: '0'}[typo[0] == '0']
	for _, tc := range []struct{ name, code, config, want string }{
		{"reused", code, other, "already used"},
		{"typo", string(typo), other, "not a valid enrolment code"},
		{"forged", enrol.NewCode(key).String(), other, "not one the controller made"},
		{"config exists", code, cfgPath, "already holds the config of box box-e"},
	} {
		stdout, stderr, exit := agent.run("enroll", server, tc.code, "--config", tc.config, "--no-start")
		if exit != 1 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%s code: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.name, exit, stdout, stderr, tc.want)
		}
	}
	if fileExists(other) {
		t.Errorf("a refused enrolment wrote %s", other)
	}

	count := map[string]int{}
	for _, a := range c.audit() {
		count[a.Action]++
	}
	// The typo never left the box, and the existing config was checked first.
	if count["enrol.create"] != 1 || count["enrol.use"] != 1 || count["enrol.refuse"] != 2 {
		t.Errorf("audit log: %v; want one code made, used once, refused twice (reused, forged)", count)
	}
}
