package device

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/selfupdate"
)

// buildServer is the controller's build endpoint: Basic auth, Range.
type buildServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte // sha → what is served
	cuts   int               // this many next requests get half the body, then the connection drops
	ranges []string
	hits   atomic.Int64
}

func newBuildServer(t *testing.T) *buildServer {
	bs := &buildServer{files: map[string][]byte{}}
	bs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != testID || pass != testToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		bs.hits.Add(1)
		sha, _ := strings.CutPrefix(r.URL.Path, "/v1/agent/builds/")
		bs.mu.Lock()
		data, found := bs.files[sha]
		bs.ranges = append(bs.ranges, r.Header.Get("Range"))
		cut := bs.cuts > 0 && r.Header.Get("Range") == ""
		if cut {
			bs.cuts--
		}
		bs.mu.Unlock()
		if !found {
			http.NotFound(w, r)
			return
		}
		if cut {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			return // short of its Content-Length: the connection is cut
		}
		http.ServeContent(w, r, sha, time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(bs.Close)
	return bs
}

func (bs *buildServer) rangesSeen() []string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return slices.Clone(bs.ranges)
}

// newBuild is an agent build's bytes and its entry in an offer for arch.
func newBuild(arch string, n int) ([]byte, protocol.UpdateBuild) {
	data := bytes.Repeat([]byte("\x7fELF loa-agent build "+arch+" "), n)
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	return data, protocol.UpdateBuild{Arch: arch, SHA256: sha, Size: int64(len(data)), Path: "/v1/agent/builds/" + sha}
}

// updateBox is a box running v0.13.0 whose restart after an install is
// recorded instead of done.
type updateBox struct {
	*box
	ctl       *controller
	broker    string
	restarted atomic.Int64
}

func startUpdateBox(t *testing.T, bs *buildServer, prepare func(a *Agent), o boxOpts) *updateBox {
	t.Helper()
	o.broker = startBroker(t)
	o.server = bs.URL
	ub := &updateBox{ctl: newController(t, o.broker), broker: o.broker}
	o.prepare = func(a *Agent) {
		a.version = "v0.13.0"
		a.restart = func() { ub.restarted.Add(1) }
		if prepare != nil {
			prepare(a)
		}
	}
	ub.box = startBox(t, o)
	return ub
}

func (ub *updateBox) offer(issued time.Time, offer *protocol.UpdateOffer, mediaURL string) {
	ub.ctl.config(issued, protocol.DeviceConfig{Groups: []string{}, Volume: 80, EmergencyVolume: 100, MediaURL: mediaURL, Update: offer})
}

// waitUpdate waits for the box to report status for the offer's version.
func (ub *updateBox) waitUpdate(t *testing.T, version, status string) protocol.State {
	t.Helper()
	var last protocol.State
	eventually(t, "update status "+status, func() bool {
		var ok bool
		last, ok = ub.ctl.lastState()
		return ok && last.Update != nil && last.Update.Version == version && last.Update.Status == status
	}, func() string { return "last state: " + stateString(last) })
	return last
}

// advanceUntil moves the clock a second at a time until the box reports
// status for version (retries wait on the clock).
func (ub *updateBox) advanceUntil(t *testing.T, version, status string) {
	t.Helper()
	eventually(t, "update status "+status, func() bool {
		ub.clock.Advance(time.Second)
		last, ok := ub.ctl.lastState()
		return ok && last.Update != nil && last.Update.Version == version && last.Update.Status == status
	}, nil)
}

func stateString(st protocol.State) string {
	if st.Update == nil {
		return "state " + st.State + ", no update"
	}
	return "state " + st.State + ", update " + st.Update.Version + " " + st.Update.Status + ": " + st.Update.Detail
}

func (ub *updateBox) store(t *testing.T) selfupdate.State {
	t.Helper()
	s, err := selfupdate.Open(filepath.Join(ub.cache, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUpdateDownloadsVerifiesInstallsAndRestarts(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 4000)
	_, other := newBuild("riscv64-other", 10)
	bs.files[build.SHA256] = data
	ub := startUpdateBox(t, bs, nil, boxOpts{})
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{other, build}}, "")

	st := ub.waitUpdate(t, "v0.14.0", protocol.UpdateTrial)
	if st.Arch != selfupdate.Arch() || st.Update.Rollout != "r1" {
		t.Fatalf("state arch %q, update %+v", st.Arch, st.Update)
	}
	eventually(t, "the restart", func() bool { return ub.restarted.Load() == 1 }, nil)
	s := ub.store(t)
	wantPath := filepath.Join(ub.cache, "agent", "builds", "v0.14.0-"+build.SHA256[:12])
	if s.Trial == nil || s.Trial.Version != "v0.14.0" || s.Trial.Rollout != "r1" || s.Trial.Path != wantPath || s.Current != nil {
		t.Fatalf("update state %+v, trial %+v", s, s.Trial)
	}
	got, err := os.ReadFile(wantPath)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("installed build: %d bytes, %v", len(got), err)
	}
	if fi, _ := os.Stat(wantPath); fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed build mode %v", fi.Mode())
	}
	if des, _ := os.ReadDir(filepath.Join(ub.cache, "agent", "partial")); len(des) != 0 {
		t.Fatalf("left in partial/: %v", des)
	}
	// A restart that did not happen does not install it twice.
	ub.clock.Advance(10 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if n := ub.restarted.Load(); n != 1 || bs.hits.Load() != 1 {
		t.Fatalf("%d restarts, %d downloads", n, bs.hits.Load())
	}
}

