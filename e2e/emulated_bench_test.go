package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/packaging"
)

// BenchmarkPiAgentRSS measures the resident memory of the agent of each
// architecture's .deb, idle and while it plays 30 s of speech into a WAV
// sink: amd64 natively, arm64 and armhf under qemu-user (-L /).
//
// Under qemu-user the process measured is the emulator, whose RSS holds
// qemu itself and its translated code next to the guest's memory. A static
// Go program that only sleeps, run under the same qemu, gives that
// emulator's share (its "MB-qemu-baseline"); "-est" metrics are the raw
// figure minus it, an estimate of what a Raspberry Pi would show.
func BenchmarkPiAgentRSS(b *testing.B) {
	needMediaTools(b)
	for _, arch := range []string{"amd64", "arm64", "armhf"} {
		b.Run(arch, func(b *testing.B) { benchAgentRSS(b, arch) })
	}
}

func benchAgentRSS(b *testing.B, arch string) {
	var agent string
	var qemu []string // the command line the agent runs under; nil natively
	if q := packaging.Arches[arch].Qemu; q != "" {
		agent, qemu = agentFromDeb(b, arch), []string{q, "-L", "/"}
	} else {
		agent = nativeAgentFromDeb(b, arch)
	}
	if fi, err := os.Stat(agent); err == nil {
		b.Logf("%s: /usr/bin/loa-agent is %d bytes", arch, fi.Size())
	}
	// Natively, the sleeping program's RSS is what the Go runtime alone
	// takes; under qemu it is the baseline subtracted below.
	baseline := sleeperRSS(b, arch, qemu)
	if qemu == nil {
		b.ReportMetric(mb(baseline), "MB-rss-sleeping-go")
	}
	dir := b.TempDir()
	mp3 := filepath.Join(dir, "speech.mp3")
	mediatest.FFmpeg(b, "-stream_loop", "-1", "-i", speechWAV(b, dir, "Thông báo của ủy ban nhân dân xã về lịch tiêm vắc xin cho trẻ em."),
		"-af", "apad=pad_dur=1", "-t", "30", "-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", mp3)

	for i := 0; i < b.N; i++ {
		c := newCommune(b, "", "")
		id := "box-" + arch
		cfg := c.addBox(id, "thon-1")
		args := append(append([]string{}, qemu...), agent, "--config", cfg,
			"--cache", filepath.Join(c.dir, id, "cache"), "--output", "wav:"+filepath.Join(c.dir, id, "played"))
		p := proc(b, c.dir, id, args...)
		eventually(b, 2*time.Minute, id+" online and idle", func() bool {
			s := c.status()[id]
			return s.Online && s.State == "idle"
		})
		var media struct{ ID string }
		c.cli.json(&media, "media", "add", mp3)
		time.Sleep(5 * time.Second) // idle for a while after start-up
		idleRSS, _ := procStats(b, p.Process.Pid)

		// Announce 30 s ahead so the download and decode (slow under
		// emulation) are done before play time and not counted as playing.
		var ann struct{ ID string }
		c.cli.json(&ann, "announce", "--media", media.ID, "--all", "--at", time.Now().Add(30*time.Second).Format(time.RFC3339))
		eventually(b, 3*time.Minute, id+" playing", func() bool { return c.report(ann.ID)[id].Status == "playing" })
		var peakRSS int64
		eventually(b, 3*time.Minute, id+" played", func() bool {
			rss, _ := procStats(b, p.Process.Pid)
			peakRSS = max(peakRSS, rss)
			return c.report(ann.ID)[id].Status == "played"
		})

		b.ReportMetric(mb(idleRSS), "MB-rss-idle")
		b.ReportMetric(mb(peakRSS), "MB-rss-playing")
		if qemu != nil {
			b.ReportMetric(mb(baseline), "MB-qemu-baseline")
			b.ReportMetric(mb(idleRSS-baseline), "MB-rss-idle-est")
			b.ReportMetric(mb(peakRSS-baseline), "MB-rss-playing-est")
		}
	}
}

// mb is bytes in MB as the other RSS benchmarks report them (2^20 bytes).
func mb(n int64) float64 { return float64(n) / (1 << 20) }

// nativeAgentFromDeb is agentFromDeb for the machine's own architecture,
// which needs no emulator: the agent /usr/bin/loa-agent of arch's .deb.
func nativeAgentFromDeb(b *testing.B, arch string) string {
	b.Helper()
	for _, p := range []string{packaging.Arches[arch].CC, "dpkg-deb"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Skipf("%s is not installed (scripts/deps.sh cross installs it)", p)
		}
	}
	work := b.TempDir()
	deb, err := packaging.Build(context.Background(), "..", work, "loa-agent", arch, "0.13.0")
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(work, "root")
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		b.Fatalf("unpack %s: %v\n%s", deb, err, out)
	}
	return filepath.Join(root, "usr", "bin", "loa-agent")
}

// sleeperRSS is the RSS of a static Go program for arch that only sleeps,
// run under the command line qemu (natively if nil): under an emulator, the
// emulator's own share of an emulated process's RSS.
func sleeperRSS(b *testing.B, arch string, qemu []string) int64 {
	b.Helper()
	dir := b.TempDir()
	src := filepath.Join(dir, "sleep.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(time.Hour) }\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "sleep")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+packaging.Arches[arch].GOARCH, "GOARM=7", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the sleeping program for %s: %v\n%s", arch, err, out)
	}
	args := append(append([]string{}, qemu...), bin)
	p := proc(b, dir, "sleep-"+arch, args...)
	time.Sleep(3 * time.Second) // past the runtime's start-up
	rss, _ := procStats(b, p.Process.Pid)
	return rss
}
