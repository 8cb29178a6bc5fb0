package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/enrol"
	"github.com/loa-commune/loa/signing"
	"github.com/loa-commune/loa/store"
)

// enrolEnv is an API with signing keys and a clock the test moves.
type enrolEnv struct {
	*env
	keys *signing.Keys
	mu   sync.Mutex
	now  time.Time
}

func newEnrolEnv(t *testing.T) *enrolEnv {
	t.Helper()
	keys, err := signing.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ee := &enrolEnv{keys: keys, now: time.Date(2026, 3, 1, 5, 30, 0, 0, time.UTC)}
	ee.env = newEnvWith(t, api.Options{Keys: keys, Now: ee.clock})
	return ee
}

func (e *enrolEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *enrolEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *enrolEnv) code(t *testing.T, id string, valid time.Duration) enrol.Code {
	t.Helper()
	res, err := e.client.Enrol(context.Background(), id, valid)
	if err != nil {
		t.Fatal(err)
	}
	c, err := enrol.ParseCode(res.Code)
	if err != nil {
		t.Fatalf("the controller's code %q: %v", res.Code, err)
	}
	if !strings.Contains(res.Command, "loa-agent enroll http://10.0.0.1:8080 "+res.Code) {
		t.Errorf("command to type on the box: %q", res.Command)
	}
	return c
}

// fetchErr enrols with c and returns the error's text ("" on success).
func (e *enrolEnv) fetchErr(c enrol.Code) string {
	_, _, err := enrol.Fetch(context.Background(), e.srv.URL, c)
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestEnrolment(t *testing.T) {
	e := newEnrolEnv(t)
	ctx := context.Background()
	e.addDevice(t, "box-1", "thon-1")
	code := e.code(t, "box-1", time.Hour)

	config, key, err := enrol.Fetch(ctx, e.srv.URL, code)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(e.keys.Current().Public()) {
		t.Fatal("enrolment answered with another key")
	}
	var cfg struct {
		ID, Site, Broker, Server, Token string
		ControllerKeys                  []string `yaml:"controller_keys"`
	}
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		t.Fatalf("config: %v\n%s", err, config)
	}
	if cfg.ID != "box-1" || cfg.Site != "xa-an-binh" || cfg.Broker != "tcp://10.0.0.1:1883" || len(cfg.ControllerKeys) != 1 {
		t.Fatalf("config = %+v", cfg)
	}
	// The box's token is new, and the only one that works now.
	hash, err := e.store.DeviceTokenHash(ctx, "box-1")
	if err != nil || !auth.Check(cfg.Token, hash) {
		t.Fatalf("the config's token is not the box's: %v", err)
	}

	t.Run("reused", func(t *testing.T) {
		// Times are the commune's: used at 05:30 UTC is 12:30 in Asia/Ho_Chi_Minh.
		if msg := e.fetchErr(code); !strings.Contains(msg, "already used at 2026-03-01 12:30 +07") || !strings.Contains(msg, "loa device enroll box-1") {
			t.Fatalf("reused code: %q", msg)
		}
	})
	t.Run("expired", func(t *testing.T) {
		c := e.code(t, "box-1", time.Minute)
		e.advance(61 * time.Second)
		if msg := e.fetchErr(c); !strings.Contains(msg, "expired at 2026-03-01 12:31 +07") {
			t.Fatalf("expired code: %q", msg)
		}
	})
	t.Run("forged", func(t *testing.T) {
		// A well-formed code with this controller's fingerprint but a secret
		// the controller never made.
		if msg := e.fetchErr(enrol.NewCode(e.keys.Current().Public())); !strings.Contains(msg, "not one the controller made") {
			t.Fatalf("forged code: %q", msg)
		}
	})
	t.Run("another controller's fingerprint", func(t *testing.T) {
		// The right secret, but the code names another key: the box refuses
		// the answer, whoever sent it.
		c := e.code(t, "box-1", time.Hour)
		other, err := signing.LoadOrCreate(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c.Fingerprint = enrol.Fingerprint(other.Current().Public())
		if _, _, err := enrol.Fetch(ctx, e.srv.URL, c); !errors.Is(err, enrol.ErrWrongController) {
			t.Fatalf("answer from a controller the code does not name: %v", err)
		}
	})
	t.Run("unknown box and bad validity", func(t *testing.T) {
		_, err := e.client.Enrol(ctx, "nobody", time.Hour)
		apiError(t, err, http.StatusNotFound)
		_, err = e.client.Enrol(ctx, "box-1", 31*24*time.Hour)
		apiError(t, err, http.StatusBadRequest)
	})

	entries, err := e.store.Audit(ctx, time.Time{}, e.clock().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, a := range entries {
		count[a.Action]++
	}
	if count[store.AuditEnrolCreate] != 3 || count[store.AuditEnrolUse] != 2 || count[store.AuditEnrolRefuse] != 3 {
		t.Fatalf("audit log has %v, want 3 codes made, 2 used, 3 refused", count)
	}
}

func TestEnrolmentRateLimited(t *testing.T) {
	e := newEnrolEnv(t)
	e.addDevice(t, "box-1")
	forged := enrol.NewCode(e.keys.Current().Public())
	refused := 0
	for range 25 {
		if msg := e.fetchErr(forged); strings.Contains(msg, "too many enrolment attempts") {
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of 25 quick attempts were held back, want 5 (a burst of 20)", refused)
	}
	// Even the right code waits its turn, then works.
	good := e.code(t, "box-1", time.Hour)
	if msg := e.fetchErr(good); !strings.Contains(msg, "too many") {
		t.Fatalf("right code during the hold: %q", msg)
	}
	e.advance(3 * time.Second)
	if msg := e.fetchErr(good); msg != "" {
		t.Fatalf("right code after the hold: %q", msg)
	}
}
