package device

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Problems: what is wrong with the box, reported in every heartbeat
// (protocol.State.Problems) so that `loa status` can say it in plain words.
// The loop owns them. Each part of the agent that can go wrong keeps at most
// one problem under its own source; two sources with the same code (the
// media cache and state.json on a full memory card) are reported once.
const (
	srcSoundCard = "soundcard" // the sink cannot be opened (OutputChecker)
	srcOutput    = "output"    // the last play failed on the sink
	srcMedia     = "media"     // writing downloads and decoded media
	srcState     = "state"     // writing state.json
	srcOutbox    = "outbox"    // writing answer-back events
	srcHot       = "hot"
	srcClock     = "clock"
)

const (
	// clockJumpLimit is how far the wall clock may move against the
	// monotonic clock between two ticks, or the controller's offset
	// between two estimates, before the box reports a jump.
	clockJumpLimit = 2 * time.Second
	// clockJumpShown is how long a clock jump stays among the problems.
	clockJumpShown = 15 * time.Minute
	// hotHysteresis: "hot" clears this far below the threshold.
	hotHysteresis = 5
	// healthEvery is how often the temperature is read.
	healthEvery = 10 * time.Second
	// outputCheckEvery is how often the player asks an OutputChecker sink
	// whether its output works, while idle.
	outputCheckEvery = 30 * time.Second
	// outputRestartUptime is how long the agent must have run before it
	// restarts itself for an output that stopped: a card that fails again
	// at once costs a restart every 10 minutes, not a restart loop.
	outputRestartUptime = 10 * time.Minute
	// defaultThermalPath are the board's temperature sensors (millidegrees).
	defaultThermalPath = "/sys/class/thermal/thermal_zone*/temp"
)

// OutputChecker is a sink that can tell whether its output can be used now,
// before anything is played on it: the sound card sink opens the card on
// first use and says why it cannot (absent, wrong device name, busy). The
// agent asks it before every play and every outputCheckEvery, reports the
// problem "soundcard" while it fails, fails the items due meanwhile with the
// reason, and plays again once it answers. Ready may block for a few
// seconds; it is called from the player goroutine only. An error that is
// audio.ErrOutputStopped makes the agent restart itself (restartOutput).
type OutputChecker interface {
	Ready() error
}

// outputError is a play that could not start because the output cannot be
// used.
type outputError struct {
	output string
	err    error
}

func (e *outputError) Error() string {
	return fmt.Sprintf("sound card %s cannot be opened: %v", e.output, e.err)
}

func (e *outputError) Unwrap() error { return e.err }

// setProblem records p under src. It keeps the first Since while the code
// stays the same, and logs when a problem appears or changes.
func (a *Agent) setProblem(src string, p protocol.Problem, now time.Time) {
	p.Subject, p.Detail = clip(p.Subject), clip(p.Detail)
	old, had := a.problems[src]
	if had && old.Code == p.Code && p.Since.IsZero() {
		p.Since = old.Since
	}
	if p.Since.IsZero() {
		p.Since = now.UTC()
	}
	if !had || old.Code != p.Code || old.Detail != p.Detail || old.Subject != p.Subject {
		log := a.log.Warn
		if p.Level == protocol.LevelError {
			log = a.log.Error
		}
		log("problem", "code", p.Code, "subject", p.Subject, "detail", p.Detail, "value", p.Value, "limit", p.Limit)
	}
	a.problems[src] = p
}

// clearProblem forgets the problem of src, if any.
func (a *Agent) clearProblem(src string) {
	if p, ok := a.problems[src]; ok {
		a.log.Info("problem cleared", "code", p.Code, "since", p.Since)
		delete(a.problems, src)
	}
}

