package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// item is a plan item id as the scheduler makes them: <rule>-<unix start>.
func item(rule string, start time.Time) string {
	return rule + "-" + strconv.FormatInt(start.Unix(), 10)
}

func event(it string, typ protocol.EventType, at time.Time, reason string) protocol.Event {
	return protocol.Event{Item: it, Announcement: "a-1", Type: typ, At: at, Reason: reason}
}

func report(t *testing.T, s *Store) []Delivery {
	t.Helper()
	r, err := s.Report(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecordEventLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	it := item("a-1", t0)
	steps := []struct {
		typ                protocol.EventType
		at                 time.Time
		wantStatus         string
		wantStart, wantEnd time.Time
	}{
		{protocol.EventReceived, t0.Add(-time.Hour), "received", time.Time{}, time.Time{}},
		{protocol.EventReady, t0.Add(-50 * time.Minute), "ready", time.Time{}, time.Time{}},
		{protocol.EventPlaying, t0.Add(20 * time.Millisecond), "playing", t0.Add(20 * time.Millisecond), time.Time{}},
		{protocol.EventPlayed, t0.Add(30 * time.Second), "played", t0.Add(20 * time.Millisecond), t0.Add(30 * time.Second)},
	}
	for _, st := range steps {
		if err := s.RecordEvent(ctx, "loa-1", event(it, st.typ, st.at, ""), st.at.Add(time.Second)); err != nil {
			t.Fatalf("RecordEvent(%s): %v", st.typ, err)
		}
		r := report(t, s)
		if len(r) != 1 {
			t.Fatalf("after %s: %d report rows", st.typ, len(r))
		}
		d := r[0]
		if d.Item != it || d.Device != "loa-1" || d.Announcement != "a-1" || d.Status != st.wantStatus ||
			!d.StartedAt.Equal(st.wantStart) || !d.FinishedAt.Equal(st.wantEnd) || !d.ScheduledAt.Equal(t0) {
			t.Fatalf("after %s: %+v; want status %s started %v finished %v scheduled %v", st.typ, d, st.wantStatus, st.wantStart, st.wantEnd, t0)
		}
	}
	played := report(t, s)

	// A QoS 1 re-delivery of the played event changes nothing.
	if err := s.RecordEvent(ctx, "loa-1", event(it, protocol.EventPlayed, t0.Add(30*time.Second), ""), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A late non-final event does not take the item back from played.
	if err := s.RecordEvent(ctx, "loa-1", event(it, protocol.EventPlaying, t0.Add(time.Second), ""), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, "loa-1", event(it, protocol.EventReady, t0.Add(-time.Minute), ""), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := report(t, s); !reflect.DeepEqual(got, played) {
		t.Fatalf("late or duplicate events changed the report:\n got %+v\nwant %+v", got, played)
	}
}

func TestRecordEventPreemptedThenResumed(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	it := item("a-1", t0)
	for _, e := range []protocol.Event{
		event(it, protocol.EventPlaying, t0, ""),
		event(it, protocol.EventPreempted, t0.Add(5*time.Second), "emergency e-1"),
		event(it, protocol.EventPlaying, t0.Add(time.Minute), ""),
		event(it, protocol.EventPlayed, t0.Add(2*time.Minute), ""),
	} {
		if err := s.RecordEvent(ctx, "loa-1", e, e.At); err != nil {
			t.Fatal(err)
		}
	}
	d := report(t, s)[0]
	if d.Status != "played" || !d.StartedAt.Equal(t0) || !d.FinishedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("%+v: want played, started at the first playing", d)
	}
}

// TestRecordEventPlayingAfterPlayed: answers resent after a reconnect may
// come in any order; a playing answer after the final one still gives the
// start, and changes nothing else.
func TestRecordEventPlayingAfterPlayed(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	it := item("a-1", t0)
	for _, e := range []protocol.Event{
		event(it, protocol.EventPlayed, t0.Add(2*time.Minute), ""),
		event(it, protocol.EventPlaying, t0, ""),
	} {
		if err := s.RecordEvent(ctx, "loa-1", e, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	d := report(t, s)[0]
	if d.Status != "played" || !d.StartedAt.Equal(t0) || !d.FinishedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("%+v: want played, started at the late playing answer", d)
	}
}

// TestRecordEventPlayedCarriesStart: a final answer names when the item
// first began, so the report has the start before (or without) the
// playing answer; a later playing answer does not move it.
func TestRecordEventPlayedCarriesStart(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	it := item("a-1", t0)
	played := event(it, protocol.EventPlayed, t0.Add(2*time.Minute), "")
	played.Started = t0
	for _, e := range []protocol.Event{played, event(it, protocol.EventPlaying, t0.Add(time.Minute), "")} {
		if err := s.RecordEvent(ctx, "loa-1", e, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		d := report(t, s)[0]
		if d.Status != "played" || !d.StartedAt.Equal(t0) || !d.FinishedAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("after %s: %+v: want played, started at the final answer's start", e.Type, d)
		}
	}
}

func TestRecordEventFailedKeepsReason(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	it := item("a-1", t0)
	ev := event(it, protocol.EventFailed, t0.Add(time.Second), "media cannot be played: bad frame")
	ev.Why = []protocol.Why{{Code: protocol.WhyMediaUnplayable, Args: []string{"bad frame"}}}
	if err := s.RecordEvent(ctx, "loa-1", ev, t0); err != nil {
		t.Fatal(err)
	}
	d := report(t, s)[0]
	if d.Status != "failed" || d.Reason != ev.Reason || !reflect.DeepEqual(d.Why, ev.Why) || d.FinishedAt.IsZero() || !d.StartedAt.IsZero() {
		t.Fatalf("%+v", d)
	}
}

func TestRecordEventUnknownDevice(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	err := s.RecordEvent(ctx, "ghost", event(item("a-1", t0), protocol.EventPlayed, t0, ""), t0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("RecordEvent from an unknown device = %v, want ErrNotFound", err)
	}
	if r := report(t, s); len(r) != 0 {
		t.Fatalf("report has rows: %+v", r)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d events stored, %v", n, err)
	}
}

func TestPendingThenEvents(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	addDevice(t, s, "loa-2")
	it := item("a-1", t0)
	if err := s.addPending(ctx, it, "a-1", t0, []string{"loa-1", "loa-2"}); err != nil {
		t.Fatal(err)
	}
	r := report(t, s)
	if len(r) != 2 || r[0].Status != StatusPending || r[1].Status != StatusPending || r[0].Device != "loa-1" || r[1].Device != "loa-2" {
		t.Fatalf("pending report: %+v", r)
	}
	if err := s.RecordEvent(ctx, "loa-1", event(it, protocol.EventPlayed, t0.Add(time.Minute), ""), t0); err != nil {
		t.Fatal(err)
	}
	// Adding pending again (the broadcaster and the API both do) keeps answers.
	if err := s.addPending(ctx, it, "a-1", t0, []string{"loa-1", "loa-2"}); err != nil {
		t.Fatal(err)
	}
	r = report(t, s)
	if len(r) != 2 || r[0].Status != "played" || r[1].Status != StatusPending {
		t.Fatalf("report after loa-1 played: %+v", r)
	}
	got, err := s.Deliveries(ctx, "a-1")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Deliveries(a-1) = %+v, %v", got, err)
	}
	if got, _ := s.Deliveries(ctx, "a-2"); len(got) != 0 {
		t.Fatalf("Deliveries(a-2) = %+v", got)
	}
}

func TestReportSinceUntil(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	for h := range 4 {
		at := t0.Add(time.Duration(h) * time.Hour)
		if err := s.addPending(ctx, item("a-"+strconv.Itoa(h), at), "a-"+strconv.Itoa(h), at, []string{"loa-1"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name         string
		since, until time.Time
		want         []string
	}{
		{"open", time.Time{}, time.Time{}, []string{"a-0", "a-1", "a-2", "a-3"}},
		{"since inclusive", t0.Add(time.Hour), time.Time{}, []string{"a-1", "a-2", "a-3"}},
		{"until exclusive", time.Time{}, t0.Add(2 * time.Hour), []string{"a-0", "a-1"}},
		{"window", t0.Add(30 * time.Minute), t0.Add(150 * time.Minute), []string{"a-1", "a-2"}},
		{"empty window", t0.Add(10 * time.Hour), time.Time{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Report(ctx, tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				t.Fatal("Report returned nil, want an empty list (JSON [])")
			}
			var got []string
			for _, d := range r {
				got = append(got, d.Announcement)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1", "thon-1")
	addDevice(t, s, "loa-2")
	addDevice(t, s, "loa-3")
	record := func(id string, st protocol.State, at time.Time) {
		t.Helper()
		if err := s.RecordState(ctx, id, st, at); err != nil {
			t.Fatal(err)
		}
	}
	record("loa-1", protocol.State{Online: true, State: protocol.StatePlaying, Playing: "a-1-1", Volume: 70, Version: "1.0"}, t0)
	// loa-2's will: offline, but it still names what it was playing.
	record("loa-2", protocol.State{Online: false, State: protocol.StatePlaying, Playing: "a-1-1", Volume: 60}, t0.Add(time.Minute))
	if err := s.RecordState(ctx, "ghost", protocol.State{Online: true, State: protocol.StateIdle}, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RecordState(ghost) = %v", err)
	}

	st, err := s.Status(ctx)
	if err != nil || len(st) != 3 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	one, two, three := st[0], st[1], st[2]
	if !one.Online || one.State != "playing" || one.Playing == nil || *one.Playing != "a-1-1" || !one.LastSeen.Equal(t0) ||
		!reflect.DeepEqual(one.Groups, []string{"thon-1"}) || one.Version != "1.0" {
		t.Errorf("online box: %+v", one)
	}
	if two.Online || two.State != "offline" || two.Playing != nil || !two.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("offline box: %+v (playing %v)", two, two.Playing)
	}
	if three.Online || three.State != "offline" || three.Playing != nil || !three.LastSeen.IsZero() || three.Volume != 80 {
		t.Errorf("never-seen box: %+v", three)
	}

	// The JSON shape `loa status -o json` prints.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "groups", "online", "state", "playing", "volume", "last_seen"} {
		if _, ok := rows[2][k]; !ok {
			t.Errorf("status JSON %s lacks %q", b, k)
		}
	}
	if rows[2]["playing"] != nil || rows[2]["last_seen"] != nil {
		t.Errorf("never-seen box: playing %v, last_seen %v; want null for both", rows[2]["playing"], rows[2]["last_seen"])
	}
	var back []DeviceStatus
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("status JSON does not read back:\n got %+v\nwant %+v (%v)", back, st, err)
	}
}

func TestReportJSON(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	if err := s.addPending(ctx, item("a-1", t0), "a-1", t0, []string{"loa-1"}); err != nil {
		t.Fatal(err)
	}
	r := report(t, s)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"item", "announcement", "device", "status", "started_at", "finished_at", "reason"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("report JSON %s lacks %q", b, k)
		}
	}
	if rows[0]["started_at"] != nil || rows[0]["finished_at"] != nil {
		t.Errorf("a pending row: started_at %v finished_at %v, want null", rows[0]["started_at"], rows[0]["finished_at"])
	}
	var back []Delivery
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("report JSON does not read back:\n got %+v\nwant %+v (%v)", back, r, err)
	}
}

func TestMarkUnanswered(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	addDevice(t, s, "loa-1", "thon-1")
	addDevice(t, s, "loa-2", "thon-1")
	rule := Rule{ID: "a-1", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Media: shaA, Priority: protocol.Normal,
		Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
	if err := s.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	item := "a-1-" + strconv.FormatInt(t0.Unix(), 10) // pending on both boxes: AddRule recorded it
	if err := s.RecordEvent(ctx, "loa-1", protocol.Event{Item: item, Announcement: "a-1", Type: protocol.EventPlayed, At: t0.Add(time.Minute)}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MarkUnanswered(ctx, t0.Add(14*time.Minute)); err != nil || n != 0 {
		t.Fatalf("inside the window: marked %d, %v", n, err)
	}
	if n, err := s.MarkUnanswered(ctx, t0.Add(16*time.Minute)); err != nil || n != 1 {
		t.Fatalf("after the window: marked %d, %v", n, err)
	}
	status := func() map[string]Delivery {
		rows, err := s.Deliveries(ctx, "a-1")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Delivery{}
		for _, d := range rows {
			m[d.Device] = d
		}
		return m
	}
	if got := status(); got["loa-1"].Status != "played" || got["loa-2"].Status != "missed" || got["loa-2"].Reason != NoAnswer ||
		!reflect.DeepEqual(got["loa-2"].Why, []protocol.Why{{Code: protocol.WhyNoAnswer}}) {
		t.Fatalf("after marking: %+v", got)
	}
	// The box comes back and delivers what it really did from its outbox.
	if err := s.RecordEvent(ctx, "loa-2", protocol.Event{Item: item, Announcement: "a-1", Type: protocol.EventPlayed, At: t0.Add(2 * time.Minute)}, t0.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := status()["loa-2"]; got.Status != "played" || got.Reason != "" || got.Why != nil {
		t.Fatalf("a late answer does not correct the report: %+v", got)
	}
}

func TestMarkUnansweredCancelled(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	addDevice(t, s, "loa-1", "thon-1")
	rule := Rule{ID: "a-2", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Media: shaA, Priority: protocol.Normal,
		Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
	if err := s.AddRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelRule(ctx, "a-2", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MarkUnanswered(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("marked %d missed, %v", n, err)
	}
	rows, _ := s.Deliveries(ctx, "a-2")
	if len(rows) != 1 || rows[0].Status != "cancelled" || rows[0].Reason != CancelledUnanswered ||
		!reflect.DeepEqual(rows[0].Why, []protocol.Why{{Code: protocol.WhyCancelledUnanswered}}) {
		t.Fatalf("a cancelled announcement's unanswered row: %+v", rows)
	}
}

// TestAddRuleRecordsPending: a one-off rule is stored with a pending row for
// its item on each box its targets reach (a rule that is refused leaves no
// row); a schedule gets none (the replan records its items' rows).
// TargetDevices names the same boxes.
func TestAddRuleRecordsPending(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	addDevice(t, s, "loa-1", "thon-1")
	addDevice(t, s, "loa-2", "thon-1", "thon-2")
	addDevice(t, s, "loa-3", "thon-2")
	addDevice(t, s, "loa-4")
	start := t0.Add(1500 * time.Millisecond) // the scheduler's item starts on the whole second
	tests := []struct {
		id      string
		targets Targets
		want    []string
	}{
		{"a-all", Targets{All: true}, []string{"loa-1", "loa-2", "loa-3", "loa-4"}},
		{"a-group", Targets{Groups: []string{"thon-1"}}, []string{"loa-1", "loa-2"}},
		{"a-groups", Targets{Groups: []string{"thon-1", "thon-2"}}, []string{"loa-1", "loa-2", "loa-3"}},
		{"a-group-box", Targets{Groups: []string{"thon-2"}, Devices: []string{"loa-4", "loa-2"}}, []string{"loa-2", "loa-3", "loa-4"}},
		{"a-gone", Targets{Devices: []string{"loa-9"}}, []string{}},
		{"a-none", Targets{}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			r := Rule{ID: tc.id, Kind: KindOnce, Start: start, Targets: tc.targets, Media: shaA, Priority: protocol.Normal,
				Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
			if err := s.AddRule(ctx, r); err != nil {
				t.Fatal(err)
			}
			rows, err := s.Deliveries(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, d := range rows {
				if d.Item != item(tc.id, t0.Add(time.Second)) || d.Status != StatusPending || !d.ScheduledAt.Equal(t0.Add(time.Second)) {
					t.Fatalf("row %+v", d)
				}
				got = append(got, d.Device)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pending rows for %v, want %v", got, tc.want)
			}
			if ids, err := s.TargetDevices(ctx, tc.targets); err != nil || !slices.Equal(ids, tc.want) {
				t.Fatalf("TargetDevices = %v, %v; want %v", ids, err, tc.want)
			}
		})
	}
	before := len(report(t, s))
	cron := Rule{ID: "s-1", Kind: KindCron, Cron: "0 6 * * *", Targets: Targets{All: true}, Media: shaA, Priority: protocol.Normal,
		Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
	if err := s.AddRule(ctx, cron); err != nil {
		t.Fatal(err)
	}
	taken := Rule{ID: "a-group", Kind: KindOnce, Start: t0.Add(time.Hour), Targets: Targets{All: true}, Media: shaA,
		Priority: protocol.Normal, Repeat: 1, Validity: 15 * time.Minute, CreatedAt: t0}
	if err := s.AddRule(ctx, taken); err == nil {
		t.Fatal("AddRule with a taken id succeeded")
	}
	badMedia := taken
	badMedia.ID, badMedia.Media = "a-bad", "c"
	if err := s.AddRule(ctx, badMedia); err == nil {
		t.Fatal("AddRule with unknown media succeeded")
	}
	if after := len(report(t, s)); after != before {
		t.Fatalf("a schedule and two refused rules made %d report rows", after-before)
	}
}

// TestAddRuleKeepsAnEarlierAnswer: a box that answers for an item before
// its pending rows are written (the plan may go out first) keeps its answer;
// the other boxes are pending.
func TestAddRuleKeepsAnEarlierAnswer(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addMedia(t, s, shaA)
	addDevice(t, s, "loa-1")
	addDevice(t, s, "loa-2")
	it := item("e-1", t0)
	if err := s.RecordEvent(ctx, "loa-1", protocol.Event{Item: it, Announcement: "e-1", Type: protocol.EventReceived, At: t0}, t0); err != nil {
		t.Fatal(err)
	}
	r := Rule{ID: "e-1", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Priority: protocol.Emergency, Repeat: 1,
		Validity: time.Hour, Tone: protocol.ToneSiren, CreatedAt: t0}
	if err := s.AddRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Deliveries(ctx, "e-1")
	if err != nil || len(rows) != 2 || rows[0].Status != "received" || rows[1].Status != StatusPending {
		t.Fatalf("rows %+v, %v", rows, err)
	}
}

// TestAddRuleAtScale: an emergency to 1,000 boxes is 1,000 pending rows,
// written by AddRule alone.
func TestAddRuleAtScale(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	const boxes = 1000
	for i := range boxes {
		if err := s.AddDevice(ctx, Device{ID: fmt.Sprintf("box-%05d", i), Groups: []string{fmt.Sprintf("g-%02d", i%10)}, Volume: 70, CreatedAt: t0}, "h"); err != nil {
			t.Fatal(err)
		}
	}
	r := Rule{ID: "e-1", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Priority: protocol.Emergency, Repeat: 3,
		Validity: time.Hour, Tone: protocol.ToneSiren, CreatedAt: t0}
	if err := s.AddRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Deliveries(ctx, "e-1")
	if err != nil || len(rows) != boxes {
		t.Fatalf("%d rows, %v; want %d", len(rows), err, boxes)
	}
	for i, d := range rows {
		if d.Device != fmt.Sprintf("box-%05d", i) || d.Status != StatusPending || d.Item != item("e-1", t0) {
			t.Fatalf("row %d: %+v", i, d)
		}
	}
}

// TestAddRuleThen: then runs once the rule can be read (the replan reads it)
// and before its rows are written; they are all there when AddRuleThen
// returns. A refused rule does not call then.
func TestAddRuleThen(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addDevice(t, s, "loa-1")
	addDevice(t, s, "loa-2")
	r := Rule{ID: "e-1", Kind: KindOnce, Start: t0, Targets: Targets{All: true}, Priority: protocol.Emergency, Repeat: 1,
		Validity: time.Hour, Tone: protocol.ToneSiren, CreatedAt: t0}
	calls := 0
	then := func() {
		calls++
		if _, err := s.RuleByID(ctx, "e-1"); err != nil {
			t.Errorf("in then: the rule cannot be read: %v", err)
		}
		if rows, _ := s.Deliveries(ctx, "e-1"); len(rows) != 0 {
			t.Errorf("in then: %d rows already", len(rows))
		}
	}
	if err := s.AddRuleThen(ctx, r, then); err != nil || calls != 1 {
		t.Fatalf("AddRuleThen: %v, then called %d times", err, calls)
	}
	if rows, err := s.Deliveries(ctx, "e-1"); err != nil || len(rows) != 2 {
		t.Fatalf("after AddRuleThen: %d rows, %v; want 2", len(rows), err)
	}
	if err := s.AddRuleThen(ctx, r, then); err == nil || calls != 1 {
		t.Fatalf("AddRuleThen with a taken id: %v, then called %d times", err, calls)
	}
}

// addPending records one item's pending rows, as AddPendingMany does.
func (s *Store) addPending(ctx context.Context, item, announcement string, scheduled time.Time, devices []string) error {
	return s.AddPendingMany(ctx, []Pending{{Item: item, Announcement: announcement, Scheduled: scheduled, Devices: devices}})
}
