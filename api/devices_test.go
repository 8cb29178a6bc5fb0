package api_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

func TestUnauthorized(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tok := range []string{"", "wrong", adminToken + "x", strings.ToUpper(adminToken)} {
		c := api.NewClient(e.srv.URL, tok)
		calls := map[string]func() error{
			"device list":  func() error { _, err := c.Devices(ctx); return err },
			"device add":   func() error { _, err := c.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-1"}); return err },
			"media add":    func() error { _, err := c.AddMedia(ctx, "x", strings.NewReader("x")); return err },
			"status":       func() error { _, err := c.Status(ctx); return err },
			"report":       func() error { _, err := c.Report(ctx, "", ""); return err },
			"announce":     func() error { _, err := c.Announce(ctx, api.AnnounceRequest{}); return err },
			"schedule add": func() error { _, err := c.AddSchedule(ctx, api.AnnounceRequest{}); return err },
		}
		for name, call := range calls {
			t.Run(name+"/"+tok, func(t *testing.T) {
				ae := apiError(t, call(), http.StatusUnauthorized)
				if ae.Code != string(messages.Unauthorized) || ae.Message != messages.T(messages.Unauthorized) {
					t.Fatalf("answer %+v, want the Unauthorized message", ae)
				}
			})
		}
	}
	// Nothing was done by the refused calls.
	if d, err := e.client.Devices(ctx); err != nil || len(d) != 0 {
		t.Fatalf("devices %+v, %v", d, err)
	}
}

func TestDeviceAddListRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-cho", Name: "Loa chợ", Groups: []string{"thon-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(resp.Token) {
		t.Fatalf("token %q", resp.Token)
	}
	d := resp.Device
	if d.ID != "loa-cho" || d.Name != "Loa chợ" || !reflect.DeepEqual(d.Groups, []string{"thon-1"}) || d.Volume != 80 || !d.CreatedAt.Equal(e.now) {
		t.Fatalf("device %+v", d)
	}
	for _, want := range []string{"id: loa-cho", "site: xa-an-binh", "broker: tcp://10.0.0.1:1883", "server: http://10.0.0.1:8080", "token: " + resp.Token} {
		if !strings.Contains(resp.AgentConfig, want+"\n") {
			t.Errorf("agent config lacks %q:\n%s", want, resp.AgentConfig)
		}
	}
	if _, configs := e.bc.counts(); configs == 0 {
		t.Error("adding a box did not publish configs")
	}
	vol := 30
	if _, err := e.client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-2", Volume: &vol}); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.Devices(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "loa-2" || list[0].Volume != 30 || list[1].ID != "loa-cho" {
		t.Fatalf("devices %+v, %v", list, err)
	}

	// Duplicate id: 409, the first box unchanged, its token still valid.
	_, err = e.client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-cho", Name: "other", Groups: []string{"thon-2"}})
	ae := apiError(t, err, http.StatusConflict)
	if ae.Code != string(messages.DeviceExists) || !strings.Contains(ae.Message, `"loa-cho"`) {
		t.Fatalf("duplicate: %+v", ae)
	}
	if after, _ := e.client.Devices(ctx); !reflect.DeepEqual(after, list) {
		t.Fatalf("devices changed by a refused add:\n%+v\n%+v", list, after)
	}
	if code := e.getMedia(t, strings.Repeat("0", 64), "loa-cho", resp.Token, nil).StatusCode; code != http.StatusNotFound {
		t.Fatalf("the first box's token no longer works: %d", code)
	}

	if err := e.client.RemoveDevice(ctx, "loa-2"); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.client.Devices(ctx); len(list) != 1 || list[0].ID != "loa-cho" {
		t.Fatalf("after rm: %+v", list)
	}
	e.bc.mu.Lock()
	forgotten := slices.Clone(e.bc.forgotten)
	e.bc.mu.Unlock()
	if !slices.Equal(forgotten, []string{"loa-2"}) {
		t.Fatalf("retained config cleared for %v", forgotten)
	}
	ae = apiError(t, e.client.RemoveDevice(ctx, "loa-2"), http.StatusNotFound)
	if ae.Code != string(messages.UnknownDevice) || !strings.Contains(ae.Message, "loa-2") {
		t.Fatalf("rm twice: %+v", ae)
	}
}

func TestDeviceAddRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad, big := -1, 101
	tests := []struct {
		name   string
		req    api.AddDeviceRequest
		status int
		code   messages.Key
	}{
		{"empty id", api.AddDeviceRequest{ID: ""}, 400, messages.BadName},
		{"slash", api.AddDeviceRequest{ID: "loa/1"}, 400, messages.BadName},
		{"wildcard", api.AddDeviceRequest{ID: "loa+"}, 400, messages.BadName},
		{"space", api.AddDeviceRequest{ID: "loa 1"}, 400, messages.BadName},
		{"vietnamese", api.AddDeviceRequest{ID: "loa-chợ"}, 400, messages.BadName},
		{"dot dot", api.AddDeviceRequest{ID: ".."}, 400, messages.BadName},
		{"the controller's own name", api.AddDeviceRequest{ID: "loa-controller"}, 400, messages.BadName},
		{"bad group", api.AddDeviceRequest{ID: "loa-1", Groups: []string{"thôn 1"}}, 400, messages.BadName},
		{"volume below 0", api.AddDeviceRequest{ID: "loa-1", Volume: &bad}, 400, messages.BadVolume},
		{"volume over 100", api.AddDeviceRequest{ID: "loa-1", Volume: &big}, 400, messages.BadVolume},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.AddDevice(ctx, tc.req)
			if ae := apiError(t, err, tc.status); ae.Code != string(tc.code) {
				t.Fatalf("code %s (%s), want %s", ae.Code, ae.Message, tc.code)
			}
		})
	}
	if list, _ := e.client.Devices(ctx); len(list) != 0 {
		t.Fatalf("refused adds stored boxes: %+v", list)
	}
}

func TestDeviceVolume(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addDevice(t, "loa-1")
	_, before := e.bc.counts()
	d, err := e.client.SetVolume(ctx, "loa-1", 55)
	if err != nil || d.Volume != 55 {
		t.Fatalf("SetVolume = %+v, %v", d, err)
	}
	if _, after := e.bc.counts(); after != before+1 {
		t.Fatalf("configs published %d times, want once more than %d", after, before)
	}
	for _, v := range []int{-1, 101, 1000} {
		_, err := e.client.SetVolume(ctx, "loa-1", v)
		if ae := apiError(t, err, http.StatusBadRequest); ae.Code != string(messages.BadVolume) {
			t.Fatalf("volume %d: %+v", v, ae)
		}
	}
	if list, _ := e.client.Devices(ctx); list[0].Volume != 55 {
		t.Fatalf("volume now %d", list[0].Volume)
	}
	_, err = e.client.SetVolume(ctx, "ghost", 50)
	if ae := apiError(t, err, http.StatusNotFound); ae.Code != string(messages.UnknownDevice) || !strings.Contains(ae.Message, "ghost") {
		t.Fatalf("unknown box: %+v", ae)
	}
}

func TestGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addDevice(t, "loa-1", "thon-1")
	e.addDevice(t, "loa-2")
	g, err := e.client.AddToGroup(ctx, "thon-1", []string{"loa-2"})
	if err != nil || !reflect.DeepEqual(g, store.Group{Name: "thon-1", Devices: []string{"loa-1", "loa-2"}}) {
		t.Fatalf("AddToGroup = %+v, %v", g, err)
	}
	before, _ := e.client.Groups(ctx)

	_, err = e.client.AddToGroup(ctx, "thon-2", []string{"loa-1", "ghost"})
	ae := apiError(t, err, http.StatusNotFound)
	if ae.Code != string(messages.UnknownDevice) || !strings.Contains(ae.Message, `"ghost"`) {
		t.Fatalf("unknown box: %+v", ae)
	}
	_, err = e.client.RemoveFromGroup(ctx, "thon-1", []string{"loa-1", "ghost"})
	if ae := apiError(t, err, http.StatusNotFound); !strings.Contains(ae.Message, "ghost") {
		t.Fatalf("remove unknown box: %+v", ae)
	}
	_, err = e.client.RemoveFromGroup(ctx, "thon-9", []string{"loa-1"})
	apiError(t, err, http.StatusNotFound)
	_, err = e.client.AddToGroup(ctx, "thôn", []string{"loa-1"})
	apiError(t, err, http.StatusBadRequest)
	_, err = e.client.AddToGroup(ctx, "thon-1", nil)
	apiError(t, err, http.StatusBadRequest)
	if after, _ := e.client.Groups(ctx); !reflect.DeepEqual(after, before) {
		t.Fatalf("groups changed by refused calls:\nbefore %+v\n after %+v", before, after)
	}

	g, err = e.client.RemoveFromGroup(ctx, "thon-1", []string{"loa-1", "loa-2"})
	if err != nil || g.Name != "thon-1" || g.Devices == nil || len(g.Devices) != 0 {
		t.Fatalf("RemoveFromGroup = %+v, %v", g, err)
	}
	if gs, err := e.client.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("groups %+v, %v", gs, err)
	}
}

func TestSite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := e.client.Site(ctx)
	if err != nil || s != (api.SiteInfo{Site: "xa-an-binh", Timezone: "Asia/Ho_Chi_Minh", Token: "admin", Role: "admin"}) {
		t.Fatalf("Site = %+v, %v", s, err)
	}
	_, err = api.NewClient(e.srv.URL, "").Site(ctx)
	apiError(t, err, http.StatusUnauthorized)
}

func TestStatusMarksSilentBoxesOffline(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "quiet")
	e.addDevice(t, "lively")
	ctx := context.Background()
	for id, seen := range map[string]time.Time{"quiet": e.now.Add(-2 * time.Minute), "lively": e.now.Add(-10 * time.Second)} {
		if err := e.store.RecordState(ctx, id, protocol.State{Online: true, State: protocol.StateIdle, At: seen}, seen); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range st {
		got[s.ID] = fmt.Sprintf("%v/%s", s.Online, s.State)
	}
	if got["quiet"] != "false/offline" || got["lively"] != "true/idle" {
		t.Fatalf("with StaleAfter 1 min: %v, want quiet offline and lively idle", got)
	}
}

