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

// TestClientLanguage: the CLI's client asks for LOA_LANG's language, so the
// controller's refusals come in it; the console's language wins over it.
func TestClientLanguage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, lang := range []string{"vi", "en"} {
		t.Setenv("LOA_LANG", lang)
		_, err := api.NewClient(e.srv.URL, "wrong").Site(ctx)
		var ae *api.APIError
		if want := messages.In(lang, messages.Unauthorized); !errors.As(err, &ae) || ae.Message != want {
			t.Errorf("LOA_LANG=%s: %v; want %q", lang, err, want)
		}
	}
	t.Setenv("LOA_LANG", "vi")
	_, err := api.NewLocalClient(e.srv.Config.Handler, "wrong", "192.0.2.7:5000", "en").Site(ctx)
	if want := messages.In("en", messages.Unauthorized); err == nil || err.Error() != want {
		t.Errorf("console in English, LOA_LANG=vi: %v; want %q", err, want)
	}
}
