package api_test

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// addToken makes a token through the API with the admin token and returns
// a client that uses it.
func (e *env) addToken(t *testing.T, name, role, expires string) *api.Client {
	t.Helper()
	res, err := e.client.AddToken(context.Background(), api.AddTokenRequest{Name: name, Role: role, Expires: expires})
	if err != nil {
		t.Fatalf("add token %s: %v", name, err)
	}
	return api.NewClient(e.srv.URL, res.Secret)
}

// TestRolesAllowAndRefuse calls the API with a token of each role: every
// call is either done or refused with 403 and the Forbidden message, and
// nothing a refused call asked for happens.
func TestRolesAllowAndRefuse(t *testing.T) {
	e := capEnv(t) // a box in son-thuy, speech, CAP areas
	ctx := context.Background()
	clients := map[string]*api.Client{"admin": e.client}
	for _, role := range []string{"viewer", "operator", "trigger"} {
		clients[role] = e.addToken(t, "the-"+role, role, "")
	}
	son := store.Targets{Groups: []string{"son-thuy"}}
	postAlert := func(c *api.Client) error {
		f, err := os.Open("../cap/testdata/valid/flashflood-alert.xml")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = c.PostCAP(ctx, f)
		return err
	}
	calls := []struct {
		name string
		call func(c *api.Client) error
		// allowed lists the roles that may make the call; all others get 403.
		allowed []string
	}{
		{"status", func(c *api.Client) error { _, err := c.Status(ctx); return err }, []string{"viewer", "operator", "admin"}},
		{"report", func(c *api.Client) error { _, err := c.Report(ctx, "", ""); return err }, []string{"viewer", "operator", "admin"}},
		{"site", func(c *api.Client) error { _, err := c.Site(ctx); return err }, []string{"viewer", "operator", "admin", "trigger"}},
		{"metrics", func(c *api.Client) error { _, err := c.Metrics(ctx); return err }, []string{"viewer", "operator", "admin"}},
		{"device list", func(c *api.Client) error { _, err := c.Devices(ctx); return err }, []string{"viewer", "operator", "admin"}},
		{"announce", func(c *api.Client) error {
			_, err := c.Announce(ctx, api.AnnounceRequest{Targets: son, Text: "Họp thôn lúc 19 giờ."})
			return err
		}, []string{"operator", "admin"}},
		{"emergency start and cancel", func(c *api.Client) error {
			if _, err := c.StartEmergency(ctx, api.AnnounceRequest{Targets: son, Tone: "fire"}); err != nil {
				return err
			}
			_, err := c.CancelEmergency(ctx, "")
			return err
		}, []string{"operator", "admin"}},
		{"schedule add", func(c *api.Client) error {
			_, err := c.AddSchedule(ctx, api.AnnounceRequest{Targets: son, Cron: "0 6 * * *", Text: "Bản tin sáng."})
			return err
		}, []string{"operator", "admin"}},
		{"device add", func(c *api.Client) error {
			_, err := c.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-new"})
			if err == nil {
				err = c.RemoveDevice(ctx, "loa-new")
			}
			return err
		}, []string{"admin"}},
		{"group add", func(c *api.Client) error { _, err := c.AddToGroup(ctx, "thon-2", []string{"loa-1"}); return err }, []string{"admin"}},
		{"token list", func(c *api.Client) error { _, err := c.Tokens(ctx); return err }, []string{"admin"}},
		{"token add", func(c *api.Client) error {
			_, err := c.AddToken(ctx, api.AddTokenRequest{Name: "made-by-admin", Role: "admin"})
			return err
		}, []string{"admin"}},
		{"CAP alert", postAlert, []string{"trigger", "operator", "admin"}},
	}
	for _, tc := range calls {
		for _, role := range []string{"viewer", "operator", "admin", "trigger"} {
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				err := tc.call(clients[role])
				allowed := strings.Contains(" "+strings.Join(tc.allowed, " ")+" ", " "+role+" ")
				if allowed {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				ae := apiError(t, err, http.StatusForbidden)
				if ae.Code != string(messages.Forbidden) || !strings.Contains(ae.Message, role) {
					t.Fatalf("answer %+v, want the Forbidden message naming the role", ae)
				}
			})
		}
	}
	// Refused calls did nothing: only the admin made tokens, only staff
	// that may announce did.
	tokens, err := e.client.Tokens(ctx)
	if err != nil || len(tokens) != 4 { // three roles, and one the admin made
		t.Fatalf("tokens: %+v, %v", tokens, err)
	}
	if ds, _ := e.client.Devices(ctx); len(ds) != 1 {
		t.Fatalf("devices: %+v", ds)
	}
}

