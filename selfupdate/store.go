package selfupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/protocol"
)

// Names under the store's folder.
const (
	buildsDir  = "builds"
	partialDir = "partial"
	stateFile  = "state.json"
	lockFile   = "lock"
	// stateFormat is the layout version of state.json.
	stateFormat = 1
)

// State is <cache>/agent/state.json.
type State struct {
	Format int `json:"format"`
	// Current is the OTA build that proved itself; nil: the packaged binary.
	Current *Build `json:"current,omitempty"`
	// Previous is the build that ran before Current (nil: the packaged one).
	Previous *Build `json:"previous,omitempty"`
	// Trial is a build installed and not yet proved.
	Trial *Trial `json:"trial,omitempty"`
	// Failed are versions that failed their trial; they are not tried again.
	Failed []string `json:"failed,omitempty"`
	// Status is how the last offered update went, as the agent reports it.
	Status *protocol.UpdateStatus `json:"status,omitempty"`
}

// Build is one installed build.
type Build struct {
	Version string `json:"version"`
	Path    string `json:"path"`
}

// Trial is an installed build waiting to prove itself.
type Trial struct {
	Version   string    `json:"version"`
	Rollout   string    `json:"rollout"`
	Path      string    `json:"path"`
	StartedAt time.Time `json:"started_at,omitzero"` // when its last trial run began
	// Attempts counts trial runs begun: a run the supervisor could not
	// finish (power cut, the supervisor killed) is tried again, up to
	// maxAttempts.
	Attempts int `json:"attempts,omitempty"`
}

// maxAttempts bounds the trial runs of one build.
const maxAttempts = 3

// HasFailed reports whether version failed its trial before.
func (s *State) HasFailed(version string) bool { return slices.Contains(s.Failed, version) }

// maxFailed bounds the failed list.
const maxFailed = 32

func (s *State) markFailed(version string) {
	if !s.HasFailed(version) {
		s.Failed = append(s.Failed, version)
		if len(s.Failed) > maxFailed {
			s.Failed = s.Failed[len(s.Failed)-maxFailed:]
		}
	}
}

// Store is the builds and state of one box, under <cache>/agent.
type Store struct {
	dir string
}

// Open makes dir and its builds/ and partial/ folders if needed.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, buildsDir), filepath.Join(dir, partialDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open agent builds: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.dir }

// BuildPath is where an installed build of version with sha256 lives.
func (s *Store) BuildPath(version, sha string) string {
	return filepath.Join(s.dir, buildsDir, version+"-"+sha[:min(12, len(sha))])
}

// PartialPath is where the build with sha256 is downloaded to.
func (s *Store) PartialPath(sha string) string { return filepath.Join(s.dir, partialDir, sha) }

// Load reads state.json; a missing file is an empty state.
func (s *Store) Load() (State, error) { return loadState(filepath.Join(s.dir, stateFile)) }

func loadState(path string) (State, error) {
	st := State{Format: stateFormat}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return State{Format: stateFormat}, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Format != stateFormat {
		return State{Format: stateFormat}, fmt.Errorf("read %s: layout version %d, want %d", path, st.Format, stateFormat)
	}
	return st, nil
}

// Update changes state.json under the store's lock: fn gets what is on disk
// and the result is written whole if fn returns nil.
func (s *Store) Update(fn func(*State) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.Load()
	if err != nil {
		// An unreadable file must not stop updates for ever: start again.
		st = State{Format: stateFormat}
	}
	if err := fn(&st); err != nil {
		return err
	}
	st.Format = stateFormat
	data, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return fmt.Errorf("save agent update state: %w", err)
	}
	return atomicfile.Write(filepath.Join(s.dir, stateFile), data, 0o644)
}

// lock takes the store's file lock.
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock agent update state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock agent update state: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// SetStatus records the status the agent reports.
func (s *Store) SetStatus(st protocol.UpdateStatus) error {
	return s.Update(func(x *State) error {
		x.Status = &st
		return nil
	})
}

// ErrNoTrial: no trial of that rollout is pending (it was rolled back, or
// another replaced it).
var ErrNoTrial = errors.New("no trial of this build is pending")

// Install moves the verified download at src into builds/ (mode 0755,
// fsynced, renamed) and makes it the pending trial of rollout. It clears
// the other downloads and the builds nothing refers to.
func (s *Store) Install(src, version, sha, rollout string) (string, error) {
	dst := s.BuildPath(version, sha)
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("install %s: %w", version, err)
	}
	err = f.Chmod(0o755)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(src, dst)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(dst))
	}
	if err != nil {
		return "", fmt.Errorf("install %s: %w", version, err)
	}
	err = s.Update(func(st *State) error {
		st.Trial = &Trial{Version: version, Rollout: rollout, Path: dst}
		st.Status = &protocol.UpdateStatus{Rollout: rollout, Version: version, Status: protocol.UpdateTrial}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("install %s: %w", version, err)
	}
	s.Prune("")
	return dst, nil
}

// Confirm makes the pending trial of rollout the current build (the old
// current becomes previous) and records it healthy. The trial build calls
// it once it has proved itself.
func (s *Store) Confirm(rollout string) error {
	return s.Update(func(st *State) error {
		if st.Trial == nil || st.Trial.Rollout != rollout {
			return ErrNoTrial
		}
		t := st.Trial
		st.Previous, st.Current, st.Trial = st.Current, &Build{Version: t.Version, Path: t.Path}, nil
		st.Status = &protocol.UpdateStatus{Rollout: t.Rollout, Version: t.Version, Status: protocol.UpdateHealthy}
		return nil
	})
}

// Prune removes the builds state.json does not name and the partial
// downloads other than keep's.
func (s *Store) Prune(keepPartial string) {
	st, err := s.Load()
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, b := range []*Build{st.Current, st.Previous} {
		if b != nil {
			used[filepath.Base(b.Path)] = true
		}
	}
	if st.Trial != nil {
		used[filepath.Base(st.Trial.Path)] = true
	}
	for dir, keep := range map[string]func(string) bool{
		buildsDir:  func(n string) bool { return used[n] },
		partialDir: func(n string) bool { return keepPartial != "" && n == keepPartial },
	} {
		des, _ := os.ReadDir(filepath.Join(s.dir, dir))
		for _, de := range des {
			if !keep(de.Name()) {
				os.Remove(filepath.Join(s.dir, dir, de.Name()))
			}
		}
	}
}