func TestUpdateRefusesATamperedBuild(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 4000)
	bad := slices.Clone(data)
	bad[100] ^= 1
	bs.files[build.SHA256] = bad
	ub := startUpdateBox(t, bs, nil, boxOpts{})
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}, "")

	st := ub.waitUpdate(t, "v0.14.0", protocol.UpdateRefused)
	if st.Update.Detail != "tampered: the build's SHA-256 differs from the signed offer" {
		t.Fatalf("detail %q", st.Update.Detail)
	}
	if des, _ := os.ReadDir(filepath.Join(ub.cache, "agent", "partial")); len(des) != 0 {
		t.Fatalf("the tampered download is kept: %v", des)
	}
	if des, _ := os.ReadDir(filepath.Join(ub.cache, "agent", "builds")); len(des) != 0 {
		t.Fatalf("installed: %v", des)
	}
	ub.clock.Advance(10 * time.Minute)
	time.Sleep(100 * time.Millisecond)
	if ub.restarted.Load() != 0 || ub.store(t).Trial != nil || bs.hits.Load() != 1 {
		t.Fatalf("restarts %d, downloads %d, trial %+v", ub.restarted.Load(), bs.hits.Load(), ub.store(t).Trial)
	}
}

func TestUpdateRefusesOffersNotForThisBox(t *testing.T) {
	_, build := newBuild(selfupdate.Arch(), 10)
	_, foreign := newBuild("no-such-arch", 10)
	tests := []struct {
		name    string
		version string
		builds  []protocol.UpdateBuild
		detail  string
	}{
		{"older", "v0.12.0", []protocol.UpdateBuild{build}, "v0.12.0 is not newer than v0.13.0"},
		{"same", "v0.13.0", []protocol.UpdateBuild{build}, "v0.13.0 is not newer than v0.13.0"},
		{"pre-release of the same", "v0.13.0-rc1", []protocol.UpdateBuild{build}, "v0.13.0-rc1 is not newer than v0.13.0"},
		{"no build for this arch", "v0.14.0", []protocol.UpdateBuild{foreign}, "no build for " + selfupdate.Arch() + " (the offer has no-such-arch)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := newBuildServer(t)
			ub := startUpdateBox(t, bs, nil, boxOpts{})
			ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: tt.version, Builds: tt.builds}, "")
			st := ub.waitUpdate(t, tt.version, protocol.UpdateRefused)
			if st.Update.Detail != tt.detail {
				t.Fatalf("detail %q, want %q", st.Update.Detail, tt.detail)
			}
			if bs.hits.Load() != 0 || ub.restarted.Load() != 0 {
				t.Fatalf("%d downloads, %d restarts", bs.hits.Load(), ub.restarted.Load())
			}
		})
	}
}

func TestUpdateWaitsWhilePlayingAndForAnEmergency(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 100)
	bs.files[build.SHA256] = data
	ms := newMediaServer(t)
	m := makeMedia(t, 440, 2*time.Second)
	ms.add(m)
	ub := startUpdateBox(t, bs, nil, boxOpts{paced: true})
	offer := &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}

	// An emergency due in 30 s holds the update.
	em := item("e1", t0.Add(30*time.Second), 10*time.Minute, m)
	em.Priority = protocol.Emergency
	ub.offer(t0, nil, ms.URL)
	ub.ctl.plan("all", t0, em)
	ub.ctl.waitEvent("e1", protocol.EventReady)
	ub.offer(t0.Add(time.Second), offer, ms.URL)
	st := ub.waitUpdate(t, "v0.14.0", protocol.UpdateWaiting)
	if st.Update.Detail != "an emergency is on or due within a minute" {
		t.Fatalf("detail %q", st.Update.Detail)
	}
	// The emergency is cancelled and a 2 s announcement plays now.
	ub.ctl.plan("all", t0.Add(time.Second), item("a1", t0, 10*time.Minute, m))
	eventually(t, "the announcement to play", func() bool {
		s, _ := ub.ctl.lastState()
		return s.State == protocol.StatePlaying && s.Update != nil && s.Update.Detail == "the box is playing"
	}, nil)
	if bs.hits.Load() != 0 {
		t.Fatal("the build was fetched while the box played")
	}
	ub.ctl.waitEvent("a1", protocol.EventPlayed)
	ub.waitUpdate(t, "v0.14.0", protocol.UpdateTrial)
	eventually(t, "the restart", func() bool { return ub.restarted.Load() == 1 }, nil)
}

