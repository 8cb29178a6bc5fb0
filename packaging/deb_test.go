package packaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	suite  = "bookworm"
	mirror = "http://deb.debian.org/debian"
	// The versions the test builds: A is installed, then upgraded to B.
	versionA = "0.13.0~test1"
	versionB = "0.13.0~test2"
)

// pkg is one .deb the test builds.
type pkg struct {
	name, arch, version string
	path                string // the .deb
}

// TestDebianPackages builds every package, checks them with lintian and
// dpkg-deb, then installs, upgrades, removes and purges the amd64 ones in a
// clean Debian 12 root without a running systemd, and installs the arm64
// and armhf agents there too (multiarch) and runs them under qemu-user.
func TestDebianPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages and a Debian root: not with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (dpkg, debootstrap and chroot); CI runs it as root")
	}
	for _, tool := range []string{"dpkg-deb", "lintian", "debootstrap", "chroot", "systemd-analyze", "tar", "qemu-aarch64", "qemu-arm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/deps.sh test installs it (apt-get install lintian debootstrap systemd qemu-user)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	start := time.Now()
	var debs []pkg
	for _, a := range []string{"amd64", "arm64", "armhf"} {
		debs = append(debs, build(ctx, t, repo, work, "loa-agent", a, versionA))
		if a != "armhf" {
			debs = append(debs, build(ctx, t, repo, work, "loa", a, versionA))
		}
	}
	agentB := build(ctx, t, repo, work, "loa-agent", "amd64", versionB)
	t.Logf("built %d packages in %v", len(debs)+1, time.Since(start).Round(time.Second))

	for _, p := range debs {
		t.Run("lintian/"+filepath.Base(p.path), func(t *testing.T) { checkLintian(ctx, t, p) })
		t.Run("contents/"+filepath.Base(p.path), func(t *testing.T) { checkContents(ctx, t, work, p) })
	}

	t.Run("chroot", func(t *testing.T) {
		var agentA, loaA pkg
		var piAgents []pkg
		for _, p := range debs {
			switch {
			case p.arch == "amd64" && p.name == "loa-agent":
				agentA = p
			case p.arch == "amd64" && p.name == "loa":
				loaA = p
			case p.name == "loa-agent":
				piAgents = append(piAgents, p)
			}
		}
		checkInstall(ctx, t, work, agentA, loaA, agentB, piAgents)
	})
}

// build makes one package (packaging.Build) and fails the test if it cannot.
func build(ctx context.Context, t *testing.T, repo, work, name, arch, version string) pkg {
	t.Helper()
	path, err := Build(ctx, repo, work, name, arch, version)
	if err != nil {
		t.Fatal(err)
	}
	return pkg{name: name, arch: arch, version: version, path: path}
}

// runT runs cmd and fails the test with its output if it fails.
func runT(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// checkLintian fails on any lintian error (tags the package's overrides
// cover are not errors).
func checkLintian(ctx context.Context, t *testing.T, p pkg) {
	out, _ := exec.CommandContext(ctx, "lintian", "--tag-display-limit", "0", p.path).CombinedOutput()
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "E: ") {
			t.Errorf("lintian: %s", strings.TrimSpace(line))
		}
	}
	if t.Failed() {
		t.Logf("lintian output:\n%s", out)
	}
}

