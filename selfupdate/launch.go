package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Environment markers between the launcher and the builds it starts.
const (
	// EnvLauncher is set in a build started by Launch (exec'd or
	// supervised) to the launcher's path: such a build does not launch
	// again, and restarts through that path.
	EnvLauncher = "LOA_AGENT_LAUNCHER"
	// EnvTrial is set in a trial build to its rollout: it confirms once it
	// has proved itself (Store.Confirm).
	EnvTrial = "LOA_UPDATE_TRIAL"
)

// ExitRestart is the exit status of an agent that installed a build and
// wants to start again through the launcher (EX_TEMPFAIL): systemd's
// Restart=on-failure starts it again; a supervisor passes it on.
const ExitRestart = 75

// DefaultTrialTimeout is how long a trial build has to prove itself.
const DefaultTrialTimeout = 3 * time.Minute

const (
	// confirmPoll is how often the supervisor reads state.json for the
	// child's confirmation.
	confirmPoll = 200 * time.Millisecond
	// killWait is how long a trial that is rolled back has to stop on
	// SIGTERM before it gets SIGKILL.
	killWait = 5 * time.Second
)

// Launcher decides at start which build runs (see the package doc).
type Launcher struct {
	Dir          string        // <cache>/agent
	Version      string        // this binary's version; unparsable is v0.0.0
	Path         string        // this binary (os.Executable at start)
	Args         []string      // os.Args, passed on unchanged
	Env          []string      // os.Environ()
	TrialTimeout time.Duration // 0: DefaultTrialTimeout
	Log          *slog.Logger  // nil: discard
	// Exec replaces the process (nil: syscall.Exec). It returns only on
	// failure; a replacement that returns nil is taken as done (tests).
	Exec func(path string, argv, env []string) error
}

// Decision is what Launch decided for this process.
type Decision struct {
	// Run: go on as the agent in this process.
	Run bool
	// Code is the exit status when not Run (the supervised build's).
	Code int
	// Execed is the build exec'd when Exec returned nil (tests only).
	Execed string
}

// Launch decides what runs; call it first in main, once. It execs a newer
// healthy build (and does not return), supervises a pending trial (and
// returns the exit status to end with, or Run after a rollback), or returns
// Run. ctx ending (a stop signal) is passed on to a supervised build as
// SIGTERM. Trouble reading the state is logged and the packaged binary runs:
// a box must never be kept from running by its updates.
func (l *Launcher) Launch(ctx context.Context) Decision {
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.TrialTimeout <= 0 {
		l.TrialTimeout = DefaultTrialTimeout
	}
	if l.Exec == nil {
		l.Exec = syscall.Exec
	}
	if getenv(l.Env, EnvLauncher) != "" {
		return Decision{Run: true}
	}
	store, err := Open(l.Dir)
	if err != nil {
		l.Log.Error("agent updates", "err", err)
		return Decision{Run: true}
	}
	st, err := store.Load()
	if err != nil {
		l.Log.Error("agent updates", "err", err)
		return Decision{Run: true}
	}
	own := ownRelease(l.Version)
	if t := st.Trial; t != nil {
		tv, err := protocol.ParseVersion(t.Version)
		switch {
		case err != nil || tv.Compare(own) <= 0:
			l.Log.Info("dropping the pending trial: this binary is as new", "trial", t.Version, "version", l.Version)
			_ = store.Update(func(x *State) error {
				if x.Trial != nil && x.Trial.Path == t.Path {
					x.Trial = nil
				}
				return nil
			})
		case t.Attempts >= maxAttempts:
			l.rollback(store, *t, fmt.Sprintf("%s did not prove itself in %d runs", t.Version, t.Attempts))
		case !executable(t.Path, store):
			l.rollback(store, *t, fmt.Sprintf("%s is not installed (%s)", t.Version, t.Path))
		default:
			if d, done := l.supervise(ctx, store, *t); done {
				return d
			}
		}
	}
	return l.runCurrent(store, own)
}

// runCurrent execs the current OTA build if it is newer than this binary.
func (l *Launcher) runCurrent(store *Store, own protocol.Release) Decision {
	st, err := store.Load()
	if err != nil || st.Current == nil {
		return Decision{Run: true}
	}
	c := st.Current
	if cv, err := protocol.ParseVersion(c.Version); err != nil || cv.Compare(own) <= 0 {
		return Decision{Run: true}
	}
	if !executable(c.Path, store) {
		l.Log.Error("the current agent build is missing; running the packaged one", "build", c.Path, "version", c.Version)
		return Decision{Run: true}
	}
	l.Log.Info("starting the current agent build", "build", c.Path, "version", c.Version)
	err = l.Exec(c.Path, argv(c.Path, l.Args), setenv(l.Env, EnvLauncher, l.Path))
	if err == nil {
		return Decision{Execed: c.Path}
	}
	l.Log.Error("cannot start the current agent build; running the packaged one", "build", c.Path, "err", err)
	return Decision{Run: true}
}

