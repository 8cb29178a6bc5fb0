package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/scheduler"
)

// Rule kinds.
const (
	KindOnce = "once" // an announcement: one start time
	KindCron = "cron" // a schedule: a cron rule in the site's zone
)

// Targets says which boxes a rule is for.
type Targets struct {
	All     bool     `json:"all,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Devices []string `json:"devices,omitempty"`
}

// String names the targets as staff type and read them: "all",
// "group:thon-1,device:loa-7".
func (t Targets) String() string {
	var parts []string
	if t.All {
		parts = append(parts, "all")
	}
	for _, g := range t.Groups {
		parts = append(parts, "group:"+g)
	}
	for _, d := range t.Devices {
		parts = append(parts, "device:"+d)
	}
	return strings.Join(parts, ",")
}

// Rule is an announcement or a schedule.
type Rule struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name,omitempty"`
	Cron        string            `json:"cron,omitempty"`
	Start       time.Time         `json:"start,omitzero"`
	Targets     Targets           `json:"targets"`
	Media       string            `json:"media"`
	Priority    protocol.Priority `json:"priority"`
	Repeat      int               `json:"repeat"`
	Gap         time.Duration     `json:"-"`
	Validity    time.Duration     `json:"-"`
	Text        string            `json:"text,omitempty"`
	Tone        string            `json:"tone,omitempty"`
	Status      string            `json:"status"` // protocol.StatusLive or StatusTest (exercise)
	Source      string            `json:"source"` // cli, cap:<key>, sensor:<rule>
	Paused      bool              `json:"paused"`
	CancelledAt time.Time         `json:"cancelled_at,omitzero"`
	CreatedAt   time.Time         `json:"created_at"`
	// StreamChannels > 0 makes the rule a live session: its item plays the
	// session's stream (that many channels) instead of media.
	StreamChannels int `json:"stream_channels,omitempty"`
	// StreamEnds is when the session's sound ended; zero while on air.
	StreamEnds time.Time `json:"stream_ends,omitzero"`
	// RelayURL and RelayFor: a schedule whose every occurrence relays this
	// stream for this long.
	RelayURL string        `json:"relay_url,omitempty"`
	RelayFor time.Duration `json:"-"`
}

const ruleColumns = `id, kind, name, cron, start_at, targets, media, priority, repeat, gap_ms, validity_ms, text, tone, status, source, paused, cancelled_at, created_at, stream_channels, stream_ends, relay_url, relay_for_ms`

// AddRule stores a new rule. Its media must exist. A one-off rule (an
// announcement, an emergency, an all-clear) also gets its pending report
// rows: see AddRuleThen.
func (s *Store) AddRule(ctx context.Context, r Rule) error {
	return s.AddRuleThen(ctx, r, nil)
}

