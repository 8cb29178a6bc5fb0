package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/store"
)

// Options say where and how often the controller backs itself up.
type Options struct {
	// Dir is the second place: a USB disk's or a NAS share's mounted
	// folder, not on the controller's own disk. Empty: no backups.
	Dir string `yaml:"dir"`
	// Every is how often a backup is made (5m): at most this much of the
	// report is lost with the PC. A backup with nothing changed is skipped.
	Every time.Duration `yaml:"every"`
	// Config is the controller's config file, kept beside the data as
	// ConfigFile (a new PC needs the same addresses); empty: none.
	Config string `yaml:"-"`
}

// ConfigFile is the name of the controller's config in a backup.
const ConfigFile = "loa.yaml"

// DefaultEvery is how often a backup is made unless set.
const DefaultEvery = 5 * time.Minute

// ManifestFile names what a backup holds; it is written last, so a backup
// with a manifest is complete.
const ManifestFile = "manifest.json"

// Secrets are the small files of the data folder that make the controller
// itself: its signing keys (boxes trust only them), the admin token and the
// CA boxes were given. They are copied whole each time.
var Secrets = []string{"controller.key", "controller.next.key", "admin.token", "ca.crt"}

// Folders of the data folder whose files never change once written (media
// and agent builds are named by their SHA-256, recordings by their
// session): a backup copies the files it does not have yet.
var Folders = []string{"media", "builds", "recordings"}

// DatabaseFile is the database's name in the data folder and the backup.
const DatabaseFile = "loa.db"

// Manifest is what a backup holds.
type Manifest struct {
	MadeAt   time.Time `json:"made_at"`
	Database File      `json:"database"`
	// Secrets are the secret files present, by name.
	Secrets map[string]File `json:"secrets"`
	// Files counts the files of each folder.
	Files map[string]int `json:"files"`
	// Config is the controller's config file, if it was given one.
	Config *File `json:"config,omitempty"`
}

// File is a file's size and SHA-256.
type File struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Backup makes backups of one controller's data folder.
type Backup struct {
	data  string
	opts  Options
	store *store.Store
	log   *slog.Logger

	mu       sync.Mutex // one backup at a time
	changed  changeMark
	last     Manifest
	failures int
}

// New backs up the data folder data, whose database st has open.
func New(data string, opts Options, st *store.Store, log *slog.Logger) *Backup {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	return &Backup{data: data, opts: opts, store: st, log: log}
}

