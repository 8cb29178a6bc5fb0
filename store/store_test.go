package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

var t0 = time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addDevice(t *testing.T, s *Store, id string, groups ...string) {
	t.Helper()
	if groups == nil {
		groups = []string{}
	}
	if err := s.AddDevice(context.Background(), Device{ID: id, Name: "Loa " + id, Groups: groups, Volume: 80, CreatedAt: t0}, "hash-"+id); err != nil {
		t.Fatalf("AddDevice(%s): %v", id, err)
	}
}

func devices(t *testing.T, s *Store) []Device {
	t.Helper()
	d, err := s.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func groups(t *testing.T, s *Store) []Group {
	t.Helper()
	g, err := s.Groups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestOpenMigratesOnceAndKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loa.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != len(files) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(files))
	}
	addDevice(t, s, "loa-1", "thon-1")
	var applied int64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(applied_at) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	var again int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(applied_at) FROM schema_migrations`).Scan(&n, &again); err != nil {
		t.Fatal(err)
	}
	if n != len(files) || again != applied {
		t.Fatalf("after reopening: %d migration rows, applied_at %d (was %d): a migration ran again", n, again, applied)
	}
	d := devices(t, s)
	if len(d) != 1 || d[0].ID != "loa-1" || !reflect.DeepEqual(d[0].Groups, []string{"thon-1"}) {
		t.Fatalf("devices after reopening: %+v", d)
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loa.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES(99, 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema = %v, want a 'newer' error", err)
	}
}

func TestAddDeviceDuplicate(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1", "thon-1")
	before := devices(t, s)
	err := s.AddDevice(ctx, Device{ID: "loa-1", Name: "impostor", Groups: []string{"thon-9"}, Volume: 10, CreatedAt: t0.Add(time.Hour)}, "other")
	if !errors.Is(err, ErrExists) {
		t.Fatalf("AddDevice duplicate = %v, want ErrExists", err)
	}
	if after := devices(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("the first device changed:\nbefore %+v\n after %+v", before, after)
	}
	if h, _ := s.DeviceTokenHash(ctx, "loa-1"); h != "hash-loa-1" {
		t.Fatalf("token hash is now %q", h)
	}
	if g := groups(t, s); len(g) != 1 || g[0].Name != "thon-1" {
		t.Fatalf("groups: %+v", g)
	}
}

func TestDeviceLookups(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-2", "thon-2", "cho")
	addDevice(t, s, "loa-1")
	d := devices(t, s)
	if len(d) != 2 || d[0].ID != "loa-1" || d[1].ID != "loa-2" {
		t.Fatalf("Devices not sorted by id: %+v", d)
	}
	if d[0].Groups == nil || len(d[0].Groups) != 0 {
		t.Fatalf("a device without groups has %#v, want an empty list", d[0].Groups)
	}
	if !reflect.DeepEqual(d[1].Groups, []string{"cho", "thon-2"}) || d[1].Name != "Loa loa-2" || d[1].Volume != 80 || !d[1].CreatedAt.Equal(t0) {
		t.Fatalf("device: %+v", d[1])
	}
	if _, err := s.Device(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Device(nope) = %v", err)
	}
	if _, err := s.DeviceTokenHash(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeviceTokenHash(nope) = %v", err)
	}
}

func TestGroupChangesAreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1", "thon-1")
	addDevice(t, s, "loa-2")
	before := groups(t, s)

	if err := s.AddToGroup(ctx, "thon-1", []string{"loa-2", "ghost"}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("AddToGroup with an unknown device = %v, want ErrNotFound naming it", err)
	}
	if err := s.AddToGroup(ctx, "thon-new", []string{"loa-1", "ghost"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddToGroup = %v", err)
	}
	if after := groups(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("groups changed by a failed add:\nbefore %+v\n after %+v", before, after)
	}

	if err := s.AddToGroup(ctx, "thon-1", []string{"loa-2"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.GroupMembers(ctx, "thon-1"); !reflect.DeepEqual(m, []string{"loa-1", "loa-2"}) {
		t.Fatalf("members %v", m)
	}
	before = groups(t, s)
	if err := s.RemoveFromGroup(ctx, "thon-1", []string{"loa-2", "ghost"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveFromGroup with an unknown device = %v, want ErrNotFound", err)
	}
	if after := groups(t, s); !reflect.DeepEqual(before, after) {
		t.Fatalf("groups changed by a failed remove:\nbefore %+v\n after %+v", before, after)
	}
	if err := s.RemoveFromGroup(ctx, "thon-1", []string{"loa-1", "loa-2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GroupMembers(ctx, "thon-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an emptied group still exists: %v", err)
	}
}

func TestRemoveDeviceCascades(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1", "thon-1")
	addDevice(t, s, "loa-2", "thon-1")
	if err := s.RecordState(ctx, "loa-1", protocol.State{Online: true, State: protocol.StateIdle, Volume: 80}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDevice(ctx, "loa-1"); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.GroupMembers(ctx, "thon-1"); !reflect.DeepEqual(m, []string{"loa-2"}) {
		t.Fatalf("thon-1 members after removing loa-1: %v", m)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_state WHERE device_id = 'loa-1'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("state rows of the removed device: %d, %v", n, err)
	}
	st, err := s.Status(ctx)
	if err != nil || len(st) != 1 || st[0].ID != "loa-2" {
		t.Fatalf("Status after removal: %+v, %v", st, err)
	}
	// The id is free again, and the new box starts without the old state.
	addDevice(t, s, "loa-1")
	st, _ = s.Status(ctx)
	if st[0].ID != "loa-1" || st[0].Online || !st[0].LastSeen.IsZero() {
		t.Fatalf("re-added box inherited old state: %+v", st[0])
	}
	if err := s.RemoveDevice(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveDevice(ghost) = %v", err)
	}
}

func TestSetVolume(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	tests := []struct {
		volume int
		ok     bool
	}{{0, true}, {100, true}, {55, true}, {-1, false}, {101, false}, {1000, false}}
	for _, tc := range tests {
		before, _ := s.Device(ctx, "loa-1")
		err := s.SetVolume(ctx, "loa-1", tc.volume)
		after, _ := s.Device(ctx, "loa-1")
		switch {
		case tc.ok && (err != nil || after.Volume != tc.volume):
			t.Errorf("SetVolume(%d) = %v, volume now %d", tc.volume, err, after.Volume)
		case !tc.ok && (err == nil || after.Volume != before.Volume):
			t.Errorf("SetVolume(%d) = %v, volume %d → %d", tc.volume, err, before.Volume, after.Volume)
		}
	}
	if err := s.SetVolume(ctx, "ghost", 50); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetVolume(ghost) = %v", err)
	}
}

var shaA = strings.Repeat("a", 64)

func addMedia(t *testing.T, s *Store, sha string) {
	t.Helper()
	if _, err := s.AddMedia(context.Background(), Media{SHA256: sha, Name: "hop-thon.wav", Codec: "wav", Size: 1000, Duration: 2500 * time.Millisecond, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

func TestMedia(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m := Media{SHA256: shaA, Name: "first", Codec: "wav", Size: 1000, Duration: 2500 * time.Millisecond, CreatedAt: t0}
	created, err := s.AddMedia(ctx, m)
	if err != nil || !created {
		t.Fatalf("AddMedia = %v, %v", created, err)
	}
	m2 := m
	m2.Name = "second"
	created, err = s.AddMedia(ctx, m2)
	if err != nil || created {
		t.Fatalf("AddMedia of the same hash = %v, %v; want created=false", created, err)
	}
	got, err := s.MediaByID(ctx, shaA)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("MediaByID = %+v, %v; want the first record %+v", got, err, m)
	}
	list, _ := s.MediaList(ctx)
	if len(list) != 1 {
		t.Fatalf("MediaList: %+v", list)
	}
	if _, err := s.MediaByID(ctx, strings.Repeat("b", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MediaByID(unknown) = %v", err)
	}
}

// TestMediaRendition: a record from before renditions gets one later; its
// files (original and rendition) are both known, and removing the record
// returns both names so the caller can delete the files.
func TestMediaRendition(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	play := strings.Repeat("c", 64)
	if todo, err := s.MediaWithoutPlay(ctx); err != nil || len(todo) != 1 || todo[0].SHA256 != shaA {
		t.Fatalf("MediaWithoutPlay = %+v, %v; want the new record", todo, err)
	}
	if known, err := s.MediaFileKnown(ctx, play); err != nil || known {
		t.Fatalf("MediaFileKnown(rendition) before it exists = %v, %v", known, err)
	}
	loud, peak, out := -31.5, -6.25, -16.0
	if err := s.SetMediaPlay(ctx, shaA, &loud, &peak, MediaFile{SHA256: play, Size: 1234, Codec: "opus", Loudness: &out}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMediaPlay(ctx, strings.Repeat("d", 64), nil, nil, MediaFile{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetMediaPlay(unknown) = %v, want ErrNotFound", err)
	}
	m, err := s.MediaByID(ctx, shaA)
	if err != nil || *m.Loudness != loud || *m.TruePeak != peak || m.Play.SHA256 != play || m.Play.Size != 1234 || *m.Play.Loudness != out {
		t.Fatalf("MediaByID = %+v (play %+v), %v", m, m.Play, err)
	}
	if sha, size := m.Delivered(); sha != play || size != 1234 {
		t.Fatalf("Delivered = %s, %d; want the rendition", sha, size)
	}
	if todo, _ := s.MediaWithoutPlay(ctx); len(todo) != 0 {
		t.Fatalf("MediaWithoutPlay after the rendition = %+v", todo)
	}
	for _, sha := range []string{shaA, play} {
		if known, err := s.MediaFileKnown(ctx, sha); err != nil || !known {
			t.Fatalf("MediaFileKnown(%s) = %v, %v", sha, known, err)
		}
	}
	removed, err := s.RemoveMedia(ctx, shaA)
	if err != nil || removed.SHA256 != shaA || removed.Play.SHA256 != play {
		t.Fatalf("RemoveMedia = %+v, %v", removed, err)
	}
	if known, _ := s.MediaFileKnown(ctx, play); known {
		t.Fatal("the rendition is still known after its record went")
	}
}

func TestRemoveMediaInUse(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	r := Rule{ID: "s-1", Kind: KindCron, Cron: "0 6 * * *", Targets: Targets{All: true}, Media: shaA, Priority: protocol.Normal,
		Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
	if err := s.AddRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMedia(ctx, shaA); !errors.Is(err, ErrInUse) {
		t.Fatalf("RemoveMedia in use = %v, want ErrInUse", err)
	}
	if _, err := s.MediaByID(ctx, shaA); err != nil {
		t.Fatalf("media gone after a refused remove: %v", err)
	}
	if err := s.CancelRule(ctx, "s-1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMedia(ctx, shaA); err != nil {
		t.Fatalf("RemoveMedia after cancelling its schedule: %v", err)
	}
	if _, err := s.MediaByID(ctx, shaA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("media still there: %v", err)
	}
	if _, err := s.RemoveMedia(ctx, shaA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveMedia twice = %v", err)
	}
}

func TestRules(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	once := Rule{ID: "a-1", Kind: KindOnce, Start: t0, Targets: Targets{Groups: []string{"thon-1"}, Devices: []string{"loa-9"}},
		Media: shaA, Priority: protocol.Emergency, Repeat: 3, Gap: 2 * time.Second, Validity: 15 * time.Minute,
		Text: "Bão số 3", Tone: protocol.ToneStorm, Status: protocol.StatusTest, Source: "cap:x", CreatedAt: t0.Add(-time.Hour)}
	cron := Rule{ID: "s-1", Kind: KindCron, Name: "morning news", Cron: "0 6 * * *", Targets: Targets{All: true},
		Media: shaA, Priority: protocol.Normal, Repeat: 1, Validity: 10 * time.Minute, Status: protocol.StatusLive, Source: "cli", CreatedAt: t0}
	toneOnly := Rule{ID: "e-1", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Priority: protocol.Emergency, Repeat: 1,
		Validity: time.Hour, Tone: protocol.ToneSiren, Status: protocol.StatusLive, Source: "cli", CreatedAt: t0.Add(time.Hour)}
	for _, r := range []Rule{once, cron, toneOnly} {
		if err := s.AddRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddRule(ctx, once); err == nil {
		t.Fatal("AddRule with a taken id succeeded")
	}
	bad := cron
	bad.ID, bad.Media = "s-2", strings.Repeat("c", 64)
	if err := s.AddRule(ctx, bad); err == nil {
		t.Fatal("AddRule with unknown media succeeded")
	}

	all, err := s.Rules(ctx, "", false)
	if err != nil || len(all) != 3 || !reflect.DeepEqual(all[0], once) || !reflect.DeepEqual(all[1], cron) || !reflect.DeepEqual(all[2], toneOnly) {
		t.Fatalf("Rules = %+v, %v", all, err)
	}
	crons, _ := s.Rules(ctx, KindCron, false)
	if len(crons) != 1 || crons[0].ID != "s-1" {
		t.Fatalf("cron rules: %+v", crons)
	}

	if err := s.SetPaused(ctx, "s-1", true); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.RuleByID(ctx, "s-1"); !r.Paused {
		t.Fatal("not paused")
	}
	if err := s.SetPaused(ctx, "s-1", false); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.RuleByID(ctx, "s-1"); r.Paused {
		t.Fatal("not resumed")
	}
	if err := s.SetPaused(ctx, "ghost", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetPaused(ghost) = %v", err)
	}

	if err := s.CancelRule(ctx, "a-1", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelRule(ctx, "a-1", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelling twice = %v", err)
	}
	if err := s.SetPaused(ctx, "a-1", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pausing a cancelled rule = %v", err)
	}
	live, _ := s.Rules(ctx, "", false)
	if len(live) != 2 || live[0].ID != "s-1" || live[1].ID != "e-1" {
		t.Fatalf("live rules after cancel: %+v", live)
	}
	withCancelled, _ := s.Rules(ctx, "", true)
	if len(withCancelled) != 3 || !withCancelled[0].CancelledAt.Equal(t0) {
		t.Fatalf("rules with cancelled: %+v", withCancelled)
	}
	if _, err := s.RuleByID(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RuleByID(ghost) = %v", err)
	}
}

// TestUpgradeKeepsRules opens a database made by the first schema, with a
// rule in it, and checks the rebuild of the rules table keeps it.
func TestUpgradeKeepsRules(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loa.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := migrations.ReadFile("migrations/0001_init.sql")
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations VALUES (1, 1)`,
		`INSERT INTO media VALUES ('` + shaA + `', 'm', 'mp3', 10, 1000, 1)`,
		`INSERT INTO rules (id, kind, targets, media, priority, validity_ms, created_at) VALUES ('s-old', 'cron', '{"all":true}', '` + shaA + `', 1, 60000, 5)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("make a v1 database: %v", err)
		}
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.RuleByID(ctx, "s-old")
	if err != nil || r.Media != shaA || r.Status != protocol.StatusLive || r.Source != "cli" || !r.Targets.All {
		t.Fatalf("after upgrade: %+v, %v", r, err)
	}
}
