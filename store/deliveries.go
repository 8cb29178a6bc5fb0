package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// StatusPending is a delivery no box has answered yet.
const StatusPending = "pending"

// Delivery is what happened to one plan item on one box: a row of the report.
type Delivery struct {
	Item         string    `json:"item"`
	Announcement string    `json:"announcement"`
	Device       string    `json:"device"`
	Status       string    `json:"status"`
	ScheduledAt  time.Time `json:"scheduled_at"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	Reason       string    `json:"reason"` // in English
	// Why is Reason as codes, for messages.Reason to say in the reader's
	// language; empty from boxes that send none.
	Why      []protocol.Why `json:"why,omitempty"`
	Exercise bool           `json:"exercise"` // an exercise (test) broadcast, not a real alert
	Text     string         `json:"text"`     // what the announcement says, when it was given as text
	// HeardMS and MissedMS: of a live session, what the box sounded and
	// what it missed (late or lost packets) while the session was on its
	// output.
	HeardMS  int64 `json:"heard_ms,omitempty"`
	MissedMS int64 `json:"missed_ms,omitempty"`
}

// DeviceEvent is an event and the box it came from.
type DeviceEvent struct {
	Device   string
	Event    protocol.Event
	Received time.Time
}

// RecordEvent stores one answer-back event and updates the item's delivery
// row. A duplicate (QoS 1 re-delivery) changes nothing. A final status is
// never replaced by a non-final one that arrives late.
func (s *Store) RecordEvent(ctx context.Context, device string, e protocol.Event, received time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st := newStmts(tx)
		defer st.close()
		return recordEvent(ctx, st, device, e, received)
	})
}

// RecordEvents stores many events in one transaction, as RecordEvent does
// each; events from unknown devices are skipped and counted.
func (s *Store) RecordEvents(ctx context.Context, events []DeviceEvent) (unknown int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		st := newStmts(tx)
		defer st.close()
		for _, de := range events {
			err := recordEvent(ctx, st, de.Device, de.Event, de.Received)
			switch {
			case errors.Is(err, ErrNotFound):
				unknown++
			case err != nil:
				return err
			}
		}
		return nil
	})
	return unknown, err
}

// stmts prepares each statement once per transaction: a batch of answers
// runs the same few statements thousands of times, and SQLite would parse
// their text every time.
type stmts struct {
	tx *sql.Tx
	m  map[string]*sql.Stmt
}

func newStmts(tx *sql.Tx) *stmts { return &stmts{tx: tx, m: map[string]*sql.Stmt{}} }

func (p *stmts) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryRow is QueryRowContext on the prepared query; a failed prepare
// comes out of Scan, as database/sql's own errors do.
func (p *stmts) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	st, err := p.get(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := p.m[query]; ok {
		return st, nil
	}
	st, err := p.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.m[query] = st
	return st, nil
}

func (p *stmts) close() {
	for _, st := range p.m {
		st.Close()
	}
}

type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func recordEvent(ctx context.Context, st *stmts, device string, e protocol.Event, received time.Time) error {
	var known int
	if err := st.queryRow(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, device).Scan(&known); err != nil {
		return err
	}
	if known == 0 {
		return fmt.Errorf("event from device %s: %w", device, ErrNotFound)
	}
	res, err := st.exec(ctx, `INSERT OR IGNORE INTO events(device_id, item, announcement, type, at, reason, received_at) VALUES(?,?,?,?,?,?,?)`,
		device, e.Item, e.Announcement, string(e.Type), ms(e.At), e.Reason, ms(received))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // seen before
	}
	var status string
	var started, finished int64
	err = st.queryRow(ctx, `SELECT status, started_at, finished_at FROM deliveries WHERE item = ? AND device_id = ?`, e.Item, device).
		Scan(&status, &started, &finished)
	switch {
	case err == sql.ErrNoRows:
		status = ""
	case err != nil:
		return err
	}
	if protocol.EventType(status).Final() && !e.Type.Final() {
		if e.Type == protocol.EventPlaying && started == 0 {
			// Resent out of order after the final answer: it still says
			// when the item began.
			_, err = st.exec(ctx, `UPDATE deliveries SET started_at = ? WHERE item = ? AND device_id = ?`, ms(e.At), e.Item, device)
			return err
		}
		return nil
	}
	at := ms(e.At)
	switch {
	case e.Type == protocol.EventPlaying && started == 0:
		started = at
	case e.Type.Final():
		finished = at
		if started == 0 && !e.Started.IsZero() {
			started = ms(e.Started) // its "playing" answer is late or lost
		}
	}
	_, err = st.exec(ctx, `INSERT INTO deliveries(item, device_id, announcement, status, scheduled_at, started_at, finished_at, reason, why, updated_at, heard_ms, missed_ms)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(item, device_id) DO UPDATE SET status=excluded.status, started_at=excluded.started_at,
			finished_at=excluded.finished_at, reason=excluded.reason, why=excluded.why, updated_at=excluded.updated_at,
			heard_ms=excluded.heard_ms, missed_ms=excluded.missed_ms,
			announcement=CASE WHEN deliveries.announcement = '' THEN excluded.announcement ELSE deliveries.announcement END`,
		e.Item, device, e.Announcement, string(e.Type), ms(itemStart(e.Item, e.At)), started, finished, e.Reason, whyJSON(e.Why...), ms(received), e.HeardMS, e.MissedMS)
	return err
}

// whyJSON is how the why column holds a reason's codes, empty for none.
func whyJSON(why ...protocol.Why) string {
	if len(why) == 0 {
		return ""
	}
	b, err := json.Marshal(why)
	if err != nil {
		return "" // cannot happen: strings only
	}
	return string(b)
}

// The reasons the controller gives deliveries a box never answered for
// (protocol.WhyNoAnswer and WhyCancelledUnanswered in other languages).
const (
	NoAnswer            = "no answer: the box did not report playing it (offline, or it failed to sound)"
	CancelledUnanswered = "cancelled before the box answered"
)

// MarkUnanswered gives every delivery that is still pending, received or
// ready although its item could no longer start before cutoff (its start
// plus its validity) the status missed, with the reason NoAnswer, so the
// report shows what did not sound; those of announcements cancelled before
// cutoff become cancelled. A box that answers later (from its outbox) still
// overwrites either with what really happened. It returns how many rows it
// marked missed.
//
// Both updates are bounded through indexes (the items of cancelled rules;
// rows scheduled before the cutoff), not by a scan of every pending row: a
// province has a hundred thousand of them, and this runs after every replan.
func (s *Store) MarkUnanswered(ctx context.Context, cutoff time.Time) (int64, error) {
	var marked int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Cancelled before the box said anything: cancelled, not missed.
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = 'cancelled', reason = ?, why = ?, updated_at = ?
			WHERE status IN ('pending', 'received', 'ready') AND announcement IN (
				SELECT id FROM rules WHERE cancelled_at != 0 AND cancelled_at < ?)`,
			CancelledUnanswered, whyJSON(protocol.Why{Code: protocol.WhyCancelledUnanswered}), ms(time.Now()), ms(cutoff)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = 'missed', reason = ?, why = ?, updated_at = ?
			WHERE status IN ('pending', 'received', 'ready') AND scheduled_at < ? AND EXISTS (
				SELECT 1 FROM rules r WHERE r.id = deliveries.announcement AND r.cancelled_at = 0
					AND deliveries.scheduled_at + r.validity_ms < ?)`,
			NoAnswer, whyJSON(protocol.Why{Code: protocol.WhyNoAnswer}), ms(time.Now()), ms(cutoff), ms(cutoff))
		if err != nil {
			return err
		}
		marked, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark unanswered deliveries: %w", err)
	}
	return marked, nil
}

// Report lists deliveries scheduled in [since, until) (zero bounds are open),
// oldest first.
func (s *Store) Report(ctx context.Context, since, until time.Time) ([]Delivery, error) {
	hi := int64(1<<62 - 1)
	if !until.IsZero() {
		hi = ms(until)
	}
	return s.deliveries(ctx, `WHERE d.scheduled_at >= ? AND d.scheduled_at < ?`+reportOrder, ms(since), hi)
}

// reportOrder is the report's order, which ReportPage's cursor follows.
const reportOrder = ` ORDER BY d.scheduled_at, d.item, d.device_id`

// Deliveries lists the deliveries of one announcement or schedule.
func (s *Store) Deliveries(ctx context.Context, announcement string) ([]Delivery, error) {
	return s.deliveries(ctx, `WHERE d.announcement = ?`+reportOrder, announcement)
}

// deliveries reads report rows; tail is the WHERE clause and the order.
func (s *Store) deliveries(ctx context.Context, tail string, args ...any) ([]Delivery, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT d.item, d.announcement, d.device_id, d.status, d.scheduled_at, d.started_at,
			d.finished_at, d.reason, d.why, COALESCE(r.status, '') = 'test', COALESCE(r.text, ''), d.heard_ms, d.missed_ms
		FROM deliveries d LEFT JOIN rules r ON r.id = d.announcement `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var d Delivery
		var sched, started, finished int64
		var why string
		if err := rows.Scan(&d.Item, &d.Announcement, &d.Device, &d.Status, &sched, &started, &finished, &d.Reason, &why, &d.Exercise, &d.Text, &d.HeardMS, &d.MissedMS); err != nil {
			return nil, err
		}
		if why != "" {
			// A row this controller wrote: it reads back; if not, Reason stands.
			_ = json.Unmarshal([]byte(why), &d.Why)
		}
		d.ScheduledAt, d.StartedAt, d.FinishedAt = fromMS(sched), fromMS(started), fromMS(finished)
		out = append(out, d)
	}
	return out, rows.Err()
}

