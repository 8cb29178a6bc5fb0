package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
)

// benchProc is a `loa serve` started by `loa bench` as a child process.
type benchProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	client  *api.Client
	site    string
	broker  string // where boxes connect
	cleanup func()
}

// running is the line `loa serve` writes once it listens.
var running = regexp.MustCompile(`is running: API (https?://\S+), MQTT (\S+),`)

// startBenchController starts `loa serve` on loopback with its data in dir
// (a temporary folder when empty, removed by stop), with an external broker
// if given and extra settings in its config file, and waits until it answers.
func startBenchController(ctx context.Context, dir, broker string, extra map[string]any) (*benchProc, error) {
	p := &benchProc{site: "bench", cleanup: func() {}, exited: make(chan struct{})}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "loa-bench-")
		if err != nil {
			return nil, err
		}
		p.cleanup = func() { os.RemoveAll(tmp) }
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"site": p.site, "data": filepath.Join(dir, "data"), "http": "127.0.0.1:0", "mqtt": "127.0.0.1:0",
		"all_clear_text": "", // measure the emergencies alone
	}
	if broker != "" {
		cfg["broker"] = broker
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		p.cleanup()
		return nil, err
	}
	logPath := filepath.Join(dir, "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		p.cleanup()
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		p.cleanup()
		return nil, err
	}
	p.cmd = exec.Command(exe, "serve", "--config", cfgPath)
	for _, kv := range os.Environ() { // the config file says it all
		if !strings.HasPrefix(kv, "LOA_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	found := make(chan []string, 1)
	p.cmd.Stdout = logFile
	p.cmd.Stderr = &lineWatch{w: logFile, match: func(line string) {
		if m := running.FindStringSubmatch(line); m != nil {
			select {
			case found <- m:
			default:
			}
		}
	}}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		p.cleanup()
		return nil, fmt.Errorf("start the controller: %w", err)
	}
	go func() { p.cmd.Wait(); logFile.Close(); close(p.exited) }() // ends with the child
	rm := p.cleanup
	p.cleanup = func() { p.kill(); rm() }
	select {
	case m := <-found:
		p.broker = m[2]
		token, err := os.ReadFile(filepath.Join(dir, "data", auth.AdminTokenFile))
		if err != nil {
			p.cleanup()
			return nil, err
		}
		p.client = api.NewClient(m[1], strings.TrimSpace(string(token)))
		return p, nil
	case <-p.exited:
		log, _ := os.ReadFile(logPath)
		p.cleanup()
		return nil, fmt.Errorf("the controller stopped: %s", strings.TrimSpace(string(log)))
	case <-time.After(2 * time.Minute):
		p.cleanup()
		return nil, errors.New("the controller did not start in 2 minutes")
	case <-ctx.Done():
		p.cleanup()
		return nil, ctx.Err()
	}
}

// kill asks the controller to stop, and kills it after 15 s.
func (p *benchProc) kill() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop stops the controller and removes a temporary folder.
func (p *benchProc) stop() { p.cleanup() }

// lineWatch writes to w and hands each complete line to match.
type lineWatch struct {
	w       io.Writer
	match   func(string)
	partial []byte
}

func (l *lineWatch) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.match(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return l.w.Write(b)
}

// streamServerLine starts the line `loa bench --serve-http-stream` writes
// once it listens, before its URL.
const streamServerLine = "http stream server at "

// streamProc is the benchmark's HTTP stream server, a child process.
type streamProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	url    string
}

// startBenchStreamServer starts `loa bench --serve-http-stream` (its CPU
// and memory its own, as a controller's would be) and waits for its URL.
func startBenchStreamServer(ctx context.Context, liveArgs []string) (*streamProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &streamProc{exited: make(chan struct{})}
	p.cmd = exec.Command(exe, append([]string{"bench", "--serve-http-stream"}, liveArgs...)...)
	p.cmd.Stderr = os.Stderr
	found := make(chan string, 1)
	p.cmd.Stdout = &lineWatch{w: io.Discard, match: func(line string) {
		if url, ok := strings.CutPrefix(line, streamServerLine); ok {
			select {
			case found <- url:
			default:
			}
		}
	}}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the stream server: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	select {
	case p.url = <-found:
		return p, nil
	case <-p.exited:
		return nil, errors.New("the stream server stopped")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("the stream server did not start in 30 s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop asks the server to stop, and kills it after 10 s.
func (p *streamProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
