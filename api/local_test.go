package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
)

// TestLocalClient: the console's in-process client goes through the same
// handler (token, role) and gets errors in its person's language.
func TestLocalClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := e.srv.Config.Handler
	s, err := api.NewLocalClient(h, adminToken, "192.0.2.7:5000", "vi").Site(ctx)
	if err != nil || s.Role != "admin" || s.Site != "xa-an-binh" {
		t.Fatalf("Site = %+v, %v", s, err)
	}
	for lang, want := range map[string]string{"vi": messages.In("vi", messages.Unauthorized), "en": messages.In("en", messages.Unauthorized)} {
		_, err := api.NewLocalClient(h, "wrong", "192.0.2.7:5000", lang).Site(ctx)
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Message != want {
			t.Errorf("%s: %v; want 401 %q", lang, err, want)
		}
	}
}