// itemStart reads the start time that item ids end with ("<rule>-<unix>"),
// falling back to the event time for ids made otherwise.
func itemStart(item string, fallback time.Time) time.Time {
	i := strings.LastIndexByte(item, '-')
	if i < 0 {
		return fallback
	}
	sec, err := strconv.ParseInt(item[i+1:], 10, 64)
	if err != nil || sec <= 0 {
		return fallback
	}
	return time.Unix(sec, 0).UTC()
}

// MarshalJSON writes the times a box has not reported as null rather than
// leaving them out, so every field of `loa report -o json` is always there.
func (d Delivery) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Item         string         `json:"item"`
		Announcement string         `json:"announcement"`
		Device       string         `json:"device"`
		Status       string         `json:"status"`
		ScheduledAt  time.Time      `json:"scheduled_at"`
		StartedAt    *time.Time     `json:"started_at"`
		FinishedAt   *time.Time     `json:"finished_at"`
		Reason       string         `json:"reason"`
		Why          []protocol.Why `json:"why,omitempty"`
		Exercise     bool           `json:"exercise"`
		Text         string         `json:"text"`
		HeardMS      int64          `json:"heard_ms,omitempty"`
		MissedMS     int64          `json:"missed_ms,omitempty"`
	}{d.Item, d.Announcement, d.Device, d.Status, d.ScheduledAt, timeOrNull(d.StartedAt), timeOrNull(d.FinishedAt), d.Reason, d.Why, d.Exercise, d.Text, d.HeardMS, d.MissedMS})
}

// timeOrNull is nil for the zero time, which JSON then writes as null.
func timeOrNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