// problemList is the problems for the heartbeat: one per code (the
// earliest), errors first, then by code.
func (a *Agent) problemList() []protocol.Problem {
	byCode := map[string]protocol.Problem{}
	for _, p := range a.problems {
		if q, ok := byCode[p.Code]; !ok || p.Since.Before(q.Since) {
			byCode[p.Code] = p
		}
	}
	out := make([]protocol.Problem, 0, len(byCode))
	for _, p := range byCode {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y protocol.Problem) int {
		if x.Level != y.Level {
			if x.Level == protocol.LevelError {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Code, y.Code)
	})
	if len(out) > protocol.MaxProblems {
		out = out[:protocol.MaxProblems]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// hasError reports whether any problem is an error.
func (a *Agent) hasError() bool {
	for _, p := range a.problems {
		if p.Level == protocol.LevelError {
			return true
		}
	}
	return false
}

// errorLine is the error-level problems in one line, for State.Error.
func errorLine(ps []protocol.Problem) string {
	var parts []string
	for _, p := range ps {
		if p.Level == protocol.LevelError {
			parts = append(parts, p.Code+": "+cmpOr(p.Detail, p.Subject))
		}
	}
	return clip(strings.Join(parts, "; "))
}

// problemsKey is what makes a change of problems worth a heartbeat: not the
// figures (a temperature moves all the time).
func problemsKey(ps []protocol.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s|%s|%s|%s\n", p.Code, p.Level, p.Subject, p.Detail)
	}
	return b.String()
}

func cmpOr(s, alt string) string {
	if s != "" {
		return s
	}
	return alt
}

// clip cuts s to what the protocol accepts.
func clip(s string) string {
	if len(s) <= protocol.MaxProblemDetail {
		return s
	}
	s = s[:protocol.MaxProblemDetail-3]
	for len(s) > 0 && !utf8Start(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// --- disk ---

// diskFullError is a write that did not fit on the memory card.
type diskFullError struct {
	dir        string
	free, need int64 // bytes; need 0 when not known
}

func (e *diskFullError) Error() string {
	if e.need > 0 {
		return fmt.Sprintf("the memory card is full: %d MB free, needs %d MB", e.freeMB(), e.needMB())
	}
	return fmt.Sprintf("the memory card is full: %d MB free", e.freeMB())
}

// freeMB and needMB are the figures in whole megabytes: free rounded down,
// need up.
func (e *diskFullError) freeMB() int64 { return e.free >> 20 }
func (e *diskFullError) needMB() int64 { return (e.need + 1<<20 - 1) >> 20 }

// freeSpace is the room left for an unprivileged writer in the file
// system of path.
func freeSpace(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// isDiskFull reports whether err is a write that found no room.
func isDiskFull(err error) bool {
	var df *diskFullError
	return errors.As(err, &df) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isNotWritable reports whether err is a write the file system refused.
func isNotWritable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// diskProblem records (or clears, when err is nil) the problem a write to
// the cache by src met: a full memory card or one that cannot be written.
// Other errors (a network error of a download) leave it as it was. It
// returns err reworded in plain words when it is one of those.
func (a *Agent) diskProblem(src string, err error, now time.Time) error {
	if err == nil {
		if p, ok := a.problems[src]; ok && (p.Code == protocol.ProblemDiskFull || p.Code == protocol.ProblemCacheWrite) {
			a.clearProblem(src)
		}
		return nil
	}
	switch {
	case isDiskFull(err):
		var df *diskFullError
		if !errors.As(err, &df) {
			df = &diskFullError{dir: a.cfg.Cache}
			df.free, _ = a.freeSpace(a.cfg.Cache)
		}
		a.setProblem(src, protocol.Problem{Code: protocol.ProblemDiskFull, Level: protocol.LevelError, Subject: a.cfg.Cache,
			Detail: df.Error(), Value: float64(df.freeMB()), Limit: float64(df.needMB())}, now)
		return df
	case isNotWritable(err):
		a.setProblem(src, protocol.Problem{Code: protocol.ProblemCacheWrite, Level: protocol.LevelError, Subject: a.cfg.Cache,
			Detail: err.Error()}, now)
		return fmt.Errorf("the memory card cannot be written (%s): %w", a.cfg.Cache, err)
	}
	return err
}

// writeProblem records that src could not write its file: a full memory
// card, or one that cannot be written (read-only, permissions, I/O errors).
func (a *Agent) writeProblem(src string, err error) {
	now := a.clock.Now()
	if isDiskFull(err) || isNotWritable(err) {
		a.diskProblem(src, err, now)
	} else {
		a.setProblem(src, protocol.Problem{Code: protocol.ProblemCacheWrite, Level: protocol.LevelError, Subject: a.cfg.Cache,
			Detail: err.Error()}, now)
	}
}

// --- temperature ---

// checkHealth reads the temperature now and then and reports "hot" above
// the threshold.
func (a *Agent) checkHealth(now time.Time) {
	if !a.healthAt.IsZero() && time.Since(a.healthAt) < a.healthEvery {
		return
	}
	a.healthAt = time.Now()
	t := a.temperature()
	limit := a.cfg.HotC
	if limit == 0 {
		limit = DefaultHotC
	}
	_, hot := a.problems[srcHot]
	switch {
	case t == nil:
		a.clearProblem(srcHot)
	case *t > limit || (hot && *t > limit-hotHysteresis):
		a.setProblem(srcHot, protocol.Problem{Code: protocol.ProblemHot, Level: protocol.LevelWarning,
			Detail: fmt.Sprintf("the processor is at %.0f °C (warning above %.0f °C)", *t, limit), Value: math.Round(*t*10) / 10, Limit: limit}, now)
	default:
		a.clearProblem(srcHot)
	}
}

// temperature reads the hottest of the board's temperature sensors, if it
// has any.
func (a *Agent) temperature() *float64 {
	paths, _ := filepath.Glob(a.thermalPath)
	var hottest *float64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		milli, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		c := float64(milli) / 1000
		if hottest == nil || c > *hottest {
			hottest = &c
		}
	}
	return hottest
}

// --- clock ---

// checkClockJump compares how far the box's wall clock moved since the last
// tick with how far the monotonic clock did, and reports a jump.
func (a *Agent) checkClockJump(now time.Time) {
	wall, mono := a.clock.base.Now(), a.mono()
	if !a.jumpWall.IsZero() {
		jump := wall.Sub(a.jumpWall) - mono.Sub(a.jumpMono)
		if jump > clockJumpLimit || jump < -clockJumpLimit {
			a.clockJumped(jump, "the box's clock", now)
		}
	}
	a.jumpWall, a.jumpMono = wall, mono
	if p, ok := a.problems[srcClock]; ok && now.Sub(p.Since) > clockJumpShown || ok && now.Before(p.Since.Add(-clockJumpShown)) {
		a.clearProblem(srcClock)
	}
}

// offsetChanged reports a jump of the controller's time as the box measures
// it (once it had an estimate).
func (a *Agent) offsetChanged(was time.Duration, synced bool) {
	d := a.clock.Offset() - was
	if synced && (d > clockJumpLimit || d < -clockJumpLimit) {
		a.clockJumped(d, "the controller's time as the box measures it", a.clock.Now())
	}
}

func (a *Agent) clockJumped(d time.Duration, what string, now time.Time) {
	dir := "forward"
	if d < 0 {
		dir = "back"
	}
	a.setProblem(srcClock, protocol.Problem{Code: protocol.ProblemClockJump, Level: protocol.LevelWarning,
		Detail: fmt.Sprintf("%s jumped %s by %v", what, dir, d.Abs().Round(time.Millisecond)), Value: math.Round(d.Seconds()*10) / 10, Since: now.UTC()}, now)
}
