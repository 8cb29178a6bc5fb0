package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Paging of `loa status` and `loa report`: keyset ("seek") paging. A page
// starts after a cursor — the key of the last row of the page before — and
// is read from an index in key order, so page 200 of 10,000 boxes costs what
// page 1 does; OFFSET would read and throw away every row before the page,
// and a box added or removed between two requests would shift the rows
// (one skipped or shown twice). The cursor of the status is the box id; the
// report's is opaque (schedule time, item and box).

// MaxPageSize is the most rows one page holds.
const MaxPageSize = 500

// StateOnline is a status filter, not a state: every box that is not
// offline.
const StateOnline = "online"

// StatusStates are the states `loa status --state` accepts.
var StatusStates = []string{StateOnline, protocol.StateOffline, protocol.StateIdle, protocol.StatePlaying,
	protocol.StateWaitingForTime, protocol.StateError}

// ReportStatuses are the statuses a delivery row can have, which `loa
// report --status` accepts.
var ReportStatuses = []string{StatusPending, string(protocol.EventReceived), string(protocol.EventReady),
	string(protocol.EventPlaying), string(protocol.EventPlayed), string(protocol.EventFailed), string(protocol.EventMissed),
	string(protocol.EventPreempted), string(protocol.EventExpired), string(protocol.EventCancelled)}

// Errors of a query the store cannot run: the API checks its parameters
// first, so these are for other callers.
var (
	ErrBadCursor = errors.New("not a cursor of this list")
	ErrBadFilter = errors.New("not a valid filter")
)

// StatusQuery selects a page of boxes. Zero fields do not filter.
type StatusQuery struct {
	Group    string // boxes in this group; ErrNotFound if no box is
	State    string // one of StatusStates
	IDPrefix string // ids that start with this
	After    string // the cursor: boxes with ids after this one
	Limit    int    // rows per page, 1..MaxPageSize; 0 is MaxPageSize
	// StaleBefore: a box that says it is online but was last heard before
	// this is shown (and filtered) as offline.
	StaleBefore time.Time
}

// StatusPage is one page of boxes.
type StatusPage struct {
	Devices []DeviceStatus `json:"devices"`
	// Total is how many boxes match the whole query; Offset how many of
	// them come before this page.
	Total  int `json:"total"`
	Offset int `json:"offset"`
	// Counts are the boxes by state that the group and prefix select,
	// before the state filter: `--state offline` still says how many are
	// playing.
	Counts map[string]int `json:"counts"`
	// Next is the cursor of the next page (After), "" on the last.
	Next string `json:"next,omitempty"`
}

// effectiveState is what `loa status` shows: a box that never reported,
// said it went offline or fell silent is offline.
const effectiveState = `CASE WHEN s.device_id IS NULL OR s.online = 0 OR s.last_seen < ? THEN 'offline' ELSE s.state END`

