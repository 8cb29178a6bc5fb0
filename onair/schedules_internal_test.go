package onair

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// TestOccurrenceOnAirTwice: a scheduled relay whose station dropped and
// came back goes on air again within its occurrence; that is recorded
// once, and does not close the closed on-air channel (which took the
// controller down).
func TestOccurrenceOnAirTwice(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := store.Rule{ID: "s-radio", Kind: store.KindCron, Cron: "0 6 * * *", Targets: store.Targets{All: true}, Priority: protocol.High,
		Repeat: 1, Validity: time.Hour, RelayURL: "http://radio.example/stream", RelayFor: time.Hour, CreatedAt: time.Now()}
	if err := st.AddRule(ctx, r); err != nil {
		t.Fatal(err)
	}
	m := &Manager{store: st, log: slog.New(slog.DiscardHandler)}
	s := &session{rule: r, kind: store.SessionRelay, source: r.RelayURL, ctx: ctx, onAir: make(chan struct{}),
		record: store.Session{ID: "s-radio-1", Rule: r.ID, Kind: store.SessionRelay, Source: r.RelayURL, Targets: r.Targets, Priority: r.Priority, StartedAt: time.Now()}}
	m.occurrenceOnAir(s)
	m.occurrenceOnAir(s) // the station came back: a second session on air
	if got, err := st.SessionsOfRule(ctx, r.ID); err != nil || len(got) != 1 {
		t.Fatalf("sessions of the schedule: %+v, %v; want one", got, err)
	}
}
