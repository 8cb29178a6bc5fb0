package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loa-commune/loa/packaging"
)

// agentFromDeb builds the loa-agent .deb for arch as `make packages` does,
// checks its architecture, and unpacks it into a root of its own: the
// agent that runs is the one the package installs, /usr/bin/loa-agent.
func agentFromDeb(t testing.TB, arch string) string {
	t.Helper()
	for _, p := range []string{packaging.Arches[arch].CC, packaging.Arches[arch].Qemu, "dpkg-deb"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (scripts/deps.sh cross installs it)", p)
		}
	}
	work := t.TempDir()
	deb, err := packaging.Build(context.Background(), "..", work, "loa-agent", arch, "0.13.0")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dpkg-deb", "-f", deb, "Architecture").Output(); err != nil || strings.TrimSpace(string(out)) != arch {
		t.Fatalf("%s: Architecture %q, %v; want %s", deb, out, err, arch)
	}
	root := filepath.Join(work, "root")
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", deb, err, out)
	}
	return filepath.Join(root, "usr", "bin", "loa-agent")
}

// TestEmulatedPiBoxes: an arm64 box (Pi 3/4/5, 64-bit OS) and an armhf box
// (Raspberry Pi OS 32-bit) run the agent of their .deb under qemu-user
// against this x86 controller, and each plays an announcement sample for
// sample as ffmpeg decodes it.
//
// qemu-user runs the ARM agent with Debian's multiarch ARM libraries as its
// root (-L /; the libraries the package depends on: libc6, libasound2,
// libopus0 of that architecture): the dynamic loader and libc then come
// from one package.
// Pointing -L at the cross compiler's sysroot (/usr/<triplet>) pairs that
// sysroot's ld.so with the multiarch libc of another glibc build, and every
// pthread_create (so every cgo program) spins forever.
func TestEmulatedPiBoxes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent for two architectures and emulates them")
	}
	c := newCommune(t, "", "")
	played := map[string]string{}
	var ids []string
	for _, arch := range []string{"arm64", "armhf"} {
		agent := agentFromDeb(t, arch)
		id := "pi-" + arch
		cfg := c.addBox(id, "thon-pi")
		played[id] = filepath.Join(c.dir, id, "played")
		proc(t, c.dir, id, packaging.Arches[arch].Qemu, "-L", "/", agent, "--config", cfg,
			"--cache", filepath.Join(c.dir, id, "cache"), "--output", "wav:"+played[id])
		ids = append(ids, id)
	}
	c.waitOnline(ids...)

	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var ann struct {
		ID      string   `json:"id"`
		Devices []string `json:"devices"`
	}
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", "thon-pi", "--wait", "--timeout", "2m")
	if strings.Join(ann.Devices, ",") != strings.Join(ids, ",") {
		t.Fatalf("announcement targets %v, want %v", ann.Devices, ids)
	}
	rep := c.report(ann.ID)
	want := expectedPCM(t, "testdata/short.mp3", 80)
	for _, id := range ids {
		if rep[id].Status != "played" {
			t.Fatalf("%s: report %+v, want played", id, rep[id])
		}
		assertSamples(t, id, readWAV(t, filepath.Join(played[id], rep[id].Item+".wav")), want)
	}
	st := c.status()
	for _, id := range ids {
		if s := st[id]; !s.Online || s.State != "idle" || s.Version != "0.13.0" {
			t.Errorf("status of %s = %+v, want online and idle, running the package's 0.13.0", id, s)
		}
	}
}
