//go:build cgo && linux

package otosink

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
)

const (
	childEnv   = "LOA_OTOSINK_CHILD"
	testVolume = 70
	media      = "../testdata/tone.wav"
)

// transcoded is tone.wav in the sound card's format, as the agent would
// cache it.
func transcoded(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open(media)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pcm bytes.Buffer
	if _, err := audio.Transcode(f, audio.DefaultFormat, &pcm); err != nil {
		t.Fatal(err)
	}
	return pcm.Bytes()
}

// TestPlayChild is the playing half of TestPlayCaptured, run in a child
// process because ALSA reads ALSA_CONFIG_PATH once per process.
func TestPlayChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("run by TestPlayCaptured")
	}
	t0 := time.Now()
	sink, err := New(audio.DefaultFormat)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opened in %v", time.Since(t0))
	if again, err := New(audio.DefaultFormat); err != nil || again.ctx != sink.ctx {
		t.Fatalf("second New: %v", err)
	}
	if _, err := New(audio.Format{SampleRate: 44100, Channels: 2}); err == nil {
		t.Fatal("New with another format should fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcm := audio.NewGainReader(bytes.NewReader(transcoded(t)), audio.VolumeGain(testVolume))
	start := time.Now()
	if err := sink.Play(ctx, "tone", pcm); err != nil {
		t.Fatal(err)
	}
	t.Logf("played 1 s in %v", time.Since(start))
	// A cancelled Play returns promptly with the context's error.
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	if err := sink.Play(cctx, "cut", bytes.NewReader(audio.Silence(audio.DefaultFormat, 10*time.Second))); err != context.DeadlineExceeded {
		t.Fatalf("cancelled Play = %v", err)
	}
}

// TestPlayCaptured plays tone.wav at volume 70 through oto, ALSA and a
// private PulseAudio null sink, captures what reached ALSA with its file
// plugin, and checks it is the media × VolumeGain(70), sample for sample.
func TestPlayCaptured(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		t.Skip("in the child")
	}
	pa, err := exec.LookPath("pulseaudio")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
		}
		t.Skip("pulseaudio is not installed")
	}
	dir, err := os.MkdirTemp("", "otosink") // short: a unix socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	runtime := filepath.Join(dir, "pulse")
	home := filepath.Join(dir, "home")
	for _, d := range []string{runtime, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(runtime, "native")
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "HOME="+home, "PULSE_SERVER=", "DBUS_SESSION_BUS_ADDRESS=")
	paLog := filepath.Join(dir, "pulseaudio.log")
	logFile, err := os.Create(paLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(pa, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
		"-L", "module-null-sink sink_name=nullsink rate=48000 channels=2",
		"-L", "module-native-protocol-unix socket="+socket+" auth-anonymous=1")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary too
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitForSocket(t, socket, paLog)

	capture := filepath.Join(dir, "capture.raw")
	conf := filepath.Join(dir, "asound.conf")
	asound := fmt.Sprintf(`pcm.!default { type file  slave.pcm { type pulse  server "unix:%s" }  file "%s"  format "raw" }`+"\n", socket, capture)
	if err := os.WriteFile(conf, []byte(asound), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPlayChild$", "-test.count=1", "-test.v")
	child.Env = append(env, childEnv+"=1", "ALSA_CONFIG_PATH="+conf)
	out, err := child.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		log, _ := os.ReadFile(paLog)
		t.Fatalf("child: %v\npulseaudio:\n%s", err, log)
	}

	raw, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	got := audio.Floats(raw)
	want := audio.Floats(transcoded(t))
	gain := audio.VolumeGain(testVolume)
	for i := range want {
		want[i] *= gain
	}
	const ch = 2
	const quiet = 1e-4
	g0, g1 := span(got, quiet, ch)
	w0, w1 := span(want, quiet, ch)
	if g0 < 0 {
		t.Fatalf("capture of %d bytes is silent", len(raw))
	}
	t.Logf("capture: %d frames, sound from frame %d to %d; media sound from %d to %d",
		len(got)/ch, g0/ch, g1/ch, w0/ch, w1/ch)
	if d := (g1 - g0) - (w1 - w0); d < -5*48*ch || d > 5*48*ch {
		t.Errorf("sound lasts %d frames, media %d", (g1-g0)/ch, (w1-w0)/ch)
	}
	if len(got)-g0 < len(want)-w0 {
		t.Fatalf("capture ends %d frames early", (len(want)-w0-(len(got)-g0))/ch)
	}
	var maxDiff float64
	at := 0
	for i := 0; i < len(want)-w0; i++ {
		if d := math.Abs(float64(got[g0+i] - want[w0+i])); d > maxDiff {
			maxDiff, at = d, i
		}
	}
	t.Logf("max |captured - media × %.2f| = %g", gain, maxDiff)
	if maxDiff > 1e-3 {
		t.Errorf("captured sample %d differs by %g", at, maxDiff)
	}
}

// span returns the first and last sample index (frame aligned, last
// exclusive) louder than quiet, or -1, -1.
func span(x []float32, quiet float64, ch int) (int, int) {
	first, last := -1, -1
	for i, v := range x {
		if math.Abs(float64(v)) > quiet {
			if first < 0 {
				first = i - i%ch
			}
			last = i - i%ch + ch
		}
	}
	return first, last
}

func waitForSocket(t *testing.T, socket, logPath string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("pulseaudio did not open %s: %v\n%s", socket, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
