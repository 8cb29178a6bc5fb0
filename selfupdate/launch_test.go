package selfupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

const waitFor = 20 * time.Second

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// trialBuild is testdata/trialbuild compiled: a real program the launcher
// starts as a trial build.
func trialBuild(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "selfupdate-test")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "trialbuild")
		cmd := exec.Command("go", "build", "-o", buildPath, "./testdata/trialbuild")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build trialbuild: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// install puts the trial build into store as version of rollout, the way the
// agent does: a verified download in partial/, then Install.
func install(t *testing.T, store *Store, version, rollout string) string {
	t.Helper()
	data, err := os.ReadFile(trialBuild(t))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte(version)...) // another build, another hash
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if err := os.WriteFile(store.PartialPath(sha), data, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := store.Install(store.PartialPath(sha), version, sha, rollout)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed build: %v, %v", fi, err)
	}
	return path
}

type execCall struct {
	path       string
	argv, env  []string
	calledWith bool
}

// launcher is the packaged binary v0.13.0 with a trial build that behaves
// as mode says.
func launcher(t *testing.T, store *Store, mode string, trial time.Duration) (*Launcher, *execCall, string) {
	record := filepath.Join(t.TempDir(), "seen")
	call := &execCall{}
	l := &Launcher{
		Dir:          store.Dir(),
		Version:      "v0.13.0",
		Path:         "/usr/bin/loa-agent",
		Args:         []string{"/usr/bin/loa-agent", store.Dir(), record},
		Env:          []string{"PATH=/usr/bin", "LOA_TEST_TRIAL=" + mode, "WATCHDOG_PID=1"},
		TrialTimeout: trial,
		Exec: func(path string, argv, env []string) error {
			call.path, call.argv, call.env, call.calledWith = path, argv, env, true
			return nil
		},
	}
	return l, call, record
}

