// Package pulsetest starts a private PulseAudio server with a null sink for
// tests, and writes an ALSA config whose default device plays into it
// through the ALSA "file" plugin, so a test can read back exactly the
// samples a process sent to the sound card (float32 LE interleaved stereo at
// 48 kHz, as oto writes them; the leading silence varies).
//
// ALSA reads ALSA_CONFIG_PATH once per process, so the playing side must be
// a child process started with Server.Env().
package pulsetest

import (
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running private PulseAudio.
type Server struct {
	env     []string
	conf    string
	capture string
	socket  string
	dir     string
}

// Start runs PulseAudio for the test and stops it at cleanup. Without
// pulseaudio installed the test is skipped, or fails when CI=true.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := startServer(tb, "module-null-sink sink_name=nullsink rate=48000 channels=2")
	asound := fmt.Sprintf(`pcm.!default { type file  slave.pcm { type pulse  server "unix:%s" }  file "%s"  format "raw" }`+"\n", s.socket, s.capture)
	if err := os.WriteFile(s.conf, []byte(asound), 0o644); err != nil {
		tb.Fatal(err)
	}
	return s
}

// startServer runs PulseAudio with the given modules besides the native
// protocol.
func startServer(tb testing.TB, modules ...string) *Server {
	tb.Helper()
	pa, err := exec.LookPath("pulseaudio")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
		}
		tb.Skip("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
	}
	dir, err := os.MkdirTemp("", "pulse") // short: a unix socket path is limited
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	runtime, home := filepath.Join(dir, "pulse"), filepath.Join(dir, "home")
	for _, d := range []string{runtime, home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	socket := filepath.Join(runtime, "native")
	s := &Server{
		env:     append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "HOME="+home, "PULSE_SERVER=", "DBUS_SESSION_BUS_ADDRESS="),
		conf:    filepath.Join(dir, "asound.conf"),
		capture: filepath.Join(dir, "capture.raw"),
		socket:  socket,
		dir:     dir,
	}
	paLog := filepath.Join(dir, "pulseaudio.log")
	logFile, err := os.Create(paLog)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	args := []string{"-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no"}
	for _, m := range append(modules, "module-native-protocol-unix socket="+socket+" auth-anonymous=1") {
		args = append(args, "-L", m)
	}
	cmd := exec.Command(pa, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary too
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitForSocket(tb, socket, paLog)
	return s
}

// Env is the environment for a child process that plays into this server.
func (s *Server) Env() []string { return append(s.env, "ALSA_CONFIG_PATH="+s.conf) }

// Captured returns what has been played so far.
func (s *Server) Captured(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(s.capture)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	return b
}

// Span returns the first and last sample index (frame aligned, last
// exclusive) louder than quiet, or -1, -1 when all is quieter.
func Span(x []float32, quiet float64, channels int) (int, int) {
	first, last := -1, -1
	for i, v := range x {
		if math.Abs(float64(v)) > quiet {
			if first < 0 {
				first = i - i%channels
			}
			last = i - i%channels + channels
		}
	}
	return first, last
}

func waitForSocket(tb testing.TB, socket, logPath string) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", socket)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			tb.Fatalf("pulseaudio did not open %s: %v\n%s", socket, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Boxes is a PulseAudio whose one null sink has a channel per box: box i
// plays into the mono sink "box<i>", which is channel i of the null sink,
// and a recorder takes the null sink's output. What every box played is
// then on one clock, a channel each, so the offsets between the boxes'
// sounds are measured to the sample.
type Boxes struct {
	*Server
	n        int
	recorder *exec.Cmd
}

// StartBoxes runs PulseAudio for n boxes (1 to 8) and starts recording.
func StartBoxes(tb testing.TB, n int) *Boxes {
	tb.Helper()
	if n < 1 || n > 8 {
		tb.Fatalf("pulsetest: %d boxes: use 1 to 8", n)
	}
	var chans []string
	for i := range n {
		chans = append(chans, fmt.Sprintf("aux%d", i))
	}
	modules := []string{fmt.Sprintf("module-null-sink sink_name=nullsink rate=48000 channels=%d channel_map=%s", n, strings.Join(chans, ","))}
	for i, ch := range chans {
		modules = append(modules, fmt.Sprintf("module-remap-sink sink_name=box%d master=nullsink channels=1 channel_map=mono master_channel_map=%s remix=no", i, ch))
	}
	b := &Boxes{Server: startServer(tb, modules...), n: n}
	asound := fmt.Sprintf(`pcm.!default { type pulse  server "unix:%s" }`+"\n", b.socket)
	if err := os.WriteFile(b.conf, []byte(asound), 0o644); err != nil {
		tb.Fatal(err)
	}
	parec, err := exec.LookPath("parec")
	if err != nil {
		tb.Fatal("parec is not installed (apt-get install pulseaudio-utils)")
	}
	out, err := os.Create(b.capture)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	b.recorder = exec.Command(parec, "--server=unix:"+b.socket, "--device=nullsink.monitor", "--raw",
		"--format=float32le", "--rate=48000", fmt.Sprintf("--channels=%d", n), "--channel-map="+strings.Join(chans, ","), "--latency-msec=20")
	b.recorder.Env, b.recorder.Stdout = b.env, out
	b.recorder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.recorder.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.recorder.Process.Kill()
		b.recorder.Wait()
	})
	return b
}

// BoxEnv is the environment for the process of box i.
func (b *Boxes) BoxEnv(i int) []string {
	return append(b.Env(), fmt.Sprintf("PULSE_SINK=box%d", i))
}

// Channels returns what each box played so far, one slice per box.
func (b *Boxes) Channels(tb testing.TB) [][]float32 {
	tb.Helper()
	raw := b.Captured(tb)
	frames := len(raw) / (4 * b.n)
	out := make([][]float32, b.n)
	for i := range out {
		out[i] = make([]float32, frames)
	}
	for f := range frames {
		for c := range b.n {
			o := 4 * (f*b.n + c)
			out[c][f] = math.Float32frombits(uint32(raw[o]) | uint32(raw[o+1])<<8 | uint32(raw[o+2])<<16 | uint32(raw[o+3])<<24)
		}
	}
	return out
}

// Onset returns the index of the first sample louder than quiet, or -1.
func Onset(x []float32, quiet float64) int {
	for i, v := range x {
		if math.Abs(float64(v)) > quiet {
			return i
		}
	}
	return -1
}

// PulseServer is the server's address for PulseAudio clients (PULSE_SERVER),
// e.g. an ffmpeg that captures from one of its sources.
func (s *Server) PulseServer() string { return "unix:" + s.socket }

// Play plays a sound file into sink (paplay) and returns once it has
// played.
func (s *Server) Play(tb testing.TB, sink, path string) {
	tb.Helper()
	cmd := exec.Command("paplay", "--server="+s.PulseServer(), "--device="+sink, path)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("paplay %s: %v: %s", path, err, out)
	}
}