// Run makes a backup at once and then every Every until ctx ends; a
// failure is logged and tried again at the next turn.
func (b *Backup) Run(ctx context.Context) {
	t := time.NewTicker(b.opts.Every)
	defer t.Stop()
	for {
		if _, err := b.Once(ctx, false); err != nil && ctx.Err() == nil {
			b.log.Error("backup failed: the controller's data is not copied to the second place; check that it is mounted and has room",
				"dir", b.opts.Dir, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Collector gives /metrics the time of the last backup and the failures
// since the start, so a monitor sees a USB disk that was pulled.
func (b *Backup) Collector() prometheus.Collector {
	return collector{b}
}

type collector struct{ b *Backup }

var (
	lastDesc     = prometheus.NewDesc("loa_backup_last_success_timestamp_seconds", "When the last backup was completed (Unix time; 0: none yet).", nil, nil)
	failuresDesc = prometheus.NewDesc("loa_backup_failures_total", "Backups that failed since the controller started.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- lastDesc; ch <- failuresDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.b.mu.Lock()
	last, failures := c.b.last.MadeAt, c.b.failures
	c.b.mu.Unlock()
	var at float64
	if !last.IsZero() {
		at = float64(last.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(lastDesc, prometheus.GaugeValue, at)
	ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(failures))
}

// Last is the last backup made (zero before the first).
func (b *Backup) Last() Manifest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// changeMark is the database's files as they were at the last backup: the
// same sizes and times mean nothing was written since.
type changeMark struct {
	db, wal fileMark
}

type fileMark struct {
	size int64
	mod  time.Time
}

func markOf(path string) fileMark {
	fi, err := os.Stat(path)
	if err != nil {
		return fileMark{}
	}
	return fileMark{fi.Size(), fi.ModTime()}
}

// Once makes a backup now: a snapshot of the database, the secrets, the
// new files of the folders, then the manifest. Unless force, it does
// nothing when the database has not changed since the last backup.
func (b *Backup) Once(ctx context.Context, force bool) (Manifest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dbPath := filepath.Join(b.data, DatabaseFile)
	mark := changeMark{db: markOf(dbPath), wal: markOf(dbPath + "-wal")}
	if !force && mark == b.changed && !b.last.MadeAt.IsZero() {
		return b.last, nil
	}
	start := time.Now()
	m, err := write(ctx, b.data, b.opts, b.store)
	if err != nil {
		b.failures++
		return Manifest{}, err
	}
	b.changed, b.last = mark, m
	b.log.Info("backup written", "dir", b.opts.Dir, "database_bytes", m.Database.Size, "files", m.Files, "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// write makes one backup of data into opts.Dir.
func write(ctx context.Context, data string, opts Options, st *store.Store) (Manifest, error) {
	dir := opts.Dir
	m := Manifest{MadeAt: time.Now().UTC(), Secrets: map[string]File{}, Files: map[string]int{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, fmt.Errorf("backup folder: %w", err)
	}
	// The snapshot goes to a temporary name, then over the last one.
	tmp := filepath.Join(dir, "."+DatabaseFile+".new")
	os.Remove(tmp)
	if err := st.Snapshot(ctx, tmp); err != nil {
		return m, err
	}
	var err error
	if m.Database, err = syncAndHash(tmp); err != nil {
		os.Remove(tmp)
		return m, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, DatabaseFile)); err != nil {
		os.Remove(tmp)
		return m, err
	}
	for _, name := range Secrets {
		b, err := os.ReadFile(filepath.Join(data, name))
		if errors.Is(err, fs.ErrNotExist) {
			os.Remove(filepath.Join(dir, name)) // e.g. a key rotation finished
			continue
		}
		if err != nil {
			return m, err
		}
		if err := atomicfile.Write(filepath.Join(dir, name), b, 0o600); err != nil {
			return m, err
		}
		m.Secrets[name] = File{Size: int64(len(b)), SHA256: hashOf(b)}
	}
	if opts.Config != "" {
		b, err := os.ReadFile(opts.Config)
		if err != nil {
			return m, err
		}
		if err := atomicfile.Write(filepath.Join(dir, ConfigFile), b, 0o600); err != nil {
			return m, err
		}
		m.Config = &File{Size: int64(len(b)), SHA256: hashOf(b)}
	}
	for _, folder := range Folders {
		n, err := copyNew(ctx, filepath.Join(data, folder), filepath.Join(dir, folder))
		if err != nil {
			return m, err
		}
		m.Files[folder] = n
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	return m, atomicfile.Write(filepath.Join(dir, ManifestFile), body, 0o600)
}

// copyNew copies the files of from that to lacks (or has at another size),
// and counts from's files. A folder that does not exist has none.
func copyNew(ctx context.Context, from, to string) (int, error) {
	entries, err := os.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue // partial uploads and the like
		}
		n++
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		fi, err := e.Info()
		if err != nil {
			return n, err
		}
		if have, err := os.Stat(dst); err == nil && have.Size() == fi.Size() {
			continue
		}
		if err := copyFile(src, dst); err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyFile copies src to dst through a temporary file, synced, so a
// backup cut off by a pulled USB disk leaves no half file under dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// syncAndHash flushes path to its disk and returns its size and SHA-256.
func syncAndHash(path string) (File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return File{}, err
	}
	return hashReader(f)
}

func hashReader(r io.Reader) (File, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