// TestTokenLifecycle: a token works until it expires or is revoked, then
// is refused with 401 and a message that says why.
func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "duty-officer", Role: "operator", Expires: "720h"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(res.Secret) || res.Secret == adminToken {
		t.Fatalf("secret %q", res.Secret)
	}
	want := api.TokenInfo{Name: "duty-officer", Role: "operator", Status: api.TokenActive, CreatedAt: e.now.UTC(), ExpiresAt: e.now.UTC().Add(720 * time.Hour)}
	if !sameToken(res.Token, want) {
		t.Fatalf("token %+v, want %+v", res.Token, want)
	}
	// Only the hash is stored.
	if _, err := e.store.TokenByHash(ctx, auth.Hash(res.Secret)); err != nil {
		t.Fatalf("stored by its hash: %v", err)
	}
	officer := api.NewClient(e.srv.URL, res.Secret)
	if _, err := officer.Status(ctx); err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	list, err := e.client.Tokens(ctx)
	if err != nil || len(list) != 1 || !list[0].LastUsedAt.Equal(e.now) {
		t.Fatalf("after use the list says %+v, %v; want last used now", list, err)
	}

	// Expired a minute ago (stored directly: the test clock does not move).
	if _, err := e.store.AddToken(ctx, store.Token{Name: "last-month", Role: "admin", CreatedAt: e.now.Add(-31 * 24 * time.Hour),
		ExpiresAt: e.now.Add(-time.Minute)}, auth.Hash("expired-secret")); err != nil {
		t.Fatal(err)
	}
	revoked, err := e.client.RevokeToken(ctx, "duty-officer")
	if err != nil || revoked.Status != api.TokenRevoked || !revoked.RevokedAt.Equal(e.now) {
		t.Fatalf("revoke: %+v, %v", revoked, err)
	}
	refused := []struct {
		name, secret string
		code         messages.Key
		says         string
	}{
		{"revoked", res.Secret, messages.TokenRevoked, "duty-officer"},
		{"expired", "expired-secret", messages.TokenExpired, "last-month"},
		{"unknown", auth.NewToken(), messages.Unauthorized, "not allowed"},
		{"none", "", messages.Unauthorized, "not allowed"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := api.NewClient(e.srv.URL, tc.secret)
			for _, call := range []func() error{
				func() error { _, err := c.Status(ctx); return err },
				func() error { _, err := c.Announce(ctx, api.AnnounceRequest{}); return err },
			} {
				ae := apiError(t, call(), http.StatusUnauthorized)
				if ae.Code != string(tc.code) || !strings.Contains(ae.Message, tc.says) {
					t.Fatalf("answer %+v, want %s saying %q", ae, tc.code, tc.says)
				}
			}
		})
	}
	// Attempts with a known token that no longer works are in the audit log.
	requests, err := e.client.AuditRequests(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var attempts []string
	for _, a := range requests {
		if strings.Contains(a.Details, " 401 ") {
			attempts = append(attempts, a.Actor+" "+a.Details)
		}
	}
	if strings.Join(attempts, "; ") != "duty-officer POST /v1/announcements 401 role=operator; last-month POST /v1/announcements 401 role=admin" {
		t.Fatalf("refused attempts in the audit log: %q", attempts)
	}
	list, _ = e.client.Tokens(ctx)
	if len(list) != 2 || list[0].Name != "last-month" || list[0].Status != api.TokenExpired || list[1].Status != api.TokenRevoked {
		t.Fatalf("list: %+v", list)
	}
	// The name of a revoked token may be given again; the new one works.
	again := e.addToken(t, "duty-officer", "viewer", "")
	if _, err := again.Status(ctx); err != nil {
		t.Fatalf("the new duty-officer token: %v", err)
	}
}

func sameToken(a, b api.TokenInfo) bool {
	return a.Name == b.Name && a.Role == b.Role && a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.LastUsedAt.Equal(b.LastUsedAt) && a.RevokedAt.Equal(b.RevokedAt)
}

func TestTokenRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addToken(t, "duty-officer", "operator", "")
	tests := []struct {
		name   string
		call   func() error
		status int
		code   messages.Key
	}{
		{"unknown role", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "x", Role: "root"})
			return err
		}, http.StatusBadRequest, messages.BadRole},
		{"no role", func() error { _, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "x"}); return err }, http.StatusBadRequest, messages.BadRole},
		{"bad name", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "Nguyễn Văn A", Role: "viewer"})
			return err
		}, http.StatusBadRequest, messages.BadName},
		{"bootstrap name", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "admin", Role: "viewer"})
			return err
		}, http.StatusBadRequest, messages.ReservedToken},
		{"name taken", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "duty-officer", Role: "viewer"})
			return err
		}, http.StatusConflict, messages.TokenExists},
		{"expiry in days", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "x", Role: "viewer", Expires: "30d"})
			return err
		}, http.StatusBadRequest, messages.BadExpiry},
		{"negative expiry", func() error {
			_, err := e.client.AddToken(ctx, api.AddTokenRequest{Name: "x", Role: "viewer", Expires: "-1h"})
			return err
		}, http.StatusBadRequest, messages.BadExpiry},
		{"revoke unknown", func() error { _, err := e.client.RevokeToken(ctx, "nobody"); return err }, http.StatusNotFound, messages.UnknownToken},
		{"revoke bootstrap", func() error { _, err := e.client.RevokeToken(ctx, "admin"); return err }, http.StatusBadRequest, messages.ReservedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ae := apiError(t, tc.call(), tc.status); ae.Code != string(tc.code) {
				t.Fatalf("code %s (%s), want %s", ae.Code, ae.Message, tc.code)
			}
		})
	}
	if list, _ := e.client.Tokens(ctx); len(list) != 1 {
		t.Fatalf("refused calls made tokens: %+v", list)
	}
}

// TestAuditNamesTheToken: every mutating request is in the audit log with
// the name of the token that made it, refused ones too; reads are not. The
// default audit view stays the emergency log, its entries naming the token.
func TestAuditNamesTheToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addDevice(t, "loa-1", "thon-1")
	officer := e.addToken(t, "duty-officer", "operator", "")
	viewer := e.addToken(t, "district", "viewer", "")
	thon1 := store.Targets{Groups: []string{"thon-1"}}
	m := e.addMedia(t, wav(22050, time.Second))
	if _, err := officer.Announce(ctx, api.AnnounceRequest{Targets: thon1, Media: m.ID}); err != nil {
		t.Fatal(err)
	}
	em, err := officer.StartEmergency(ctx, api.AnnounceRequest{Targets: thon1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.Announce(ctx, api.AnnounceRequest{Targets: thon1, Media: m.ID}); err == nil {
		t.Fatal("a viewer announced")
	}
	if _, err := viewer.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CancelEmergency(ctx, em.ID); err != nil {
		t.Fatal(err)
	}

	requests, err := e.client.AuditRequests(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range requests {
		if a.Action != store.AuditRequest {
			t.Fatalf("requests=only gave %+v", a)
		}
		got = append(got, a.Actor+" "+strings.Fields(a.Details)[0]+" "+strings.Fields(a.Details)[1]+" "+strings.Fields(a.Details)[2])
	}
	want := []string{
		"admin POST /v1/devices 201",
		"admin POST /v1/tokens 201",
		"admin POST /v1/tokens 201",
		"admin POST /v1/media 201",
		"duty-officer POST /v1/announcements 201",
		"duty-officer POST /v1/emergencies 201",
		"district POST /v1/announcements 403",
		"admin POST /v1/emergencies/cancel 200",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("request log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	log, err := e.client.Audit(ctx, "", "")
	if err != nil || len(log) != 2 || log[0].Action != store.AuditEmergencyStart || log[0].Actor != "duty-officer" ||
		log[1].Action != store.AuditEmergencyCancel || log[1].Actor != "admin" {
		t.Fatalf("emergency log: %+v, %v", log, err)
	}
}

// TestMediaDownloadRoles: a viewer token may fetch media like a box; a
// trigger token may not.
func TestMediaDownloadRoles(t *testing.T) {
	e := newEnv(t)
	m := e.addMedia(t, wav(22050, time.Second))
	for role, want := range map[string]int{"viewer": http.StatusOK, "trigger": http.StatusForbidden} {
		res, err := e.client.AddToken(context.Background(), api.AddTokenRequest{Name: "the-" + role, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		resp := e.getMedia(t, m.ID, "", "", http.Header{"Authorization": {"Bearer " + res.Secret}})
		if resp.StatusCode != want {
			t.Errorf("%s download: %s, want %d", role, resp.Status, want)
		}
	}
}
