package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Arch is how Go builds for a Debian architecture, what its binaries must
// be, and the qemu-user emulator that runs them on this machine ("" for
// the machine's own).
type Arch struct {
	GOARCH, CC, Triplet string
	Machine             elf.Machine
	Class               elf.Class
	Qemu                string
}

// Arches are the architectures Loa ships for: the agent for all three, the
// controller for amd64 and arm64.
var Arches = map[string]Arch{
	"amd64": {"amd64", "gcc", "x86_64-linux-gnu", elf.EM_X86_64, elf.ELFCLASS64, ""},
	"arm64": {"arm64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu", elf.EM_AARCH64, elf.ELFCLASS64, "qemu-aarch64"},
	"armhf": {"arm", "arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf", elf.EM_ARM, elf.ELFCLASS32, "qemu-arm"},
}

// Maintainer is the packages' Maintainer field (the Makefile's default).
const Maintainer = "Loa maintainers <loa@loa-commune.org>"

// Build compiles program name (loa or loa-agent) for arch at version as
// `make cross` does, and packages it with nfpm and the repository's
// packaging files as `make packages` does, under work; it returns the
// .deb's path. repo is the repository's root.
func Build(ctx context.Context, repo, work, name, arch, version string) (string, error) {
	ai, ok := Arches[arch]
	if !ok {
		return "", fmt.Errorf("no architecture %q", arch)
	}
	bindir := filepath.Join(work, "bin", version, arch)
	ldflags := "-s -w"
	env := append(os.Environ(), "GOOS=linux", "GOARCH="+ai.GOARCH, "GOARM=7")
	if name == "loa-agent" {
		ldflags += " -X github.com/loa-commune/loa/device.Version=" + version
		env = append(env, "CGO_ENABLED=1", "CC="+ai.CC,
			"PKG_CONFIG_LIBDIR=/usr/lib/"+ai.Triplet+"/pkgconfig:/usr/share/pkgconfig")
	} else {
		env = append(env, "CGO_ENABLED=0")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags,
		"-o", filepath.Join(bindir, name), "./cmd/"+name)
	cmd.Dir, cmd.Env = repo, env
	if err := run(cmd); err != nil {
		return "", err
	}
	docdir := filepath.Join(work, "doc")
	if err := os.MkdirAll(docdir, 0o755); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(docdir, "changelog.gz")); err != nil {
		if err := gzipFile(filepath.Join(repo, "packaging", "changelog"), filepath.Join(docdir, "changelog.gz")); err != nil {
			return "", err
		}
	}
	out := filepath.Join(work, "dist", fmt.Sprintf("%s_%s_%s.deb", name, version, arch))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	cmd = exec.CommandContext(ctx, "go", "tool", "-modfile=packaging/tools/go.mod", "nfpm", "package",
		"--config", "packaging/nfpm/"+name+".yaml", "--packager", "deb", "--target", out)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "VERSION="+version, "DEB_ARCH="+arch, "BINDIR="+bindir,
		"DOCDIR="+docdir, "MAINTAINER="+Maintainer)
	return out, run(cmd)
}

// gzipFile writes src gzipped at the best compression, without a name or
// time (as gzip -9n), as Debian wants changelogs.
func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

// run runs cmd, with its output in the error if it fails.
func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}
