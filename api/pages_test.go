package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// get answers GET path with the admin token: status, headers and body.
func (e *env) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestStatusAndReportRefuseBadParameters(t *testing.T) {
	e, _ := commune(t)
	tests := []struct {
		path   string
		status int
		code   messages.Key
		naming string
	}{
		{"/v1/status?limit=0", 400, messages.BadLimit, `"0"`},
		{"/v1/status?limit=501", 400, messages.BadLimit, "500"},
		{"/v1/status?limit=ten", 400, messages.BadLimit, `"ten"`},
		{"/v1/status?limit=", 400, messages.BadLimit, `""`},
		{"/v1/status?state=asleep", 400, messages.BadState, "waiting-for-time"},
		{"/v1/status?group=th%C3%B4n", 400, messages.BadName, "group"},
		{"/v1/status?group=thon-9", 404, messages.UnknownGroup, `"thon-9"`},
		{"/v1/status?id_prefix=a%2Fb", 400, messages.BadName, "id_prefix"},
		{"/v1/status?after=a%2Fb", 400, messages.BadCursor, "a/b"},
		{"/v1/report?limit=-1", 400, messages.BadLimit, `"-1"`},
		{"/v1/report?status=sung", 400, messages.BadReportStatus, "played"},
		{"/v1/report?group=thon-9", 404, messages.UnknownGroup, `"thon-9"`},
		{"/v1/report?device=loa-9", 404, messages.UnknownDevice, `"loa-9"`},
		{"/v1/report?after=not-a-cursor", 400, messages.BadCursor, "not-a-cursor"},
		{"/v1/report?since=yesterday", 400, messages.BadTime, "yesterday"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := e.get(t, tc.path)
			var er api.ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil {
				t.Fatalf("%s: %s", resp.Status, body)
			}
			if resp.StatusCode != tc.status || er.Code != string(tc.code) || !strings.Contains(er.Error, tc.naming) {
				t.Errorf("%s %+v; want %d %s naming %s", resp.Status, er, tc.status, tc.code, tc.naming)
			}
		})
	}
}

func TestStatusPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := 1; i <= 7; i++ {
		g := "thon-1"
		if i > 4 {
			g = "thon-2"
		}
		e.addDevice(t, fmt.Sprintf("loa-%d", i), g)
	}
	if err := e.store.RecordState(ctx, "loa-2", protocol.State{Online: true, State: protocol.StatePlaying, Playing: "x-1"}, e.now); err != nil {
		t.Fatal(err)
	}
	// Silent for longer than StaleAfter: offline, in the rows and the filter.
	if err := e.store.RecordState(ctx, "loa-3", protocol.State{Online: true, State: protocol.StateIdle}, e.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	p, err := e.client.StatusPage(ctx, api.StatusQuery{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Devices) != 3 || p.Devices[0].ID != "loa-1" || p.Total != 7 || p.Offset != 0 || p.Next != "loa-3" ||
		p.Counts["playing"] != 1 || p.Counts["offline"] != 6 || p.Devices[2].State != "offline" {
		t.Fatalf("first page %+v", p)
	}
	p, err = e.client.StatusPage(ctx, api.StatusQuery{Limit: 3, After: p.Next})
	if err != nil || len(p.Devices) != 3 || p.Devices[0].ID != "loa-4" || p.Offset != 3 || p.Next != "loa-6" {
		t.Fatalf("second page %+v, %v", p, err)
	}
	p, err = e.client.StatusPage(ctx, api.StatusQuery{Limit: 3, After: p.Next})
	if err != nil || len(p.Devices) != 1 || p.Devices[0].ID != "loa-7" || p.Offset != 6 || p.Next != "" {
		t.Fatalf("last page %+v, %v", p, err)
	}
	p, err = e.client.StatusPage(ctx, api.StatusQuery{Group: "thon-1", State: "online"})
	if err != nil || len(p.Devices) != 1 || p.Devices[0].ID != "loa-2" || *p.Devices[0].Playing != "x-1" || p.Total != 1 {
		t.Fatalf("online in thon-1 %+v, %v", p, err)
	}
	p, err = e.client.StatusPage(ctx, api.StatusQuery{Group: "thon-2", State: "playing"})
	if err != nil || len(p.Devices) != 0 || p.Devices == nil || p.Total != 0 || p.Counts["offline"] != 3 {
		t.Fatalf("nobody playing in thon-2 %+v, %v", p, err)
	}

	// An old client: no limit, no cursor. An array, and the headers say it
	// is all of it.
	resp, body := e.get(t, "/v1/status?group=thon-2")
	var rows []store.DeviceStatus
	if err := json.Unmarshal(body, &rows); err != nil || len(rows) != 3 || resp.Header.Get("X-Total-Count") != "3" || resp.Header.Get("Link") != "" {
		t.Fatalf("array answer %s %v %v: %s", resp.Header, rows, err, body)
	}
	// The client pages through everything.
	all, err := e.client.Status(ctx)
	if err != nil || len(all) != 7 || all[6].ID != "loa-7" {
		t.Fatalf("all %+v, %v", all, err)
	}
}

// The array answer without paging parameters is bounded, and says where
// the rest starts.
func TestStatusArrayIsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := store.MaxPageSize + 2
	for i := range n {
		if err := e.store.AddDevice(ctx, store.Device{ID: fmt.Sprintf("b-%04d", i), Groups: []string{"g"}, Volume: 80}, "h"); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := e.get(t, "/v1/status")
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil || len(rows) != store.MaxPageSize {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if resp.Header.Get("X-Total-Count") != fmt.Sprint(n) || resp.Header.Get("Link") != `</v1/status?after=b-0499&limit=500>; rel="next"` {
		t.Fatalf("headers %v", resp.Header)
	}
	all, err := e.client.Status(ctx)
	if err != nil || len(all) != n {
		t.Fatalf("client read %d of %d: %v", len(all), n, err)
	}
}

func TestReportPages(t *testing.T) {
	e, media := commune(t)
	ctx := context.Background()
	a, err := e.client.Announce(ctx, api.AnnounceRequest{Media: media, Targets: store.Targets{All: true}, Text: "họp thôn"})
	if err != nil {
		t.Fatal(err)
	}
	item := a.ID + "-" + fmt.Sprint(a.Start.Unix())
	if err := e.store.RecordEvent(ctx, "loa-3", protocol.Event{Item: item, Announcement: a.ID, Type: protocol.EventPlayed, At: a.Start}, e.now); err != nil {
		t.Fatal(err)
	}
	p, err := e.client.ReportPage(ctx, api.ReportQuery{Limit: 2})
	if err != nil || len(p.Rows) != 2 || p.Total != 3 || p.Next == "" || p.Counts["pending"] != 2 || p.Counts["played"] != 1 ||
		len(p.Announcements) != 1 || p.Announcements[0].Total != 3 || p.Announcements[0].Text != "họp thôn" {
		t.Fatalf("first page %+v, %v", p, err)
	}
	p, err = e.client.ReportPage(ctx, api.ReportQuery{Limit: 2, After: p.Next})
	if err != nil || len(p.Rows) != 1 || p.Rows[0].Device != "loa-3" || p.Offset != 2 || p.Next != "" {
		t.Fatalf("last page %+v, %v", p, err)
	}
	p, err = e.client.ReportPage(ctx, api.ReportQuery{Group: "thon-1", Status: "pending"})
	if err != nil || len(p.Rows) != 2 || p.Total != 2 {
		t.Fatalf("pending in thon-1 %+v, %v", p, err)
	}
	p, err = e.client.ReportPage(ctx, api.ReportQuery{Device: "loa-3"})
	if err != nil || len(p.Rows) != 1 || p.Rows[0].Device != "loa-3" || p.Total != 1 || p.Counts["played"] != 1 {
		t.Fatalf("loa-3's rows %+v, %v", p, err)
	}
	p, err = e.client.ReportPage(ctx, api.ReportQuery{Announcement: "a-none"})
	if err != nil || len(p.Rows) != 0 || p.Rows == nil || p.Total != 0 {
		t.Fatalf("unknown announcement: %+v, %v", p, err)
	}
	resp, body := e.get(t, "/v1/report?status=played")
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil || len(rows) != 1 || rows[0]["device"] != "loa-3" || resp.Header.Get("X-Total-Count") != "1" {
		t.Fatalf("array answer %v %v: %s", resp.Header, err, body)
	}
}
