package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/testnet"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loa-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		for _, b := range []struct{ name, pkg, cgo string }{{"loa", "../cmd/loa", "0"}, {"loa-agent", "../cmd/loa-agent", "1"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.name, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func freePort(t testing.TB) string {
	t.Helper()
	return testnet.FreePort(t)
}

// proc starts a long-running binary whose output goes to a log file in dir,
// and stops it (SIGTERM, then SIGKILL) at test end.
func proc(t testing.TB, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	return procEnv(t, nil, dir, name, args...)
}

// procEnv is proc with the environment env (nil: this process's).
func procEnv(t testing.TB, env []string, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	bin := args[0]
	if !strings.Contains(bin, "/") {
		if p := filepath.Join(binDir, bin); fileExists(p) {
			bin = p
		}
	}
	cmd := exec.Command(bin, args[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Env = logf, logf, env
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop on SIGTERM within 10 s", name)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 4000))
		}
	})
	return cmd
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// cli runs the staff CLI as a user would and returns stdout, stderr and the
// exit code.
type cli struct {
	t   testing.TB
	env []string
	bin string
}

func (c cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("run loa %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// ok runs a command that must succeed.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("loa %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// json runs a command with -o json and decodes its output.
func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("loa %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually polls cond until it is true or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitHTTP(t testing.TB, url string) {
	t.Helper()
	eventually(t, 20*time.Second, "the controller at "+url, func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// startMosquitto runs Debian's mosquitto on a free loopback port.
func startMosquitto(t testing.TB, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/mosquitto"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("mosquitto is not installed: apt-get install mosquitto")
			}
			t.Skip("mosquitto is not installed: apt-get install mosquitto")
		}
		bin = "/usr/sbin/mosquitto"
	}
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if os.Getuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	proc(t, dir, "mosquitto", bin, "-c", conf)
	eventually(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return "tcp://" + addr
}
