package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// piArch is one Raspberry Pi architecture the agent ships for, and how to
// build and run it on this x86 machine.
type piArch struct {
	name   string // Debian's name: arm64, armhf
	goarch string
	cc     string // cross compiler
	triple string // multiarch triplet: where the target's libraries are
	qemu   string // qemu-user emulator
}

var piArches = []piArch{
	{"arm64", "arm64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu", "qemu-aarch64"},
	{"armhf", "arm", "arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf", "qemu-arm"},
}

// crossAgent builds loa-agent for a, as `make cross` does.
func crossAgent(t testing.TB, a piArch) string {
	t.Helper()
	for _, p := range []string{a.cc, a.qemu} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (scripts/deps.sh cross installs it)", p)
		}
	}
	out := filepath.Join(binDir, "loa-agent-"+a.name)
	cmd := exec.Command("go", "build", "-o", out, "../cmd/loa-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux", "GOARCH="+a.goarch, "GOARM=7", "CC="+a.cc,
		"PKG_CONFIG_LIBDIR=/usr/lib/"+a.triple+"/pkgconfig:/usr/share/pkgconfig")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build loa-agent for %s: %v\n%s", a.name, err, b)
	}
	return out
}

// TestEmulatedPiBoxes: an arm64 box (Pi 3/4/5, 64-bit OS) and an armhf box
// (Raspberry Pi OS 32-bit) run the cross-built agent under qemu-user
// against this x86 controller, and each plays an announcement sample for
// sample as ffmpeg decodes it.
//
// qemu-user runs the ARM agent with Debian's multiarch ARM libraries as its
// root (-L /): the dynamic loader and libc then come from one package.
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
	for _, a := range piArches {
		agent := crossAgent(t, a)
		id := "pi-" + a.name
		cfg := c.addBox(id, "thon-pi")
		played[id] = filepath.Join(c.dir, id, "played")
		proc(t, c.dir, id, a.qemu, "-L", "/", agent, "--config", cfg,
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
		if s := st[id]; !s.Online || s.State != "idle" {
			t.Errorf("status of %s = %+v, want online and idle", id, s)
		}
	}
}