// StatusPage reads one page of boxes with their last state, by id.
func (s *Store) StatusPage(ctx context.Context, q StatusQuery) (StatusPage, error) {
	limit, err := pageLimit(q.Limit)
	if err != nil {
		return StatusPage{}, err
	}
	if q.State != "" && !slices.Contains(StatusStates, q.State) {
		return StatusPage{}, fmt.Errorf("state %q: %w", q.State, ErrBadFilter)
	}
	if err := s.groupExists(ctx, q.Group); err != nil {
		return StatusPage{}, err
	}
	stale := ms(q.StaleBefore)
	// The boxes the group and prefix select; the state and the cursor
	// come on top.
	from := ` FROM devices d LEFT JOIN device_state s ON s.device_id = d.id`
	var where []string
	var args []any
	if q.Group != "" {
		from += ` JOIN group_members gm ON gm.device_id = d.id AND gm.group_name = ?`
		args = append(args, q.Group)
	}
	if q.IDPrefix != "" {
		// Ids are ASCII letters, digits, '-', '_' and '.', all below 0x7f:
		// a range on the primary key, unlike LIKE.
		where = append(where, `d.id >= ? AND d.id < ?`)
		args = append(args, q.IDPrefix, q.IDPrefix+"\x7f")
	}
	cond := func(extra ...string) string {
		all := append(slices.Clone(where), extra...)
		if len(all) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(all, " AND ")
	}

	// One pass over the selected boxes counts them by state and how many
	// come before the cursor.
	page := StatusPage{Counts: map[string]int{}, Devices: []DeviceStatus{}}
	countArgs := append([]any{stale, q.After}, args...)
	rows, err := s.read.QueryContext(ctx, `SELECT `+effectiveState+`, COUNT(*), COALESCE(SUM(d.id <= ?), 0)`+from+cond()+` GROUP BY 1`, countArgs...)
	if err != nil {
		return StatusPage{}, fmt.Errorf("count boxes: %w", err)
	}
	for rows.Next() {
		var state string
		var n, before int
		if err := rows.Scan(&state, &n, &before); err != nil {
			rows.Close()
			return StatusPage{}, err
		}
		page.Counts[state] = n
		if stateMatches(q.State, state) {
			page.Total += n
			if q.After != "" {
				page.Offset += before
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return StatusPage{}, fmt.Errorf("count boxes: %w", err)
	}

	extra := []string{}
	pageArgs := append([]any{stale}, args...)
	if q.After != "" {
		extra = append(extra, `d.id > ?`)
		pageArgs = append(pageArgs, q.After)
	}
	switch q.State {
	case "":
	case StateOnline:
		extra = append(extra, effectiveState+` != 'offline'`)
		pageArgs = append(pageArgs, stale)
	default:
		extra = append(extra, effectiveState+` = ?`)
		pageArgs = append(pageArgs, stale, q.State)
	}
	pageArgs = append(pageArgs, limit+1)
	rows, err = s.read.QueryContext(ctx, `SELECT d.id, d.name, d.volume, d.lat, d.lon, `+effectiveState+`, COALESCE(s.online, 0), COALESCE(s.playing, ''),
			COALESCE(s.version, ''), COALESCE(s.uptime_sec, 0), COALESCE(s.cache_bytes, 0), s.clock_offset_ms, COALESCE(s.error, ''),
			COALESCE(s.problems, ''), COALESCE(s.arch, ''), COALESCE(s.update_status, ''), COALESCE(s.time_source, ''), COALESCE(s.last_seen, 0)`+from+cond(extra...)+` ORDER BY d.id LIMIT ?`, pageArgs...)
	if err != nil {
		return StatusPage{}, fmt.Errorf("read status page: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var ds DeviceStatus
		var playing string
		var lastSeen int64
		var offset sql.NullInt64
		var lat, lon sql.NullFloat64
		var problems, update string
		if err := rows.Scan(&ds.ID, &ds.Name, &ds.Volume, &lat, &lon, &ds.State, &ds.Online, &playing, &ds.Version, &ds.UptimeSec,
			&ds.CacheBytes, &offset, &ds.Error, &problems, &ds.Arch, &update, &ds.TimeSource, &lastSeen); err != nil {
			return StatusPage{}, err
		}
		ds.Lat, ds.Lon = floatOrNil(lat), floatOrNil(lon)
		ds.Problems = decodeProblems(problems)
		ds.Update = decodeUpdate(update)
		ds.LastSeen = fromMS(lastSeen)
		if offset.Valid {
			ds.ClockOffsetMS = &offset.Int64
		}
		if ds.State == protocol.StateOffline {
			ds.Online = false
		} else if playing != "" {
			ds.Playing = &playing
		}
		page.Devices = append(page.Devices, ds)
		ids = append(ids, ds.ID)
	}
	if err := rows.Err(); err != nil {
		return StatusPage{}, fmt.Errorf("read status page: %w", err)
	}
	rows.Close()
	if len(page.Devices) > limit {
		page.Devices = page.Devices[:limit]
		ids = ids[:limit]
		page.Next = ids[limit-1]
	}
	groups, err := s.groupsOf(ctx, ids)
	if err != nil {
		return StatusPage{}, err
	}
	for i := range page.Devices {
		page.Devices[i].Groups = groups[page.Devices[i].ID]
		if page.Devices[i].Groups == nil {
			page.Devices[i].Groups = []string{}
		}
	}
	return page, nil
}

// stateMatches reports whether a box in state is selected by the filter.
func stateMatches(filter, state string) bool {
	switch filter {
	case "":
		return true
	case StateOnline:
		return state != protocol.StateOffline
	}
	return filter == state
}

// groupsOf reads the groups of the boxes ids, each sorted.
func (s *Store) groupsOf(ctx context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.read.QueryContext(ctx, `SELECT device_id, group_name FROM group_members WHERE device_id IN (`+
		placeholders(len(ids))+`) ORDER BY device_id, group_name`, args...)
	if err != nil {
		return nil, fmt.Errorf("read groups of boxes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, g string
		if err := rows.Scan(&id, &g); err != nil {
			return nil, err
		}
		out[id] = append(out[id], g)
	}
	return out, rows.Err()
}

// groupExists is ErrNotFound for a group no box is in ("" is no filter).
func (s *Store) groupExists(ctx context.Context, group string) error {
	if group == "" {
		return nil
	}
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM group_members WHERE group_name = ? LIMIT 1)`, group).Scan(&n); err != nil {
		return fmt.Errorf("look up group %s: %w", group, err)
	}
	if n == 0 {
		return fmt.Errorf("group %s: %w", group, ErrNotFound)
	}
	return nil
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return MaxPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, fmt.Errorf("page size %d is not within 1..%d: %w", n, MaxPageSize, ErrBadFilter)
	}
	return n, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// ReportQuery selects a page of the report. Zero fields do not filter.
type ReportQuery struct {
	Since, Until time.Time // scheduled in [Since, Until)
	Group        string    // boxes now in this group; ErrNotFound if no box is
	Device       string    // one box
	Status       string    // one of ReportStatuses
	Announcement string    // one announcement or schedule
	After        string    // the cursor: ReportPage.Next of the page before
	Limit        int       // rows per page, 1..MaxPageSize; 0 is MaxPageSize
}

// ReportPage is one page of the report, oldest first.
type ReportPage struct {
	Rows []Delivery `json:"rows"`
	// Total is how many rows match the whole query; Offset how many of
	// them come before this page.
	Total  int `json:"total"`
	Offset int `json:"offset"`
	// Counts are the rows by status that the other filters select, before
	// the status filter.
	Counts map[string]int `json:"counts"`
	// Announcements sums up each announcement on this page over the whole
	// query (before the status filter), in the order they first appear.
	Announcements []AnnouncementSummary `json:"announcements"`
	// Next is the cursor of the next page (After), "" on the last.
	Next string `json:"next,omitempty"`
}

// AnnouncementSummary counts an announcement's rows by status.
type AnnouncementSummary struct {
	Announcement string         `json:"announcement"`
	Text         string         `json:"text"`
	Total        int            `json:"total"`
	Counts       map[string]int `json:"counts"`
}

// ReportPage reads one page of the report, ordered as Report is (schedule
// time, item, box). Counts come from SQL aggregates, not from reading rows.
func (s *Store) ReportPage(ctx context.Context, q ReportQuery) (ReportPage, error) {
	limit, err := pageLimit(q.Limit)
	if err != nil {
		return ReportPage{}, err
	}
	if q.Status != "" && !slices.Contains(ReportStatuses, q.Status) {
		return ReportPage{}, fmt.Errorf("status %q: %w", q.Status, ErrBadFilter)
	}
	var cur reportCursor
	if q.After != "" {
		if cur, err = parseReportCursor(q.After); err != nil {
			return ReportPage{}, err
		}
	}
	if err := s.groupExists(ctx, q.Group); err != nil {
		return ReportPage{}, err
	}
	hi := int64(1<<62 - 1)
	if !q.Until.IsZero() {
		hi = ms(q.Until)
	}
	// The unary + keeps the planner off the schedule-time index for the
	// counts: the status index covers them, in GROUP BY order.
	where := []string{`+d.scheduled_at >= ?`, `+d.scheduled_at < ?`}
	args := []any{ms(q.Since), hi}
	if q.Group != "" {
		where = append(where, `d.device_id IN (SELECT device_id FROM group_members WHERE group_name = ?)`)
		args = append(args, q.Group)
	}
	if q.Device != "" {
		where = append(where, `d.device_id = ?`)
		args = append(args, q.Device)
	}
	if q.Announcement != "" {
		where = append(where, `d.announcement = ?`)
		args = append(args, q.Announcement)
	}
	cond := func(extra ...string) string {
		return " WHERE " + strings.Join(append(slices.Clone(where), extra...), " AND ")
	}
	after := `(d.scheduled_at, d.item, d.device_id) > (?, ?, ?)`

	page := ReportPage{Rows: []Delivery{}, Counts: map[string]int{}, Announcements: []AnnouncementSummary{}}
	// Counts by status, and how many rows come before the cursor.
	before := `0`
	countArgs := slices.Clone(args)
	if q.After != "" {
		before = `COALESCE(SUM(NOT ` + after + `), 0)`
		countArgs = append([]any{cur.scheduled, cur.item, cur.device}, countArgs...)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT d.status, COUNT(*), `+before+` FROM deliveries d`+cond()+` GROUP BY d.status`, countArgs...)
	if err != nil {
		return ReportPage{}, fmt.Errorf("count report rows: %w", err)
	}
	for rows.Next() {
		var status string
		var n, b int
		if err := rows.Scan(&status, &n, &b); err != nil {
			rows.Close()
			return ReportPage{}, err
		}
		page.Counts[status] = n
		if q.Status == "" || q.Status == status {
			page.Total += n
			page.Offset += b
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ReportPage{}, fmt.Errorf("count report rows: %w", err)
	}

	// The page seeks in the index in report order: the cursor, when it is
	// past since, is where the page starts.
	pageWhere := []string{`d.scheduled_at >= ?`, `d.scheduled_at < ?`}
	pageArgs := []any{ms(q.Since), hi}
	if q.After != "" && cur.scheduled >= ms(q.Since) {
		pageWhere[0] = after
		pageArgs = []any{cur.scheduled, cur.item, cur.device, hi}
	}
	pageWhere = append(pageWhere, where[2:]...)
	pageArgs = append(pageArgs, args[2:]...)
	if q.Status != "" {
		pageWhere = append(pageWhere, `d.status = ?`)
		pageArgs = append(pageArgs, q.Status)
	}
	pageArgs = append(pageArgs, limit+1)
	page.Rows, err = s.deliveries(ctx, ` WHERE `+strings.Join(pageWhere, " AND ")+reportOrder+` LIMIT ?`, pageArgs...)
	if err != nil {
		return ReportPage{}, err
	}
	if len(page.Rows) > limit {
		page.Rows = page.Rows[:limit]
		last := page.Rows[limit-1]
		page.Next = reportCursor{ms(last.ScheduledAt), last.Item, last.Device}.String()
	}

	// The announcements on this page, summed up over the whole query.
	var order []string
	texts := map[string]string{}
	for _, r := range page.Rows {
		if _, seen := texts[r.Announcement]; !seen {
			texts[r.Announcement] = r.Text
			order = append(order, r.Announcement)
		}
	}
	if len(order) == 0 {
		return page, nil
	}
	sumArgs := slices.Clone(args)
	for _, a := range order {
		sumArgs = append(sumArgs, a)
	}
	rows, err = s.read.QueryContext(ctx, `SELECT d.announcement, d.status, COUNT(*) FROM deliveries d`+
		cond(`d.announcement IN (`+placeholders(len(order))+`)`)+` GROUP BY d.announcement, d.status`, sumArgs...)
	if err != nil {
		return ReportPage{}, fmt.Errorf("sum up announcements: %w", err)
	}
	defer rows.Close()
	sums := map[string]*AnnouncementSummary{}
	for _, a := range order {
		sums[a] = &AnnouncementSummary{Announcement: a, Text: texts[a], Counts: map[string]int{}}
	}
	for rows.Next() {
		var a, status string
		var n int
		if err := rows.Scan(&a, &status, &n); err != nil {
			return ReportPage{}, err
		}
		sums[a].Counts[status] = n
		sums[a].Total += n
	}
	if err := rows.Err(); err != nil {
		return ReportPage{}, fmt.Errorf("sum up announcements: %w", err)
	}
	for _, a := range order {
		page.Announcements = append(page.Announcements, *sums[a])
	}
	return page, nil
}

// reportCursor is the key of a report row.
type reportCursor struct {
	scheduled    int64
	item, device string
}

// String encodes the cursor for a URL and a command line.
func (c reportCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.scheduled, 10) + "|" + c.item + "|" + c.device))
}

func parseReportCursor(s string) (reportCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return reportCursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	v := string(b)
	i, j := strings.IndexByte(v, '|'), strings.LastIndexByte(v, '|')
	if i < 0 || j <= i {
		return reportCursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	sched, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil {
		return reportCursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	return reportCursor{sched, v[i+1 : j], v[j+1:]}, nil
}