// supervise runs the trial t as a child. done is false after a rollback:
// the caller goes on with the current build.
func (l *Launcher) supervise(ctx context.Context, store *Store, t Trial) (d Decision, done bool) {
	if err := store.Update(func(x *State) error {
		if x.Trial == nil || x.Trial.Path != t.Path {
			return ErrNoTrial
		}
		x.Trial.Attempts++
		x.Trial.StartedAt = time.Now().UTC()
		return nil
	}); err != nil {
		l.Log.Error("cannot start the trial build", "err", err)
		return Decision{}, false
	}
	env := setenv(setenv(unsetenv(l.Env, "WATCHDOG_PID"), EnvLauncher, l.Path), EnvTrial, t.Rollout)
	cmd := exec.Command(t.Path)
	cmd.Args = argv(t.Path, l.Args)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		l.rollback(store, t, fmt.Sprintf("%s could not start: %v", t.Version, err))
		return Decision{}, false
	}
	l.Log.Info("trial of a new agent build", "version", t.Version, "rollout", t.Rollout, "pid", cmd.Process.Pid, "deadline", l.TrialTimeout)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.NewTimer(l.TrialTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(confirmPoll)
	defer poll.Stop()
	stop := ctx.Done()
	confirmed, stopping := false, false
	for {
		select {
		case <-stop:
			stop, stopping = nil, true
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-poll.C:
			if !confirmed && isConfirmed(store, t) {
				confirmed = true
				l.Log.Info("the new agent build proved itself", "version", t.Version)
			}
		case <-deadline.C:
			if confirmed || isConfirmed(store, t) {
				confirmed = true
				continue
			}
			if err := l.rollback(store, t, fmt.Sprintf("%s did not reach the controller within %v", t.Version, l.TrialTimeout)); errors.Is(err, ErrNoTrial) && isConfirmed(store, t) {
				confirmed = true // it made it at the last moment
				continue
			}
			l.kill(cmd, exited)
			return Decision{}, false
		case <-exited:
			code := exitCode(cmd.ProcessState)
			if confirmed || isConfirmed(store, t) {
				return Decision{Code: code}, true
			}
			if stopping {
				// Stopped from outside before it could prove itself: not
				// its fault; it is tried again at the next start.
				l.Log.Info("stopped during the trial of a new agent build", "version", t.Version)
				return Decision{Code: code}, true
			}
			l.rollback(store, t, fmt.Sprintf("%s stopped (%s) before it reached the controller", t.Version, cmd.ProcessState))
			return Decision{}, false
		}
	}
}

// kill stops a trial that is rolled back: SIGTERM, then SIGKILL.
func (l *Launcher) kill(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	_ = cmd.Process.Kill()
	<-exited
}

// rollback gives up the trial t: its version is marked failed and never
// tried again, the status says why, and the build is removed.
func (l *Launcher) rollback(store *Store, t Trial, detail string) error {
	l.Log.Error("rolling back a new agent build", "version", t.Version, "rollout", t.Rollout, "reason", detail)
	err := store.Update(func(x *State) error {
		if x.Trial == nil || x.Trial.Path != t.Path {
			return ErrNoTrial
		}
		x.markFailed(t.Version)
		x.Trial = nil
		x.Status = &protocol.UpdateStatus{Rollout: t.Rollout, Version: t.Version, Status: protocol.UpdateRolledBack, Detail: clip(detail)}
		return nil
	})
	if err == nil {
		store.Prune("")
	} else if !errors.Is(err, ErrNoTrial) {
		l.Log.Error("cannot record the rollback", "err", err)
	}
	return err
}

// isConfirmed reports whether the trial t became the current build.
func isConfirmed(store *Store, t Trial) bool {
	st, err := store.Load()
	return err == nil && st.Current != nil && st.Current.Path == t.Path && (st.Trial == nil || st.Trial.Path != t.Path)
}

// executable reports whether path is a regular executable file in the
// store's builds folder.
func executable(path string, store *Store) bool {
	if filepath.Dir(path) != filepath.Join(store.dir, buildsDir) {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o100 != 0
}

// exitCode is the child's status as a shell would give it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if c := ps.ExitCode(); c >= 0 {
		return c
	}
	return 1
}

// ownRelease is v, or v0.0.0 when it is not a release (dev builds).
func ownRelease(v string) protocol.Release {
	r, err := protocol.ParseVersion(v)
	if err != nil {
		return protocol.Release{}
	}
	return r
}

// Restart is how an agent that installed a build starts again through the
// launcher: it returns ExitRestart to exit with when systemd or a supervisor
// will start it again, and otherwise execs the launcher (self's
// EnvLauncher, or self) with args and the markers removed.
func Restart(self string, args, env []string) (code int, err error) {
	if getenv(env, EnvTrial) != "" || UnderSystemd(env) {
		return ExitRestart, nil
	}
	path := getenv(env, EnvLauncher)
	if path == "" {
		path = self
	}
	env = unsetenv(unsetenv(env, EnvLauncher), EnvTrial)
	if err := syscall.Exec(path, argv(path, args), env); err != nil {
		return 1, fmt.Errorf("restart %s: %w", path, err)
	}
	return 0, nil
}

// UnderSystemd reports whether env is a systemd service's.
func UnderSystemd(env []string) bool {
	return getenv(env, "INVOCATION_ID") != "" || getenv(env, "NOTIFY_SOCKET") != ""
}

// Executable is os.Executable without the " (deleted)" Linux adds once a
// package upgrade replaced the file.
func Executable() (string, error) {
	p, err := os.Executable()
	return strings.TrimSuffix(p, " (deleted)"), err
}

// argv is args with path as the program's name.
func argv(path string, args []string) []string {
	out := []string{path}
	if len(args) > 1 {
		out = append(out, args[1:]...)
	}
	return out
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func unsetenv(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return out
}

func setenv(env []string, key, value string) []string {
	return append(unsetenv(env, key), key+"="+value)
}

// clip bounds a status detail to what the protocol accepts.
func clip(s string) string {
	if len(s) <= protocol.MaxProblemDetail {
		return s
	}
	return strings.ToValidUTF8(s[:protocol.MaxProblemDetail], "")
}