func TestUpdateResumesACutDownload(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 20000)
	bs.files[build.SHA256] = data
	bs.cuts = 1
	ub := startUpdateBox(t, bs, nil, boxOpts{})
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}, "")

	ub.waitUpdate(t, "v0.14.0", protocol.UpdateFailed)
	ub.advanceUntil(t, "v0.14.0", protocol.UpdateTrial) // past the retry's wait
	ranges := bs.rangesSeen()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes="+strconv.Itoa(len(data)/2)+"-" {
		t.Fatalf("ranges asked %q, want the second to resume at %d", ranges, len(data)/2)
	}
	got, _ := os.ReadFile(ub.store(t).Trial.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("the resumed build differs")
	}
}

func TestUpdateNeedsRoom(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 100)
	bs.files[build.SHA256] = data
	var free atomic.Int64
	free.Store(1 << 20)
	ub := startUpdateBox(t, bs, func(a *Agent) {
		a.freeSpace = func(string) (int64, error) { return free.Load(), nil }
	}, boxOpts{})
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}, "")
	st := ub.waitUpdate(t, "v0.14.0", protocol.UpdateFailed)
	if !strings.HasPrefix(st.Update.Detail, "not enough space: the memory card is full: 1 MB free, needs 5 MB") {
		t.Fatalf("detail %q", st.Update.Detail)
	}
	if !slices.ContainsFunc(st.Problems, func(p protocol.Problem) bool { return p.Code == protocol.ProblemDiskFull }) {
		t.Fatalf("problems %+v", st.Problems)
	}
	free.Store(1 << 30)
	ub.advanceUntil(t, "v0.14.0", protocol.UpdateTrial)
}

func TestUpdateKeepsAFailedVersionRolledBack(t *testing.T) {
	bs := newBuildServer(t)
	data, build := newBuild(selfupdate.Arch(), 100)
	bs.files[build.SHA256] = data
	cache := t.TempDir()
	s, err := selfupdate.Open(filepath.Join(cache, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := protocol.UpdateStatus{Rollout: "r1", Version: "v0.14.0", Status: protocol.UpdateRolledBack, Detail: "v0.14.0 did not reach the controller within 3m0s"}
	if err := s.Update(func(st *selfupdate.State) error {
		st.Failed, st.Status = []string{"v0.14.0"}, &rolledBack
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ub := startUpdateBox(t, bs, nil, boxOpts{cache: cache})
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}, "")
	eventually(t, "a state", func() bool { _, ok := ub.ctl.lastState(); return ok }, nil)
	st := retainedState(t, ub.broker)
	if st.Update == nil || *st.Update != rolledBack {
		t.Fatalf("update %+v, want %+v", st.Update, rolledBack)
	}
	ub.clock.Advance(10 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if bs.hits.Load() != 0 || ub.restarted.Load() != 0 {
		t.Fatalf("%d downloads, %d restarts of a version that failed", bs.hits.Load(), ub.restarted.Load())
	}
	// Another rollout of a newer version goes ahead.
	newerData, newer := newBuild(selfupdate.Arch(), 200)
	bs.mu.Lock()
	bs.files[newer.SHA256] = newerData
	bs.mu.Unlock()
	ub.offer(t0.Add(time.Second), &protocol.UpdateOffer{Rollout: "r2", Version: "v0.14.1", Builds: []protocol.UpdateBuild{newer}}, "")
	ub.waitUpdate(t, "v0.14.1", protocol.UpdateTrial)
}

func TestTrialBuildConfirmsOnceItReachedTheController(t *testing.T) {
	bs := newBuildServer(t)
	cache := t.TempDir()
	s, err := selfupdate.Open(filepath.Join(cache, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	data, build := newBuild(selfupdate.Arch(), 100)
	if err := os.WriteFile(s.PartialPath(build.SHA256), data, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := s.Install(s.PartialPath(build.SHA256), "v0.14.0", build.SHA256, "r1")
	if err != nil {
		t.Fatal(err)
	}
	ub := startUpdateBox(t, bs, func(a *Agent) {
		a.version, a.trialRollout = "v0.14.0", "r1" // the launcher runs it on trial
	}, boxOpts{cache: cache})
	time.Sleep(200 * time.Millisecond)
	if st := ub.store(t); st.Trial == nil {
		t.Fatal("confirmed before it had its signed config")
	}
	// The controller still offers what the box now runs.
	ub.offer(t0, &protocol.UpdateOffer{Rollout: "r1", Version: "v0.14.0", Builds: []protocol.UpdateBuild{build}}, "")
	ub.waitUpdate(t, "v0.14.0", protocol.UpdateHealthy)
	st := ub.store(t)
	if st.Trial != nil || st.Current == nil || st.Current.Path != path || st.Current.Version != "v0.14.0" {
		t.Fatalf("update state %+v", st)
	}
	ub.clock.Advance(10 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if last, _ := ub.ctl.lastState(); last.Update == nil || last.Update.Status != protocol.UpdateHealthy || bs.hits.Load() != 0 {
		t.Fatalf("after confirming: %s, %d downloads", stateString(last), bs.hits.Load())
	}
}
