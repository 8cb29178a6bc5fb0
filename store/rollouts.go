package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AgentBuild is a published loa-agent binary for one architecture.
type AgentBuild struct {
	SHA256    string    `json:"sha256"`
	Version   string    `json:"version"`
	Arch      string    `json:"arch"`
	Size      int64     `json:"size"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// AddAgentBuild records a build; publishing the same file again is a no-op
// unless it names another version or architecture (ErrExists).
func (s *Store) AddAgentBuild(ctx context.Context, b AgentBuild) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var version, arch string
		err := tx.QueryRowContext(ctx, `SELECT version, arch FROM agent_builds WHERE sha256 = ?`, b.SHA256).Scan(&version, &arch)
		switch {
		case err == nil && version == b.Version && arch == b.Arch:
			return nil
		case err == nil:
			return fmt.Errorf("this file was published before as %s for %s: %w", version, arch, ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO agent_builds(sha256, version, arch, size, created_by, created_at) VALUES(?,?,?,?,?,?)`,
			b.SHA256, b.Version, b.Arch, b.Size, b.CreatedBy, ms(b.CreatedAt))
		return err
	})
}

// AgentBuild reads one build. ErrNotFound if there is none.
func (s *Store) AgentBuild(ctx context.Context, sha string) (AgentBuild, error) {
	b := AgentBuild{SHA256: sha}
	var created int64
	err := s.read.QueryRowContext(ctx, `SELECT version, arch, size, created_by, created_at FROM agent_builds WHERE sha256 = ?`, sha).
		Scan(&b.Version, &b.Arch, &b.Size, &b.CreatedBy, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("agent build %s: %w", sha, ErrNotFound)
	}
	b.CreatedAt = fromMS(created)
	return b, err
}

// Audit actions of rollouts.
const (
	AuditRolloutStart = "rollout.start"
	AuditRolloutState = "rollout.state"
)

// Rollout states.
const (
	RolloutActive  = "active"
	RolloutPaused  = "paused"
	RolloutAborted = "aborted"
	RolloutDone    = "done"
)

// Rollout offers one version's builds to its targets, Percent of them a step.
type Rollout struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Builds    []string  `json:"builds"` // sha256 of each architecture's build
	Targets   Targets   `json:"targets"`
	Percent   int       `json:"percent"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AddRollout stores a new active rollout. ErrInUse if another one is
// active or paused: finish or abort it first.
func (s *Store) AddRollout(ctx context.Context, r Rollout) error {
	builds, err := json.Marshal(r.Builds)
	if err != nil {
		return err
	}
	targets, err := json.Marshal(r.Targets)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var other string
		err := tx.QueryRowContext(ctx, `SELECT id FROM rollouts WHERE state IN (?, ?)`, RolloutActive, RolloutPaused).Scan(&other)
		if err == nil {
			return fmt.Errorf("rollout %s is not finished: %w", other, ErrInUse)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO rollouts(id, version, builds, targets, percent, state, created_by, created_at, updated_at)
			VALUES(?,?,?,?,?,?,?,?,?)`, r.ID, r.Version, string(builds), string(targets), r.Percent, RolloutActive,
			r.CreatedBy, ms(r.CreatedAt), ms(r.CreatedAt))
		return err
	})
}

const rolloutColumns = `id, version, builds, targets, percent, state, reason, created_by, created_at, updated_at`

func scanRollout(row interface{ Scan(...any) error }) (Rollout, error) {
	var r Rollout
	var builds, targets string
	var created, updated int64
	if err := row.Scan(&r.ID, &r.Version, &builds, &targets, &r.Percent, &r.State, &r.Reason, &r.CreatedBy, &created, &updated); err != nil {
		return r, err
	}
	r.CreatedAt, r.UpdatedAt = fromMS(created), fromMS(updated)
	if err := json.Unmarshal([]byte(builds), &r.Builds); err != nil {
		return r, fmt.Errorf("rollout %s builds: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(targets), &r.Targets); err != nil {
		return r, fmt.Errorf("rollout %s targets: %w", r.ID, err)
	}
	return r, nil
}

// Rollouts lists the rollouts, newest first.
func (s *Store) Rollouts(ctx context.Context) ([]Rollout, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+rolloutColumns+` FROM rollouts ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("read rollouts: %w", err)
	}
	defer rows.Close()
	var out []Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CurrentRollout is the active or paused rollout. ErrNotFound if none.
func (s *Store) CurrentRollout(ctx context.Context) (Rollout, error) {
	r, err := scanRollout(s.read.QueryRowContext(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE state IN (?, ?)`, RolloutActive, RolloutPaused))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("no rollout under way: %w", ErrNotFound)
	}
	return r, err
}

// SetRolloutState moves rollout id from one of the states from to state,
// with the reason. ErrNotFound if it is not in one of those states.
func (s *Store) SetRolloutState(ctx context.Context, id string, from []string, state, reason string, at time.Time) error {
	args := []any{state, reason, ms(at), id}
	for _, f := range from {
		args = append(args, f)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE rollouts SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (`+placeholders(len(from))+`)`, args...)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", id, err)
	}
	return mustAffect(res, "rollout "+id+" in state "+fmt.Sprint(from))
}

// OfferRollout records that devices are offered rollout id in step.
func (s *Store) OfferRollout(ctx context.Context, id string, step int, devices []string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range devices {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO rollout_boxes(rollout, device_id, step, offered_at) VALUES(?,?,?,?)`,
				id, d, step, ms(at)); err != nil {
				return fmt.Errorf("offer rollout %s to %s: %w", id, d, err)
			}
		}
		return nil
	})
}

// RolloutBoxes are the boxes offered rollout id, with their step.
func (s *Store) RolloutBoxes(ctx context.Context, id string) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT device_id, step FROM rollout_boxes WHERE rollout = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("read rollout %s: %w", id, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var step int
		if err := rows.Scan(&d, &step); err != nil {
			return nil, err
		}
		out[d] = step
	}
	return out, rows.Err()
}
