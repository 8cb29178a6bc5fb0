package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/backup"
	"github.com/loa-commune/loa/store"
	"github.com/prometheus/client_golang/prometheus"
)

// office is a controller's data folder: a database with a box, keys, a
// media file.
type office struct {
	data string
	st   *store.Store
}

func newOffice(t *testing.T) *office {
	t.Helper()
	data := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(data, backup.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := &office{data: data, st: st}
	o.addBox(t, "box-1")
	write(t, filepath.Join(data, "controller.key"), "ed25519-key-bytes")
	write(t, filepath.Join(data, "admin.token"), "admin-secret")
	sound := []byte("an opus file")
	sum := sha256.Sum256(sound)
	write(t, filepath.Join(data, "media", hex.EncodeToString(sum[:])), string(sound))
	write(t, filepath.Join(data, "media", ".upload-123"), "half an upload")
	return o
}

func (o *office) addBox(t *testing.T, id string) {
	t.Helper()
	if err := o.st.AddDevice(context.Background(), store.Device{ID: id, Groups: []string{"thon-1"}, Volume: 80, CreatedAt: time.Now()}, "hash-"+id); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestBackupRestore: a backup while the database is open, a second one
// skipped with nothing changed, a third after a change; the data folder
// lost; a restore into a new folder brings back the boxes, keys and media.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	o := newOffice(t)
	dir := filepath.Join(t.TempDir(), "usb")
	config := filepath.Join(t.TempDir(), "loa.yaml")
	write(t, config, "site: xa-son-thuy\npublic_server_url: http://10.0.0.2:8080\n")
	b := backup.New(o.data, backup.Options{Dir: dir, Config: config}, o.st, quiet())
	first, err := b.Once(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if first.Files["media"] != 1 || first.Secrets["controller.key"].Size == 0 || first.Database.Size == 0 {
		t.Fatalf("first backup %+v", first)
	}
	if again, _ := b.Once(ctx, false); !again.MadeAt.Equal(first.MadeAt) {
		t.Errorf("a backup with nothing changed was made again")
	}
	o.addBox(t, "box-2")
	second, err := b.Once(ctx, false)
	if err != nil || second.MadeAt.Equal(first.MadeAt) {
		t.Fatalf("after a change: %+v, %v; want a new backup", second, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "media", ".upload-123")); err == nil {
		t.Error("a partial upload was backed up")
	}

	// The PC is gone; a new one restores.
	data := filepath.Join(t.TempDir(), "new-pc")
	sum, err := backup.Restore(ctx, dir, data, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Devices != 2 || sum.Files["media"] != 1 {
		t.Fatalf("restored %+v; want 2 boxes and 1 media file", sum)
	}
	if got, _ := os.ReadFile(sum.Config); !strings.Contains(string(got), "public_server_url: http://10.0.0.2:8080") {
		t.Errorf("the backup's config %q holds %q; want the old controller's", sum.Config, got)
	}
	for _, name := range []string{"controller.key", "admin.token"} {
		was, _ := os.ReadFile(filepath.Join(o.data, name))
		got, err := os.ReadFile(filepath.Join(data, name))
		if err != nil || !bytes.Equal(got, was) {
			t.Errorf("%s restored as %q, %v; want %q", name, got, err, was)
		}
		if fi, _ := os.Stat(filepath.Join(data, name)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s restored with mode %v; want 0600", name, fi.Mode().Perm())
		}
	}
	st, err := store.Open(ctx, filepath.Join(data, backup.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if hash, err := st.DeviceTokenHash(ctx, "box-2"); err != nil || hash != "hash-box-2" {
		t.Errorf("box-2's token restored as %q, %v: the box could not log in", hash, err)
	}

	if _, err := backup.Restore(ctx, dir, data, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore over a database: %v; want a refusal that names --force", err)
	}
	if _, err := backup.Restore(ctx, dir, data, true); err != nil {
		t.Errorf("forced restore: %v", err)
	}
}

// TestRestoreRefusesDamage: a damaged database, key or media file, or a
// folder with no manifest, is refused before anything is written.
func TestRestoreRefusesDamage(t *testing.T) {
	ctx := context.Background()
	o := newOffice(t)
	dir := filepath.Join(t.TempDir(), "nas")
	if _, err := backup.New(o.data, backup.Options{Dir: dir}, o.st, quiet()).Once(ctx, true); err != nil {
		t.Fatal(err)
	}
	media, _ := filepath.Glob(filepath.Join(dir, "media", "*"))
	for name, tc := range map[string]struct {
		file, want string
	}{
		"database": {filepath.Join(dir, backup.DatabaseFile), "not what was backed up"},
		"key":      {filepath.Join(dir, "controller.key"), "not what was backed up"},
		"media":    {media[0], "damaged"},
		"manifest": {filepath.Join(dir, backup.ManifestFile), "no complete backup"},
	} {
		t.Run(name, func(t *testing.T) {
			was, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(tc.file, was, 0o600)
			if name == "manifest" {
				os.Remove(tc.file)
			} else {
				os.WriteFile(tc.file, append(was[:len(was)-1:len(was)-1], was[len(was)-1]^1), 0o600)
			}
			data := filepath.Join(t.TempDir(), "new-pc")
			if _, err := backup.Restore(ctx, dir, data, false); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore with a damaged %s: %v; want %q", name, err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(data, backup.DatabaseFile)); err == nil {
				t.Error("a refused restore wrote the database")
			}
		})
	}
}

// TestBackupMetrics: /metrics shows the last backup's time, and a backup
// that cannot be written (the USB disk is gone: a file where its folder
// was) counts as a failure.
func TestBackupMetrics(t *testing.T) {
	o := newOffice(t)
	gone := filepath.Join(t.TempDir(), "usb")
	write(t, gone, "not a folder")
	b := backup.New(o.data, backup.Options{Dir: gone}, o.st, quiet())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	if _, err := b.Once(context.Background(), false); err == nil {
		t.Fatal("a backup into a file succeeded")
	}
	if got := gather(t, reg); got["loa_backup_failures_total"] != 1 || got["loa_backup_last_success_timestamp_seconds"] != 0 {
		t.Errorf("after a failure: %v", got)
	}
	b = backup.New(o.data, backup.Options{Dir: filepath.Join(t.TempDir(), "usb")}, o.st, quiet())
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	m, err := b.Once(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := gather(t, reg); got["loa_backup_last_success_timestamp_seconds"] != float64(m.MadeAt.UnixMilli())/1000 {
		t.Errorf("after a backup at %v: %v", m.MadeAt, got)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				got[mf.GetName()] = g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				got[mf.GetName()] = c.GetValue()
			}
		}
	}
	return got
}
