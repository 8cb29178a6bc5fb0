package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func deg(v float64) *float64 { return &v }

// where reads a box's coordinates the three ways the store gives them: one
// device, the list, and the status (whole and paged).
func where(t *testing.T, s *Store, id string) (lat, lon *float64) {
	t.Helper()
	ctx := context.Background()
	d, err := s.Device(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range devices(t, s) {
		if other.ID == id && !reflect.DeepEqual([]*float64{other.Lat, other.Lon}, []*float64{d.Lat, d.Lon}) {
			t.Fatalf("Devices says %v,%v and Device %v,%v", other.Lat, other.Lon, d.Lat, d.Lon)
		}
	}
	all, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.StatusPage(ctx, StatusQuery{IDPrefix: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range [][]DeviceStatus{all, page.Devices} {
		for _, ds := range list {
			if ds.ID == id && !reflect.DeepEqual([]*float64{ds.Lat, ds.Lon}, []*float64{d.Lat, d.Lon}) {
				t.Fatalf("status says %v,%v and Device %v,%v", ds.Lat, ds.Lon, d.Lat, d.Lon)
			}
		}
	}
	return d.Lat, d.Lon
}

func TestDeviceLocation(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.AddDevice(ctx, Device{ID: "loa-cho", Volume: 80, CreatedAt: t0, Lat: deg(21.0285), Lon: deg(105.8542)}, "h"); err != nil {
		t.Fatal(err)
	}
	addDevice(t, s, "loa-2")
	if lat, lon := where(t, s, "loa-cho"); lat == nil || lon == nil || *lat != 21.0285 || *lon != 105.8542 {
		t.Fatalf("after AddDevice: %v, %v", lat, lon)
	}
	if lat, lon := where(t, s, "loa-2"); lat != nil || lon != nil {
		t.Fatalf("a box added without a place has %v, %v", lat, lon)
	}

	if err := s.SetDeviceLocation(ctx, "loa-2", deg(-90), deg(180)); err != nil {
		t.Fatal(err)
	}
	if lat, lon := where(t, s, "loa-2"); lat == nil || *lat != -90 || *lon != 180 {
		t.Fatalf("after SetDeviceLocation: %v, %v", lat, lon)
	}
	if err := s.SetDeviceLocation(ctx, "loa-cho", nil, nil); err != nil {
		t.Fatal(err)
	}
	if lat, lon := where(t, s, "loa-cho"); lat != nil || lon != nil {
		t.Fatalf("after clearing: %v, %v", lat, lon)
	}

	for _, tc := range []struct {
		name     string
		lat, lon *float64
	}{
		{"latitude only", deg(21), nil},
		{"longitude only", nil, deg(105)},
		{"latitude over 90", deg(90.5), deg(105)},
		{"longitude below -180", deg(21), deg(-180.01)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetDeviceLocation(ctx, "loa-2", tc.lat, tc.lon); !errors.Is(err, ErrBadLocation) {
				t.Fatalf("SetDeviceLocation = %v, want ErrBadLocation", err)
			}
			if err := s.AddDevice(ctx, Device{ID: "loa-bad", CreatedAt: t0, Lat: tc.lat, Lon: tc.lon}, "h"); !errors.Is(err, ErrBadLocation) {
				t.Fatalf("AddDevice = %v, want ErrBadLocation", err)
			}
		})
	}
	if lat, lon := where(t, s, "loa-2"); *lat != -90 || *lon != 180 {
		t.Fatalf("refused changes moved the box to %v, %v", *lat, *lon)
	}
	if _, err := s.Device(ctx, "loa-bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused add stored the box: %v", err)
	}
	if err := s.SetDeviceLocation(ctx, "ghost", deg(21), deg(105)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetDeviceLocation(ghost) = %v, want ErrNotFound", err)
	}

	// The table itself refuses what the Go check would: half a place or
	// one out of range.
	for _, q := range []string{
		`UPDATE devices SET lat = 21 WHERE id = 'loa-cho'`,
		`UPDATE devices SET lat = 91, lon = 105 WHERE id = 'loa-cho'`,
		`UPDATE devices SET lat = 21, lon = 181 WHERE id = 'loa-cho'`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "CHECK") {
			t.Errorf("%s: %v, want a CHECK constraint failure", q, err)
		}
	}
}

// TestUpgradeKeepsDevicesWithoutPlace opens a database made by the schema
// before coordinates, with boxes in it: they stay, with no place, and can
// be placed.
func TestUpgradeKeepsDevicesWithoutPlace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "loa.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(files)
	for _, f := range files {
		if f >= "migrations/0013" {
			break
		}
		body, _ := migrations.ReadFile(f)
		if _, err := db.ExecContext(ctx, string(body)); err != nil {
			t.Fatalf("make a schema-12 database: %s: %v", f, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, 1)`, f[len("migrations/"):len("migrations/0000")]); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO devices(id, name, token_hash, volume, created_at) VALUES ('loa-1', 'Loa chợ', 'hash-1', 60, 5), ('loa-2', '', 'hash-2', 80, 6)`,
		`INSERT INTO group_members(group_name, device_id) VALUES ('thon-1', 'loa-1')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("make a schema-12 database: %v", err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v < 13 {
		t.Fatalf("SchemaVersion = %d, %v; want 13 or later", v, err)
	}
	d := devices(t, s)
	if len(d) != 2 || d[0].ID != "loa-1" || d[0].Name != "Loa chợ" || d[0].Volume != 60 ||
		!reflect.DeepEqual(d[0].Groups, []string{"thon-1"}) || d[1].ID != "loa-2" {
		t.Fatalf("devices after the upgrade: %+v", d)
	}
	for _, x := range d {
		if x.Lat != nil || x.Lon != nil {
			t.Fatalf("%s has a place after the upgrade: %v, %v", x.ID, *x.Lat, *x.Lon)
		}
	}
	if h, _ := s.DeviceTokenHash(ctx, "loa-1"); h != "hash-1" {
		t.Fatalf("token hash after the upgrade: %q", h)
	}
	if err := s.SetDeviceLocation(ctx, "loa-1", deg(21.03), deg(105.85)); err != nil {
		t.Fatal(err)
	}
	if lat, lon := where(t, s, "loa-1"); lat == nil || *lat != 21.03 || *lon != 105.85 {
		t.Fatalf("placed after the upgrade: %v, %v", lat, lon)
	}
}
