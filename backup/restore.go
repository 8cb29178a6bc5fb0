package backup

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/loa-commune/loa/store"
)

// Summary is what a restore brought back.
type Summary struct {
	MadeAt         time.Time
	Devices, Media int
	Files          map[string]int
	Took           time.Duration
	// Config is the old controller's config file in the backup (left
	// there: it belongs in /etc/loa); empty if it had none.
	Config string
}

// Restore puts the backup in from into the data folder data, which must
// have no database yet unless force. Every file is checked against the
// manifest (media and builds also against their names, their SHA-256)
// before anything is written; then the database is opened (migrated to
// this version of Loa) and checked whole.
func Restore(ctx context.Context, from, data string, force bool) (Summary, error) {
	start := time.Now()
	var sum Summary
	body, err := os.ReadFile(filepath.Join(from, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return sum, fmt.Errorf("%s holds no complete backup (no %s): give the folder `backup.dir` names in the controller's config", from, ManifestFile)
	}
	if err != nil {
		return sum, err
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return sum, fmt.Errorf("the backup's %s is damaged: %w", ManifestFile, err)
	}
	dbPath := filepath.Join(data, DatabaseFile)
	if _, err := os.Stat(dbPath); err == nil && !force {
		return sum, fmt.Errorf("%s already has a database: restore into a new folder, or add --force to replace it", data)
	}

	// Check everything before writing anything.
	if err := checkFile(filepath.Join(from, DatabaseFile), m.Database); err != nil {
		return sum, err
	}
	for name, f := range m.Secrets {
		if err := checkFile(filepath.Join(from, name), f); err != nil {
			return sum, err
		}
	}
	if m.Config != nil {
		sum.Config = filepath.Join(from, ConfigFile)
		if err := checkFile(sum.Config, *m.Config); err != nil {
			return Summary{}, err
		}
	}
	for _, folder := range []string{"media", "builds"} {
		if err := checkNamedByHash(ctx, filepath.Join(from, folder)); err != nil {
			return sum, err
		}
	}

	if err := os.MkdirAll(data, 0o750); err != nil {
		return sum, err
	}
	for _, stale := range []string{dbPath + "-wal", dbPath + "-shm"} {
		os.Remove(stale) // a forced restore must not replay the old database's log
	}
	if err := copyFile(filepath.Join(from, DatabaseFile), dbPath); err != nil {
		return sum, err
	}
	for name := range m.Secrets {
		if err := copyFile(filepath.Join(from, name), filepath.Join(data, name)); err != nil {
			return sum, err
		}
	}
	sum.Files = map[string]int{}
	for _, folder := range Folders {
		n, err := copyNew(ctx, filepath.Join(from, folder), filepath.Join(data, folder))
		if err != nil {
			return sum, err
		}
		sum.Files[folder] = n
	}

	st, err := store.Open(ctx, dbPath)
	if err != nil {
		return sum, err
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		return sum, err
	}
	devices, err := st.Devices(ctx)
	if err != nil {
		return sum, err
	}
	media, err := st.MediaList(ctx)
	if err != nil {
		return sum, err
	}
	sum.MadeAt, sum.Devices, sum.Media, sum.Took = m.MadeAt, len(devices), len(media), time.Since(start)
	return sum, nil
}

// checkFile checks path has the size and SHA-256 the manifest says.
func checkFile(path string, want File) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("the backup lacks %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	got, err := hashReader(f)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s in the backup is not what was backed up (size %d, SHA-256 %.12s…; the manifest says %d, %.12s…): the disk may be failing; use another copy",
			filepath.Base(path), got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return nil
}

// checkNamedByHash checks that every file of dir named by a SHA-256 has
// that SHA-256.
func checkNamedByHash(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := hex.DecodeString(e.Name()); err != nil || len(e.Name()) != 64 || !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		got, err := hashReader(f)
		f.Close()
		if err != nil {
			return err
		}
		if got.SHA256 != e.Name() {
			return fmt.Errorf("%s/%s in the backup is damaged (its SHA-256 is %.12s…): the disk may be failing; use another copy",
				filepath.Base(dir), e.Name(), got.SHA256)
		}
	}
	return nil
}