func deg(v float64) *float64 { return &v }

// TestDeviceLocation: a box gets a place on the map when it is added or
// later, the list and the status show it, and it can be cleared.
func TestDeviceLocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-cho", Lat: deg(21.03), Lon: deg(105.85)})
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.Device; d.Lat == nil || d.Lon == nil || *d.Lat != 21.03 || *d.Lon != 105.85 {
		t.Fatalf("added box %+v", d)
	}
	e.addDevice(t, "loa-2")
	_, configs := e.bc.counts()
	d, err := e.client.SetLocation(ctx, "loa-2", deg(-8.5), deg(-179.25))
	if err != nil || d.ID != "loa-2" || d.Lat == nil || *d.Lat != -8.5 || *d.Lon != -179.25 {
		t.Fatalf("SetLocation = %+v, %v", d, err)
	}
	if _, after := e.bc.counts(); after != configs {
		t.Errorf("placing a box published configs %d times: boxes do not need their place", after-configs)
	}
	list, err := e.client.Devices(ctx)
	if err != nil || len(list) != 2 || *list[0].Lat != -8.5 || *list[0].Lon != -179.25 || *list[1].Lat != 21.03 || *list[1].Lon != 105.85 {
		t.Fatalf("devices %+v, %v", list, err)
	}
	st, err := e.client.Status(ctx)
	if err != nil || len(st) != 2 || st[0].Lat == nil || *st[0].Lat != -8.5 || *st[0].Lon != -179.25 || *st[1].Lat != 21.03 || *st[1].Lon != 105.85 {
		t.Fatalf("status %+v, %v", st, err)
	}

	// Cleared: the fields leave the JSON the console reads.
	if d, err := e.client.SetLocation(ctx, "loa-cho", nil, nil); err != nil || d.Lat != nil || d.Lon != nil {
		t.Fatalf("clear = %+v, %v", d, err)
	}
	for _, path := range []string{"/v1/devices", "/v1/status"} {
		rows := e.getJSON(t, path)
		if len(rows) != 2 || rows[0]["lat"] != -8.5 || rows[0]["lon"] != -179.25 {
			t.Fatalf("GET %s: %v, want loa-2 at lat -8.5, lon -179.25", path, rows)
		}
		for _, k := range []string{"lat", "lon"} {
			if v, ok := rows[1][k]; ok {
				t.Fatalf("GET %s: the cleared box has %s %v", path, k, v)
			}
		}
	}

	_, err = e.client.SetLocation(ctx, "ghost", deg(21), deg(105))
	if ae := apiError(t, err, http.StatusNotFound); ae.Code != string(messages.UnknownDevice) {
		t.Fatalf("unknown box: %+v", ae)
	}
}

func TestDeviceLocationRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addDevice(t, "loa-1")
	if _, err := e.client.SetLocation(ctx, "loa-1", deg(21.03), deg(105.85)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		lat, lon *float64
		want     string // the message
	}{
		{"latitude only", deg(21), nil, messages.T(messages.LocationBoth)},
		{"longitude only", nil, deg(105), messages.T(messages.LocationBoth)},
		{"latitude over 90", deg(91), deg(105), messages.T(messages.BadLocation, "91", "105")},
		{"latitude below -90", deg(-90.5), deg(105), messages.T(messages.BadLocation, "-90.5", "105")},
		{"longitude over 180", deg(21), deg(180.001), messages.T(messages.BadLocation, "21", "180.001")},
		{"longitude below -180", deg(21), deg(-200), messages.T(messages.BadLocation, "21", "-200")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-new", Lat: tc.lat, Lon: tc.lon})
			if ae := apiError(t, err, http.StatusBadRequest); ae.Message != tc.want {
				t.Fatalf("add: %q (%s), want %q", ae.Message, ae.Code, tc.want)
			}
			_, err = e.client.SetLocation(ctx, "loa-1", tc.lat, tc.lon)
			if ae := apiError(t, err, http.StatusBadRequest); ae.Message != tc.want {
				t.Fatalf("locate: %q (%s), want %q", ae.Message, ae.Code, tc.want)
			}
		})
	}

	// A viewer (or an operator) may see the map but not move a box.
	for _, role := range []string{"viewer", "operator"} {
		_, err := e.addToken(t, "the-"+role, role, "").SetLocation(ctx, "loa-1", nil, nil)
		if ae := apiError(t, err, http.StatusForbidden); ae.Code != string(messages.Forbidden) {
			t.Fatalf("%s: %+v", role, ae)
		}
	}
	list, err := e.client.Devices(ctx)
	if err != nil || len(list) != 1 || list[0].Lat == nil || *list[0].Lat != 21.03 || *list[0].Lon != 105.85 {
		t.Fatalf("refused calls changed the boxes: %+v, %v", list, err)
	}
}
