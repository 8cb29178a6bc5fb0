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
	"syscall"
	"testing"
	"time"
)

// Server is a running private PulseAudio.
type Server struct {
	env     []string
	conf    string
	capture string
}

// Start runs PulseAudio for the test and stops it at cleanup. Without
// pulseaudio installed the test is skipped, or fails when CI=true.
func Start(tb testing.TB) *Server {
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
	}
	paLog := filepath.Join(dir, "pulseaudio.log")
	logFile, err := os.Create(paLog)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(pa, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
		"-L", "module-null-sink sink_name=nullsink rate=48000 channels=2",
		"-L", "module-native-protocol-unix socket="+socket+" auth-anonymous=1")
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
	asound := fmt.Sprintf(`pcm.!default { type file  slave.pcm { type pulse  server "unix:%s" }  file "%s"  format "raw" }`+"\n", socket, s.capture)
	if err := os.WriteFile(s.conf, []byte(asound), 0o644); err != nil {
		tb.Fatal(err)
	}
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