func load(t *testing.T, store *Store) State {
	t.Helper()
	st, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func launchAsync(ctx context.Context, l *Launcher) <-chan Decision {
	out := make(chan Decision, 1)
	go func() { out <- l.Launch(ctx) }()
	return out
}

func TestTrialThatConfirmsIsKept(t *testing.T) {
	store, err := Open(filepath.Join(t.TempDir(), "agent"))
	if err != nil {
		t.Fatal(err)
	}
	build := install(t, store, "v0.14.0", "r1")
	l, call, record := launcher(t, store, "confirm", time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	done := launchAsync(ctx, l)
	eventually(t, "the trial to confirm", func() bool { return isConfirmed(store, Trial{Path: build}) })
	// Past the deadline, the supervisor still runs the confirmed build.
	time.Sleep(time.Until(started.Add(l.TrialTimeout + 500*time.Millisecond)))
	select {
	case d := <-done:
		t.Fatalf("launch returned %+v while the confirmed build runs", d)
	default:
	}
	cancel() // the stop signal: passed on as SIGTERM; the build exits 7
	var d Decision
	select {
	case d = <-done:
	case <-time.After(waitFor):
		t.Fatal("launch did not return after the stop")
	}
	if d.Run || d.Code != 7 || call.calledWith {
		t.Fatalf("decision %+v (exec %v), want exit 7 of the build", d, call.calledWith)
	}
	st := load(t, store)
	if st.Current == nil || st.Current.Path != build || st.Current.Version != "v0.14.0" || st.Previous != nil || st.Trial != nil || len(st.Failed) != 0 {
		t.Fatalf("state %+v", st)
	}
	if st.Status == nil || st.Status.Status != protocol.UpdateHealthy || st.Status.Rollout != "r1" {
		t.Fatalf("status %+v", st.Status)
	}
	seen, _ := os.ReadFile(record)
	for _, want := range []string{EnvTrial + "=r1\n", EnvLauncher + "=/usr/bin/loa-agent\n", "WATCHDOG_PID=\n", "args=" + store.Dir() + " " + record + "\n"} {
		if !strings.Contains(string(seen), want) {
			t.Errorf("the trial build saw:\n%s\nwant %q", seen, want)
		}
	}

	// The next start execs the healthy build, marked so it does not launch.
	l, call, _ = launcher(t, store, "confirm", time.Second)
	if d := l.Launch(context.Background()); d.Execed != build || !call.calledWith {
		t.Fatalf("next start: %+v, want exec of %s", d, build)
	}
	if getenv(call.env, EnvLauncher) != "/usr/bin/loa-agent" || getenv(call.env, EnvTrial) != "" || call.argv[0] != build || len(call.argv) != 3 {
		t.Fatalf("exec %q with env %q", call.argv, call.env)
	}
}

func TestTrialThatHangsIsRolledBack(t *testing.T) {
	store, _ := Open(filepath.Join(t.TempDir(), "agent"))
	build := install(t, store, "v0.14.0", "r1")
	l, call, record := launcher(t, store, "hang", 500*time.Millisecond)
	var d Decision
	select {
	case d = <-launchAsync(context.Background(), l):
	case <-time.After(waitFor):
		t.Fatal("launch did not return")
	}
	if !d.Run || call.calledWith {
		t.Fatalf("decision %+v (exec %v), want the packaged binary to run", d, call.calledWith)
	}
	if _, err := os.Stat(record); err != nil {
		t.Fatalf("the trial build never ran: %v", err)
	}
	st := load(t, store)
	if st.Trial != nil || st.Current != nil || !st.HasFailed("v0.14.0") {
		t.Fatalf("state %+v", st)
	}
	if s := st.Status; s == nil || s.Status != protocol.UpdateRolledBack || s.Version != "v0.14.0" || s.Detail != "v0.14.0 did not reach the controller within 500ms" {
		t.Fatalf("status %+v", st.Status)
	}
	if _, err := os.Stat(build); err == nil {
		t.Fatal("the failed build is still installed")
	}
	// The next start runs the packaged binary without trying again.
	if d := l.Launch(context.Background()); !d.Run {
		t.Fatalf("next start %+v", d)
	}
}

func TestTrialThatExitsIsRolledBackToThePreviousBuild(t *testing.T) {
	store, _ := Open(filepath.Join(t.TempDir(), "agent"))
	// v0.14.0 is healthy and runs; v0.15.0 is on trial and exits 1.
	old := install(t, store, "v0.14.0", "r1")
	if err := store.Confirm("r1"); err != nil {
		t.Fatal(err)
	}
	install(t, store, "v0.15.0", "r2")
	l, call, _ := launcher(t, store, "exit1", time.Minute)
	var d Decision
	select {
	case d = <-launchAsync(context.Background(), l):
	case <-time.After(waitFor):
		t.Fatal("launch did not return")
	}
	if d.Execed != old || call.path != old {
		t.Fatalf("decision %+v, want exec of the previous build %s", d, old)
	}
	st := load(t, store)
	if st.Current == nil || st.Current.Path != old || st.Trial != nil || !st.HasFailed("v0.15.0") || st.HasFailed("v0.14.0") {
		t.Fatalf("state %+v", st)
	}
	if s := st.Status; s == nil || s.Status != protocol.UpdateRolledBack || s.Rollout != "r2" || !strings.Contains(s.Detail, "v0.15.0 stopped (exit status 1) before it reached the controller") {
		t.Fatalf("status %+v", st.Status)
	}
}

func TestStopDuringTrialKeepsItPending(t *testing.T) {
	store, _ := Open(filepath.Join(t.TempDir(), "agent"))
	install(t, store, "v0.14.0", "r1")
	l, _, record := launcher(t, store, "hang", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := launchAsync(ctx, l)
	eventually(t, "the trial build to start", func() bool { _, err := os.Stat(record); return err == nil })
	cancel()
	select {
	case d := <-done:
		if d.Run || d.Code != 0 {
			t.Fatalf("decision %+v, want exit 0", d)
		}
	case <-time.After(waitFor):
		t.Fatal("launch did not return")
	}
	st := load(t, store)
	if st.Trial == nil || st.Trial.Attempts != 1 || len(st.Failed) != 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestLaunchDecides(t *testing.T) {
	tests := []struct {
		name    string
		own     string
		env     []string
		current string // version of the current OTA build, "" none
		trial   string
		want    string // run, exec
	}{
		{"no updates", "v0.13.0", nil, "", "", "run"},
		{"packaged is newer", "v0.15.0", nil, "v0.14.0", "", "run"},
		{"packaged is as new", "v0.14.0", nil, "v0.14.0", "", "run"},
		{"current is newer", "v0.13.0", nil, "v0.14.0", "", "exec"},
		{"dev binary", "dev", nil, "v0.14.0", "", "exec"},
		{"already launched", "v0.13.0", []string{EnvLauncher + "=/usr/bin/loa-agent"}, "v0.14.0", "", "run"},
		{"trial not newer than the packaged binary", "v0.16.0", nil, "", "v0.15.0", "run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, _ := Open(filepath.Join(t.TempDir(), "agent"))
			if tt.current != "" {
				install(t, store, tt.current, "r1")
				if err := store.Confirm("r1"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.trial != "" {
				install(t, store, tt.trial, "r2")
			}
			l, call, _ := launcher(t, store, "exit1", time.Minute)
			l.Version = tt.own
			l.Env = append(l.Env, tt.env...)
			d := l.Launch(context.Background())
			got := "run"
			if !d.Run {
				got = "exec"
			}
			if got != tt.want || (got == "exec") != call.calledWith {
				t.Fatalf("decision %+v, want %s", d, tt.want)
			}
			if tt.trial != "" && load(t, store).Trial != nil {
				t.Fatal("the stale trial is still pending")
			}
		})
	}
}

func TestDebianArch(t *testing.T) {
	for _, tt := range []struct{ goarch, goarm, want string }{
		{"amd64", "", "amd64"},
		{"arm64", "", "arm64"},
		{"arm", "7", "armhf"},
		{"arm", "7,hardfloat", "armhf"},
		{"arm", "5", "armel"},
		{"386", "", "i386"},
	} {
		if got := debianArch(tt.goarch, tt.goarm); got != tt.want {
			t.Errorf("debianArch(%s, %s) = %s, want %s", tt.goarch, tt.goarm, got, tt.want)
		}
	}
	if Arch() == "" {
		t.Fatal("no arch")
	}
}

func TestRestartUnderSystemdOrSupervisorExits(t *testing.T) {
	for _, env := range [][]string{{"INVOCATION_ID=abc"}, {"NOTIFY_SOCKET=/run/systemd/notify"}, {EnvTrial + "=r1"}} {
		code, err := Restart("/nonexistent/loa-agent", []string{"loa-agent"}, env)
		if code != ExitRestart || err != nil {
			t.Errorf("Restart with %q = %d, %v; want %d", env, code, err, ExitRestart)
		}
	}
	if code, err := Restart("/nonexistent/loa-agent", []string{"loa-agent"}, nil); err == nil || code != 1 {
		t.Errorf("Restart of a missing launcher = %d, %v", code, err)
	}
}
