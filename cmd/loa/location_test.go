package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/scheduler"
	"github.com/loa-commune/loa/store"
)

// quietBroadcaster stands in for the MQTT side of a controller whose boxes
// are never online: the registry commands need nothing more.
type quietBroadcaster struct{ sched *scheduler.Scheduler }

func (quietBroadcaster) Replan()                                         {}
func (quietBroadcaster) PublishConfigs(context.Context, ...string) error { return nil }
func (quietBroadcaster) ForgetDevice(string) error                       { return nil }
func (quietBroadcaster) RepublishAll(context.Context) error              { return nil }
func (b quietBroadcaster) Scheduler() *scheduler.Scheduler               { return b.sched }
func (quietBroadcaster) Metrics() map[string]int64                       { return nil }

var _ api.Broadcaster = quietBroadcaster{}

// registryServer runs the controller's API on a real store and returns
// its URL, its admin token and the store.
func registryServer(t *testing.T) (string, string, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "loa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const token = "admin-secret-for-the-cli-test"
	h := api.NewServer(api.Options{Site: "xa-an-binh", AdminToken: token, BrokerURL: "tcp://127.0.0.1:1883",
		ServerURL: "http://127.0.0.1:8080", DefaultVolume: 80, Now: time.Now},
		st, nil, quietBroadcaster{sched: scheduler.New(time.UTC, time.Hour)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, token, st
}

// runCLI runs the CLI and returns what it printed and its exit code.
func runCLI(t *testing.T, server, token string, args ...string) (string, int, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--server", server, "--token", token}, args...))
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = exitError
		var ce *codedError
		if errors.As(err, &ce) {
			code = ce.code
		}
	}
	return out.String(), code, err
}

func TestDeviceLocateCLI(t *testing.T) {
	t.Setenv("LOA_LANG", "")
	url, token, st := registryServer(t)
	ctx := context.Background()
	at := func(id string) string {
		t.Helper()
		d, err := st.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return place(d.Lat, d.Lon)
	}

	if _, code, err := runCLI(t, url, token, "device", "add", "loa-cho", "--lat", "21.03", "--lon", "105.85", "--write-config", filepath.Join(t.TempDir(), "agent.yaml")); code != 0 {
		t.Fatalf("device add: exit %d, %v", code, err)
	}
	if got := at("loa-cho"); got != "21.03,105.85" {
		t.Fatalf("after device add: %s", got)
	}
	out, code, err := runCLI(t, url, token, "device", "locate", "loa-cho", "--lat", "-8.5", "--lon", "-179.25")
	if code != 0 || out != "Box loa-cho is at -8.5,-179.25.\n" {
		t.Fatalf("device locate: exit %d, %q, %v", code, out, err)
	}
	if got := at("loa-cho"); got != "-8.5,-179.25" {
		t.Fatalf("after device locate: %s", got)
	}
	out, _, _ = runCLI(t, url, token, "device", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[0], "PLACE") || !strings.HasSuffix(lines[1], "-8.5,-179.25") {
		t.Fatalf("device list:\n%s", out)
	}
	out, code, err = runCLI(t, url, token, "device", "locate", "loa-cho", "--clear")
	if code != 0 || out != "Box loa-cho is off the map now.\n" || at("loa-cho") != "-" {
		t.Fatalf("device locate --clear: exit %d, %q, %v; now at %s", code, out, err, at("loa-cho"))
	}

	// Wrong command lines: exit 2, a message that says what to give, and
	// nothing changed or added.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"add with latitude only", []string{"device", "add", "loa-2", "--lat", "21"}, messages.T(messages.LocationBoth)},
		{"add out of range", []string{"device", "add", "loa-2", "--lat", "210.3", "--lon", "105.85"}, messages.T(messages.BadLocation, "210.3", "105.85")},
		{"locate with longitude only", []string{"device", "locate", "loa-cho", "--lon", "105"}, messages.T(messages.LocationBoth)},
		{"locate out of range", []string{"device", "locate", "loa-cho", "--lat", "21", "--lon", "-181"}, messages.T(messages.BadLocation, "21", "-181")},
		{"locate NaN", []string{"device", "locate", "loa-cho", "--lat", "NaN", "--lon", "105"}, messages.T(messages.BadLocation, "NaN", "105")},
		{"locate with nothing", []string{"device", "locate", "loa-cho"}, "--clear"},
		{"locate and clear", []string{"device", "locate", "loa-cho", "--lat", "21", "--lon", "105", "--clear"}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code, err := runCLI(t, url, token, tc.args...)
			if code != exitUsage || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("exit %d, %v; want %d and %q", code, err, exitUsage, tc.want)
			}
		})
	}
	if ds, _ := st.Devices(ctx); len(ds) != 1 || at("loa-cho") != "-" {
		t.Fatalf("refused commands changed the boxes: %+v", ds)
	}

	if _, code, err := runCLI(t, url, token, "device", "locate", "ghost", "--lat", "21", "--lon", "105"); code != exitError || err == nil || !strings.Contains(err.Error(), `"ghost"`) {
		t.Fatalf("unknown box: exit %d, %v", code, err)
	}
}
