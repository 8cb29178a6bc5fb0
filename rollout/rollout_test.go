package rollout_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/store"
)

type fixture struct {
	st  *store.Store
	e   *rollout.Engine
	mu  sync.Mutex
	pub [][]string // each publish call's ids
	now time.Time
}

func newFixture(t *testing.T, boxes ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)}
	f.e = rollout.New(st, f.publish, func() time.Time { return f.now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, id := range boxes {
		if err := st.AddDevice(ctx, store.Device{ID: id, Groups: []string{"thon-1"}, Volume: 80, CreatedAt: f.now}, "h"); err != nil {
			t.Fatal(err)
		}
		f.report(t, id, "v1.0.0", nil)
	}
	for _, b := range []store.AgentBuild{{SHA256: strings.Repeat("a", 64), Version: "v1.1.0", Arch: "arm64", Size: 100},
		{SHA256: strings.Repeat("b", 64), Version: "v1.1.0", Arch: "armhf", Size: 90}} {
		if err := st.AddAgentBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) publish(_ context.Context, ids ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pub = append(f.pub, ids)
	return nil
}

func (f *fixture) lastPublish() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pub) == 0 {
		return nil
	}
	return f.pub[len(f.pub)-1]
}

// report records a heartbeat of box id running version, with update u.
func (f *fixture) report(t *testing.T, id, version string, u *protocol.UpdateStatus) {
	t.Helper()
	st := protocol.State{Online: true, State: protocol.StateIdle, Volume: 80, Version: version, Arch: "arm64", Update: u, At: f.now}
	if err := f.st.RecordState(context.Background(), id, st, f.now); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) start(t *testing.T, percent int) {
	t.Helper()
	err := f.e.Start(context.Background(), store.Rollout{ID: "r-1", Version: "v1.1.0", Percent: percent,
		Builds: []string{strings.Repeat("a", 64), strings.Repeat("b", 64)}, Targets: store.Targets{Groups: []string{"thon-1"}}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) status(t *testing.T) rollout.Status {
	t.Helper()
	s, err := f.e.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStepsUntilDone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "b1", "b2", "b3", "b4", "b5")
	f.start(t, 40) // two boxes a step
	if got := f.lastPublish(); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Fatalf("first step offered %v, want b1 b2", got)
	}
	offer, err := f.e.Offer(ctx, "b1")
	if err != nil || offer == nil || offer.Version != "v1.1.0" || len(offer.Builds) != 2 || offer.Builds[0].Path != "/v1/agent/builds/"+strings.Repeat("a", 64) {
		t.Fatalf("offer to b1 = %+v, %v", offer, err)
	}
	if offer.Validate() != nil {
		t.Fatalf("offer does not validate: %v", offer.Validate())
	}
	if o, _ := f.e.Offer(ctx, "b3"); o != nil {
		t.Fatal("b3 was offered before its step")
	}
	// One box of the step healthy, one still downloading: no next step.
	f.report(t, "b1", "v1.1.0", &protocol.UpdateStatus{Rollout: "r-1", Version: "v1.1.0", Status: protocol.UpdateHealthy})
	f.report(t, "b2", "v1.0.0", &protocol.UpdateStatus{Rollout: "r-1", Version: "v1.1.0", Status: protocol.UpdateDownloading})
	before := len(f.pub)
	if err := f.e.Tick(ctx); err != nil || len(f.pub) != before {
		t.Fatalf("a step went on while a box was downloading: %v", err)
	}
	f.report(t, "b2", "v1.1.0", &protocol.UpdateStatus{Rollout: "r-1", Version: "v1.1.0", Status: protocol.UpdateHealthy})
	// b4 was updated some other way (apt): it is not offered.
	f.report(t, "b4", "v1.1.0", nil)
	if err := f.e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.lastPublish(); !slices.Equal(got, []string{"b3", "b5"}) {
		t.Fatalf("second step offered %v, want b3 b5", got)
	}
	f.report(t, "b3", "v1.1.0", nil)
	f.report(t, "b5", "v1.1.0", nil)
	if err := f.e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	s := f.status(t)
	if s.State != store.RolloutDone || s.Step != 2 {
		t.Fatalf("rollout %s at step %d, want done at 2", s.State, s.Step)
	}
	if got := f.lastPublish(); len(got) != 4 {
		t.Fatalf("done: configs republished for %v, want the 4 offered boxes", got)
	}
	if o, _ := f.e.Offer(ctx, "b1"); o != nil {
		t.Fatal("a finished rollout is still offered")
	}
}

func TestRollbackPauses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "b1", "b2", "b3")
	f.start(t, 10)
	if got := f.lastPublish(); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("first step offered %v, want b1", got)
	}
	f.report(t, "b1", "v1.0.0", &protocol.UpdateStatus{Rollout: "r-1", Version: "v1.1.0", Status: protocol.UpdateRolledBack,
		Detail: "the new build did not reach the controller within 3m0s"})
	if err := f.e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	s := f.status(t)
	if s.State != store.RolloutPaused || !strings.Contains(s.Reason, "box b1: rolled-back: the new build did not reach") {
		t.Fatalf("after a rollback: %s %q", s.State, s.Reason)
	}
	if _, err := f.e.SetState(ctx, store.RolloutActive, ""); err != nil {
		t.Fatal(err)
	}
	if s := f.status(t); s.State != store.RolloutPaused {
		t.Fatalf("resumed with the rollback still reported: %s, want paused again", s.State)
	}
	if _, err := f.e.SetState(ctx, store.RolloutAborted, "bad build"); err != nil {
		t.Fatal(err)
	}
	if got := f.lastPublish(); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("abort republished %v, want b1", got)
	}
	if o, _ := f.e.Offer(ctx, "b1"); o != nil {
		t.Fatal("an aborted rollout is still offered")
	}
	// A new rollout may start once none is under way.
	if err := f.st.AddRollout(ctx, store.Rollout{ID: "r-2", Version: "v1.1.1", Percent: 100, Builds: []string{}, CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AddRollout(ctx, store.Rollout{ID: "r-3", Version: "v1.1.2", Percent: 100, Builds: []string{}, CreatedAt: f.now}); err == nil {
		t.Fatal("two rollouts under way at once")
	}
}