// AddRuleThen stores a new rule, calls then (when not nil) once the rule is
// committed, and for a one-off rule then records a pending report row for
// its item on each box its targets reach. The API asks for the replan in
// then: boxes get the plan without waiting for the rows (about 13 ms for
// 1,000 boxes here, mostly SQLite's five indexes on deliveries).
//
// Nothing else writes a one-off rule's pending rows but the first replan
// after a start, for a controller that died between the rule and its rows
// (the replan writes those of schedules' items). A box may answer before its
// row is written (its plan may be out already): RecordEvents then makes the
// row, and this leaves it as it is. The rows are written before this
// returns, so once the API has answered, GET of the announcement and `loa
// report` show every box.
func (s *Store) AddRuleThen(ctx context.Context, r Rule, then func()) error {
	targets, err := json.Marshal(r.Targets)
	if err != nil {
		return err
	}
	if r.Status == "" {
		r.Status = protocol.StatusLive
	}
	if r.Source == "" {
		r.Source = "cli"
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO rules(`+ruleColumns+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Kind, r.Name, r.Cron, ms(r.Start), string(targets), nullable(r.Media), int(r.Priority), r.Repeat,
		r.Gap.Milliseconds(), r.Validity.Milliseconds(), r.Text, r.Tone, r.Status, r.Source, r.Paused, ms(r.CancelledAt), ms(r.CreatedAt),
		r.StreamChannels, ms(r.StreamEnds), r.RelayURL, r.RelayFor.Milliseconds())
	if err != nil {
		return fmt.Errorf("add %s %s: %w", r.Kind, r.ID, err)
	}
	if then != nil {
		then()
	}
	if r.Kind != KindOnce || r.Start.IsZero() {
		return nil
	}
	// The item as the scheduler names it; one statement for every box.
	start := r.Start.Truncate(time.Second)
	where, args := targetsWhere(r.Targets)
	_, err = s.db.ExecContext(ctx, `INSERT OR IGNORE INTO deliveries(item, device_id, announcement, status, scheduled_at, updated_at)
		SELECT ?, d.id, ?, ?, ?, ? FROM devices d WHERE `+where,
		append([]any{scheduler.ItemID(r.ID, start), r.ID, StatusPending, ms(start), ms(time.Now())}, args...)...)
	if err != nil {
		return fmt.Errorf("record the pending deliveries of %s: %w", r.ID, err)
	}
	return nil
}

// TargetDevices lists the ids of the boxes targets reach now, sorted.
func (s *Store) TargetDevices(ctx context.Context, t Targets) ([]string, error) {
	where, args := targetsWhere(t)
	return s.queryStrings(ctx, "list target boxes", `SELECT d.id FROM devices d WHERE `+where+` ORDER BY d.id`, args...)
}

// targetsWhere is the condition on devices d that selects the boxes targets
// reach, and its arguments.
func targetsWhere(t Targets) (string, []any) {
	if t.All {
		return "1", nil
	}
	var conds []string
	var args []any
	if len(t.Groups) > 0 {
		conds = append(conds, `d.id IN (SELECT device_id FROM group_members WHERE group_name IN (`+placeholders(len(t.Groups))+`))`)
		for _, g := range t.Groups {
			args = append(args, g)
		}
	}
	if len(t.Devices) > 0 {
		conds = append(conds, `d.id IN (`+placeholders(len(t.Devices))+`)`)
		for _, d := range t.Devices {
			args = append(args, d)
		}
	}
	if len(conds) == 0 {
		return "0", nil
	}
	return strings.Join(conds, " OR "), args
}

// Rules lists rules of a kind ("" for all), oldest first, cancelled ones
// included only if withCancelled.
func (s *Store) Rules(ctx context.Context, kind string, withCancelled bool) ([]Rule, error) {
	q := `SELECT ` + ruleColumns + ` FROM rules WHERE (? = '' OR kind = ?) AND (? OR cancelled_at = 0) ORDER BY created_at, id`
	rows, err := s.read.QueryContext(ctx, q, kind, kind, withCancelled)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	defer rows.Close()
	out := []Rule{}
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RuleByID returns one rule, or ErrNotFound.
func (s *Store) RuleByID(ctx context.Context, id string) (Rule, error) {
	r, err := scanRule(s.read.QueryRowContext(ctx, `SELECT `+ruleColumns+` FROM rules WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return r, err
}

// SetPaused pauses or resumes a rule.
func (s *Store) SetPaused(ctx context.Context, id string, paused bool) error {
	res, err := s.db.ExecContext(ctx, `UPDATE rules SET paused = ? WHERE id = ? AND cancelled_at = 0`, paused, id)
	if err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	return mustAffect(res, id)
}

// CancelRule marks a rule cancelled at t: it stays in history but no longer
// produces plan items.
func (s *Store) CancelRule(ctx context.Context, id string, t time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE rules SET cancelled_at = ? WHERE id = ? AND cancelled_at = 0`, ms(t), id)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	return mustAffect(res, id)
}

type scanner interface{ Scan(...any) error }

func scanRule(sc scanner) (Rule, error) {
	var r Rule
	var start, gap, validity, cancelled, created, ends, relayFor int64
	var prio int
	var targets string
	var media sql.NullString
	if err := sc.Scan(&r.ID, &r.Kind, &r.Name, &r.Cron, &start, &targets, &media, &prio, &r.Repeat,
		&gap, &validity, &r.Text, &r.Tone, &r.Status, &r.Source, &r.Paused, &cancelled, &created,
		&r.StreamChannels, &ends, &r.RelayURL, &relayFor); err != nil {
		return r, err
	}
	r.StreamEnds, r.RelayFor = fromMS(ends), time.Duration(relayFor)*time.Millisecond
	r.Media = media.String
	if err := json.Unmarshal([]byte(targets), &r.Targets); err != nil {
		return r, fmt.Errorf("rule %s: bad targets: %w", r.ID, err)
	}
	r.Start, r.CancelledAt, r.CreatedAt = fromMS(start), fromMS(cancelled), fromMS(created)
	r.Priority = protocol.Priority(prio)
	r.Gap, r.Validity = time.Duration(gap)*time.Millisecond, time.Duration(validity)*time.Millisecond
	return r, nil
}

// nullable stores "" as NULL, so an optional reference passes the foreign key.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
