package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Sentinels callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInUse    = errors.New("in use")
)

// MediaInUseError is RemoveMedia's refusal: Rules announcements or
// schedules still play the media. It is an ErrInUse.
type MediaInUseError struct {
	SHA256 string
	Rules  int
}

func (e *MediaInUseError) Error() string {
	return fmt.Sprintf("media %s is used by %d announcement(s) or schedule(s)", e.SHA256, e.Rules)
}

func (e *MediaInUseError) Unwrap() error { return ErrInUse }

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the controller's database.
type Store struct {
	db   *sql.DB // the one writer (and migrations)
	read *sql.DB // readers, which WAL lets run beside the writer
	dsn  func(pragmas ...string) string
}

// Open opens (creating if needed) the SQLite file at path and applies any
// migration it has not seen yet.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := func(pragmas ...string) string {
		q := url.Values{}
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode()
	}
	db, err := sql.Open("sqlite", dsn("journal_mode(WAL)", "busy_timeout(5000)", "foreign_keys(1)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One writer at a time is all SQLite allows; one connection avoids
	// SQLITE_BUSY between our own goroutines.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, dsn: dsn}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// Reads get their own connections: behind the one writer, the
	// replan that publishes an emergency waited for the API's bookkeeping
	// and the heartbeats' writes.
	if s.read, err = sql.Open("sqlite", dsn("busy_timeout(5000)", "query_only(1)")); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.read.SetMaxOpenConns(4)
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return errors.Join(s.read.Close(), s.db.Close()) }

// SchemaVersion is the number of the last migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	current, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	// Migrations are applied by number, each once: one numbered below
	// the newest applied (work merged out of order) is applied too.
	applied := map[int]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema versions: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	known := 0
	versions := make([]int, len(files))
	for i, f := range files {
		v, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(f, "migrations/"), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", f)
		}
		versions[i], known = v, max(known, v)
	}
	if current > known {
		return fmt.Errorf("database schema %d is newer than this program knows (%d): upgrade loa", current, known)
	}
	for i, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		v := versions[i]
		if applied[v] {
			continue
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)`, v, ms(time.Now()))
			return err
		}); err != nil {
			return fmt.Errorf("apply migration %s: %w", base, err)
		}
	}
	return nil
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ms stores times as Unix milliseconds; 0 means "not set".
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Snapshot writes a consistent copy of the whole database to path, a file
// that must not exist (VACUUM INTO, on a reading connection: the
// controller goes on writing meanwhile).
func (s *Store) Snapshot(ctx context.Context, path string) error {
	// Its own connection: the readers' are query-only, which VACUUM INTO
	// refuses, and the writer's would hold every write meanwhile.
	db, err := sql.Open("sqlite", s.dsn("busy_timeout(5000)"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("snapshot the database to %s: %w", path, err)
	}
	return nil
}

// Check runs SQLite's integrity check: nil when the database is whole.
func (s *Store) Check(ctx context.Context) error {
	rows, err := s.read.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("the database is damaged: %s", strings.Join(problems, "; "))
	}
	return nil
}