// checkContents checks the control fields, the conffiles, the file list and
// the binary's architecture.
func checkContents(ctx context.Context, t *testing.T, work string, p pkg) {
	field := func(name string) string {
		return strings.TrimSpace(runT(t, exec.CommandContext(ctx, "dpkg-deb", "-f", p.path, name)))
	}
	if got := field("Package"); got != p.name {
		t.Errorf("Package %q, want %q", got, p.name)
	}
	if got := field("Version"); got != p.version {
		t.Errorf("Version %q, want %q", got, p.version)
	}
	if got := field("Architecture"); got != p.arch {
		t.Errorf("Architecture %q, want %q", got, p.arch)
	}
	for _, f := range []string{"Maintainer", "Homepage", "Description", "Section", "Priority"} {
		if field(f) == "" {
			t.Errorf("no %s field", f)
		}
	}
	wantDeps := []string{"ffmpeg", "adduser"}
	bin, conf, unit := "usr/bin/loa", "etc/loa/loa.yaml", "lib/systemd/system/loa.service"
	if p.name == "loa-agent" {
		wantDeps = []string{"libc6", "libasound2", "libopus0", "adduser"}
		bin, conf, unit = "usr/bin/loa-agent", "etc/loa/agent.yaml", "lib/systemd/system/loa-agent.service"
	}
	if got := depNames(field("Depends")); !slices.Equal(got, wantDeps) {
		t.Errorf("Depends on %v, want %v", got, wantDeps)
	}

	ctl := filepath.Join(work, "control", filepath.Base(p.path))
	tree := filepath.Join(work, "tree", filepath.Base(p.path))
	for _, d := range []string{ctl, tree} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runT(t, exec.CommandContext(ctx, "dpkg-deb", "--control", p.path, ctl))
	if b, err := os.ReadFile(filepath.Join(ctl, "conffiles")); err != nil || strings.TrimSpace(string(b)) != "/"+conf {
		t.Errorf("conffiles %q (%v), want /%s", b, err, conf)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if fi, err := os.Stat(filepath.Join(ctl, s)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v", s, err)
		}
	}

	// dpkg-deb -c: "-rw-r----- root/root 1339 2026-12-05 08:05 ./etc/loa/agent.yaml"
	files := map[string]string{}
	for line := range strings.Lines(runT(t, exec.CommandContext(ctx, "dpkg-deb", "-c", p.path))) {
		f := strings.Fields(line)
		if len(f) >= 6 {
			files[strings.TrimPrefix(f[5], "./")] = f[0] + " " + f[1]
		}
	}
	for path, want := range map[string]string{
		bin:                                      "-rwxr-xr-x root/root",
		unit:                                     "-rw-r--r-- root/root",
		conf:                                     "-rw-r----- root/root",
		"usr/share/doc/" + p.name + "/copyright": "-rw-r--r-- root/root",
		"usr/share/doc/" + p.name + "/changelog.gz": "-rw-r--r-- root/root",
		"usr/share/lintian/overrides/" + p.name:     "-rw-r--r-- root/root",
	} {
		if got := files[path]; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}

	runT(t, exec.CommandContext(ctx, "dpkg-deb", "-x", p.path, tree))
	f, err := elf.Open(filepath.Join(tree, bin))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ai := Arches[p.arch]
	if f.Machine != ai.Machine || f.Class != ai.Class {
		t.Errorf("%s is %v %v, want %v %v", bin, f.Machine, f.Class, ai.Machine, ai.Class)
	}
	if p.arch == "armhf" && armFlags(t, filepath.Join(tree, bin))&0x400 == 0 { // EF_ARM_ABI_FLOAT_HARD
		t.Errorf("%s is not hard-float", bin)
	}
	libs, _ := f.ImportedLibraries()
	if p.name == "loa-agent" {
		for _, l := range []string{"libasound.so.2", "libopus.so.0", "libc.so.6"} {
			if !slices.Contains(libs, l) {
				t.Errorf("%s does not link %s (links %v)", bin, l, libs)
			}
		}
	} else if len(libs) != 0 || f.Section(".interp") != nil {
		t.Errorf("%s links %v: the controller must build without cgo", bin, libs)
	}
}

// armFlags is e_flags of a 32-bit little-endian ELF file.
func armFlags(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h [40]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint32(h[36:])
}

// depNames is the package names of a Depends field, in order.
func depNames(depends string) []string {
	var names []string
	for d := range strings.SplitSeq(depends, ",") {
		if f := strings.Fields(d); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// chroot is a Debian root the test runs commands in.
type chroot struct {
	t    *testing.T
	ctx  context.Context
	root string
}

// run runs a command in the root and returns its output; it fails the test
// if the command fails.
func (c *chroot) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("in the chroot: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *chroot) try(args ...string) (string, error) {
	cmd := exec.CommandContext(c.ctx, "chroot", append([]string{c.root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// aptUpdate reads the mirror's package lists, again after a pause when the
// mirror is in the middle of a sync and serves an index of the wrong size.
func (c *chroot) aptUpdate() {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		out, err := c.try("apt-get", "update", "-qq", "-o", "Acquire::Retries=3")
		if err == nil {
			return
		}
		if attempt == 4 {
			c.t.Fatalf("in the chroot: apt-get update: %v\n%s", err, out)
		}
		c.t.Logf("apt-get update failed (attempt %d), trying again: %v\n%s", attempt, err, out)
		select {
		case <-c.ctx.Done():
			c.t.Fatal(c.ctx.Err())
		case <-time.After(time.Duration(attempt) * 30 * time.Second):
		}
	}
}

// path is a path inside the root as seen from the host.
func (c *chroot) path(p string) string { return filepath.Join(c.root, p) }

// mountProc mounts /proc in the root until the test ends.
func (c *chroot) mountProc() {
	c.t.Helper()
	if err := syscall.Mount("proc", c.path("proc"), "proc", 0, ""); err != nil {
		c.t.Logf("mount /proc in the chroot: %v (going on without it)", err)
		return
	}
	c.t.Cleanup(func() {
		if err := syscall.Unmount(c.path("proc"), syscall.MNT_DETACH); err != nil {
			c.t.Errorf("unmount %s: %v", c.path("proc"), err)
		}
	})
}

// newChroot unpacks a bookworm root with the packages' dependencies and
// systemd (not running) installed: debootstrap --variant=minbase once, kept
// as a tarball in the user cache folder, and the dependencies added once
// per list, kept the same way. A dependency named NAME:ARCH adds ARCH to
// the root's architectures (Debian multiarch).
func newChroot(ctx context.Context, t *testing.T, work string, deps []string) *chroot {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(cache, "loa-test")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(strings.Join(deps, " ")))
	withDeps := filepath.Join(cache, fmt.Sprintf("%s-minbase-%x.tar", suite, sum[:6]))
	c := &chroot{t: t, ctx: ctx, root: filepath.Join(work, "root")}
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(withDeps); err == nil {
		runT(t, exec.CommandContext(ctx, "tar", "-C", c.root, "-xf", withDeps))
		c.mountProc()
		return c
	}

	base := filepath.Join(cache, suite+"-minbase.tar")
	if _, err := os.Stat(base); err != nil {
		reachMirror(ctx, t)
		dir := filepath.Join(work, "debootstrap")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", suite, dir, mirror)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("debootstrap: %v\n%s", err, tail(out))
		}
		t.Logf("debootstrap %s in %v", suite, time.Since(start).Round(time.Second))
		saveTar(ctx, t, dir, base)
	}
	runT(t, exec.CommandContext(ctx, "tar", "-C", c.root, "-xf", base))
	c.mountProc()
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err == nil {
		err = os.WriteFile(c.path("etc/resolv.conf"), resolv, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var foreign []string
	for _, d := range deps {
		if _, arch, ok := strings.Cut(d, ":"); ok && !slices.Contains(foreign, arch) {
			foreign = append(foreign, arch)
			c.run("dpkg", "--add-architecture", arch)
		}
	}
	c.aptUpdate()
	c.run(append([]string{"apt-get", "install", "-y", "-qq", "--no-install-recommends"}, deps...)...)
	c.run("apt-get", "clean")
	t.Logf("installed %v in the root in %v", deps, time.Since(start).Round(time.Second))
	// Cache it without /proc's contents.
	tmp := withDeps + ".part"
	cmd := exec.CommandContext(ctx, "tar", "-C", c.root, "--exclude=./proc/*", "-cf", tmp, ".")
	runT(t, cmd)
	if err := os.Rename(tmp, withDeps); err != nil {
		t.Fatal(err)
	}
	return c
}

// reachMirror skips the test when the Debian mirror cannot be reached.
func reachMirror(ctx context.Context, t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, mirror+"/dists/"+suite+"/Release", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Skipf("debootstrap needs the Debian mirror, which does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Skipf("debootstrap needs the Debian mirror: %s answered %s", mirror, resp.Status)
	}
}

// saveTar writes dir as a tarball, whole or not at all.
func saveTar(ctx context.Context, t *testing.T, dir, file string) {
	t.Helper()
	tmp := file + ".part"
	runT(t, exec.CommandContext(ctx, "tar", "-C", dir, "-cf", tmp, "."))
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// tail is the end of long output.
func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

// checkInstall installs, upgrades, removes and purges the amd64 packages
// in a clean root with systemd installed but not running, then installs
// and purges each Raspberry Pi agent in the same root.
func checkInstall(ctx context.Context, t *testing.T, work string, agentA, loaA, agentB pkg, piAgents []pkg) {
	var deps []string
	for _, p := range append([]pkg{agentA, loaA}, piAgents...) {
		out := runT(t, exec.CommandContext(ctx, "dpkg-deb", "-f", p.path, "Depends"))
		for _, d := range depNames(out) {
			if p.arch != "amd64" {
				d += ":" + p.arch
			}
			deps = append(deps, d)
		}
	}
	deps = append(deps, "systemd") // for systemd-analyze verify --root; it does not run
	slices.Sort(deps)
	deps = slices.Compact(deps)
	c := newChroot(ctx, t, work, deps)
	if _, err := os.Stat(c.path("run/systemd/system")); err == nil {
		t.Fatal("the root has /run/systemd/system: the maintainer scripts would think systemd runs")
	}

	debs := c.path("tmp/debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]pkg{agentA, loaA, agentB}, piAgents...) {
		b, err := os.ReadFile(p.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(debs, filepath.Base(p.path)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inRoot := func(p pkg) string { return "/tmp/debs/" + filepath.Base(p.path) }

	// Install A: apt resolves the dependencies (already there, so offline).
	c.run("apt-get", "install", "-y", "--no-install-recommends", inRoot(agentA), inRoot(loaA))

	uid, gid := c.user("loa")
	if groups := strings.Fields(c.run("id", "-nG", "loa")); !slices.Contains(groups, "audio") || !slices.Contains(groups, "loa") {
		t.Errorf("user loa is in groups %v, want loa and audio", groups)
	}
	c.checkOwner("var/lib/loa-agent", uid, gid, fs.ModeDir|0o750)
	c.checkOwner("var/lib/loa", uid, gid, fs.ModeDir|0o750)
	c.checkOwner("etc/loa/agent.yaml", 0, gid, 0o640)
	c.checkOwner("etc/loa/loa.yaml", 0, gid, 0o640)
	for _, u := range []string{"loa-agent.service", "loa.service"} {
		if _, err := os.Lstat(c.path("etc/systemd/system/multi-user.target.wants/" + u)); err != nil {
			t.Errorf("%s is not enabled: %v", u, err)
		}
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, "systemd-analyze", "verify", "--root="+c.root,
			"/lib/systemd/system/loa-agent.service", "/lib/systemd/system/loa.service")
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	// The administrator edits the config and the box writes its cache; an
	// upgrade keeps the edit and installs the new binary.
	const edit = "\n# edited on the box by the test\n"
	conf := c.path("etc/loa/agent.yaml")
	appendFile(t, conf, edit)
	if err := os.WriteFile(c.path("var/lib/loa-agent/state.json"), []byte("{}"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.run("apt-get", "install", "-y", "--no-install-recommends", inRoot(agentB))
	if got := c.dpkgVersion("loa-agent"); got != versionB {
		t.Errorf("after the upgrade loa-agent is %q, want %q", got, versionB)
	}
	if b, err := os.ReadFile(conf); err != nil || !strings.HasSuffix(string(b), edit) {
		t.Errorf("the upgrade lost the edit of /etc/loa/agent.yaml (%v):\n%s", err, b)
	}
	c.checkOwner("etc/loa/agent.yaml", 0, gid, 0o640)
	if !same(t, c.path("usr/bin/loa-agent"), filepath.Join(work, "bin", versionB, "amd64", "loa-agent")) {
		t.Error("after the upgrade /usr/bin/loa-agent is not version B's binary")
	}
	if out := c.run("/usr/bin/loa-agent", "--help"); !strings.Contains(out, "usage: loa-agent") {
		t.Errorf("loa-agent --help in the root:\n%s", out)
	}

	// Remove: programs go, configuration and data stay.
	c.run("apt-get", "remove", "-y", "loa-agent", "loa")
	for _, gone := range []string{"usr/bin/loa-agent", "usr/bin/loa", "lib/systemd/system/loa-agent.service"} {
		if _, err := os.Stat(c.path(gone)); err == nil {
			t.Errorf("/%s is still there after remove", gone)
		}
	}
	for _, kept := range []string{"etc/loa/agent.yaml", "etc/loa/loa.yaml", "var/lib/loa-agent/state.json", "var/lib/loa"} {
		if _, err := os.Stat(c.path(kept)); err != nil {
			t.Errorf("remove deleted /%s: %v", kept, err)
		}
	}

	// Purge: configuration and data go too.
	c.run("apt-get", "purge", "-y", "loa-agent", "loa")
	for _, gone := range []string{"etc/loa", "var/lib/loa-agent", "var/lib/loa"} {
		if _, err := os.Stat(c.path(gone)); err == nil {
			t.Errorf("/%s is still there after purge", gone)
		}
	}
	if out, _ := c.try("dpkg-query", "-W", "-f=${Status}", "loa-agent"); strings.Contains(out, "config-files") {
		t.Errorf("loa-agent after purge: %s", out)
	}

	for _, p := range piAgents {
		t.Run("install "+p.arch, func(t *testing.T) { checkPiInstall(ctx, t, c, work, inRoot(p), p) })
	}
}

// checkPiInstall installs a Raspberry Pi agent (deb, a path in the root)
// as a foreign architecture of the root: apt must find its dependencies
// for that architecture. The installed binary then runs under qemu-user
// with the root's libraries (the dynamic loader, libc, libasound2 and
// libopus0 that dpkg installed), and the package purges cleanly.
func checkPiInstall(ctx context.Context, t *testing.T, c *chroot, work, deb string, p pkg) {
	c.run("apt-get", "install", "-y", "--no-install-recommends", deb)
	if got := strings.TrimSpace(c.run("dpkg-query", "-W", "-f=${Architecture} ${Version} ${Status}", "loa-agent")); got != p.arch+" "+p.version+" install ok installed" {
		t.Errorf("loa-agent in the root: %q, want %s %s installed", got, p.arch, p.version)
	}
	if !same(t, c.path("usr/bin/loa-agent"), filepath.Join(work, "bin", p.version, p.arch, "loa-agent")) {
		t.Errorf("/usr/bin/loa-agent is not the %s build", p.arch)
	}
	if _, err := os.Lstat(c.path("etc/systemd/system/multi-user.target.wants/loa-agent.service")); err != nil {
		t.Errorf("loa-agent.service is not enabled: %v", err)
	}
	// A cgo program whose loader and libc came from different builds spins
	// forever (see e2e's emulated boxes): a deadline, not a hang.
	run, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	qemu := Arches[p.arch].Qemu
	cmd := exec.CommandContext(run, qemu, "-L", c.root, c.path("usr/bin/loa-agent"), "--help")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "usage: loa-agent") {
		t.Errorf("the installed %s agent under %s: %v\n%s", p.arch, qemu, err, tail(out))
	}
	c.run("apt-get", "purge", "-y", "loa-agent:"+p.arch)
	if _, err := os.Stat(c.path("usr/bin/loa-agent")); err == nil {
		t.Errorf("/usr/bin/loa-agent is still there after purging the %s agent", p.arch)
	}
}

// user is the uid and gid of a user of the root.
func (c *chroot) user(name string) (uid, gid int) {
	c.t.Helper()
	// loa:x:100:101:Loa loudspeakers,,,:/nonexistent:/usr/sbin/nologin
	f := strings.Split(strings.TrimSpace(c.run("getent", "passwd", name)), ":")
	if len(f) < 7 {
		c.t.Fatalf("getent passwd %s: %q", name, f)
	}
	uid, _ = strconv.Atoi(f[2])
	gid, _ = strconv.Atoi(f[3])
	if uid == 0 || uid >= 1000 {
		c.t.Errorf("user %s has uid %d, want a system user", name, uid)
	}
	if f[6] != "/usr/sbin/nologin" {
		c.t.Errorf("user %s has the shell %s, want /usr/sbin/nologin", name, f[6])
	}
	return uid, gid
}

// checkOwner checks a path's owner, group and mode.
func (c *chroot) checkOwner(p string, uid, gid int, mode fs.FileMode) {
	c.t.Helper()
	fi, err := os.Stat(c.path(p))
	if err != nil {
		c.t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode()&(fs.ModeType|fs.ModePerm) != mode {
		c.t.Errorf("/%s: %d:%d %v, want %d:%d %v", p, st.Uid, st.Gid, fi.Mode(), uid, gid, mode)
	}
}

// dpkgVersion is the installed version of a package in the root.
func (c *chroot) dpkgVersion(name string) string {
	c.t.Helper()
	return strings.TrimSpace(c.run("dpkg-query", "-W", "-f=${Version}", name))
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// same reports whether two files have the same bytes.
func same(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
