package controller_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *controller.Config)
		field string // "" means valid
	}{
		{"defaults", func(c *controller.Config) {}, ""},
		{"external broker", func(c *controller.Config) { c.Broker = "tcp://10.0.0.5:1883"; c.MQTT = "" }, ""},
		{"tls broker", func(c *controller.Config) { c.Broker = "ssl://mqtt.example.vn:8883" }, ""},
		{"loopback http", func(c *controller.Config) { c.HTTP = "127.0.0.1:0" }, ""},
		{"volumes at the ends", func(c *controller.Config) { c.DefaultVolume, c.EmergencyVolume = 0, 100 }, ""},
		{"empty site", func(c *controller.Config) { c.Site = "" }, "site"},
		{"site with slash", func(c *controller.Config) { c.Site = "xa/an" }, "site"},
		{"site with wildcard", func(c *controller.Config) { c.Site = "xa+" }, "site"},
		{"site vietnamese", func(c *controller.Config) { c.Site = "xã-an-bình" }, "site"},
		{"no data folder", func(c *controller.Config) { c.Data = "" }, "data"},
		{"http no port", func(c *controller.Config) { c.HTTP = "8080" }, "http"},
		{"http empty", func(c *controller.Config) { c.HTTP = "" }, "http"},
		{"http port not a number", func(c *controller.Config) { c.HTTP = ":http-alt" }, "http"},
		{"http port too big", func(c *controller.Config) { c.HTTP = ":99999" }, "http"},
		{"mqtt no port", func(c *controller.Config) { c.MQTT = "1883" }, "mqtt"},
		{"broker http scheme", func(c *controller.Config) { c.Broker = "http://10.0.0.5:1883" }, "broker"},
		{"broker mqtt scheme", func(c *controller.Config) { c.Broker = "mqtt://10.0.0.5:1883" }, "broker"},
		{"broker no scheme", func(c *controller.Config) { c.Broker = "10.0.0.5:1883" }, "broker"},
		{"broker no host", func(c *controller.Config) { c.Broker = "tcp://" }, "broker"},
		{"bad timezone", func(c *controller.Config) { c.Timezone = "Asia/Hanoi-ish" }, "timezone"},
		{"utc offset timezone", func(c *controller.Config) { c.Timezone = "+07:00" }, "timezone"},
		{"short horizon", func(c *controller.Config) { c.Horizon = time.Minute }, "horizon"},
		{"short validity", func(c *controller.Config) { c.Validity = 0 }, "validity"},
		{"default volume below 0", func(c *controller.Config) { c.DefaultVolume = -1 }, "default_volume"},
		{"default volume over 100", func(c *controller.Config) { c.DefaultVolume = 101 }, "default_volume"},
		{"emergency volume below 0", func(c *controller.Config) { c.EmergencyVolume = -5 }, "emergency_volume"},
		{"emergency volume over 100", func(c *controller.Config) { c.EmergencyVolume = 150 }, "emergency_volume"},
		{"no media size", func(c *controller.Config) { c.MaxMediaMB = 0 }, "max_media_mb"},
		{"no media length", func(c *controller.Config) { c.MaxMediaMinutes = 0 }, "max_media_minutes"},
		{"loudness too low", func(c *controller.Config) { c.Media.LoudnessLUFS = -70 }, "media.loudness_lufs"},
		{"true peak over 0", func(c *controller.Config) { c.Media.TruePeakDBTP = 1 }, "media.true_peak_dbtp"},
		{"opus bitrate too low", func(c *controller.Config) { c.Media.BitrateKbps = 2 }, "media.bitrate_kbps"},
		{"five channels", func(c *controller.Config) { c.Media.Channels = 5 }, "media.channels"},
		{"no ffmpeg named", func(c *controller.Config) { c.Media.FFmpeg = "" }, "media.ffmpeg"},
		{"ffmpeg without time", func(c *controller.Config) { c.Media.Timeout = 0 }, "media.timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := controller.Defaults()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *controller.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v (%T), want a *FieldError", err, err)
			}
			if fe.Field != tc.field {
				t.Fatalf("Validate names %q (%v), want %q", fe.Field, err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "loa.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	c := controller.Defaults()
	err := c.LoadFile(writeFile(t, "site: xa-an-binh\nhttp: 127.0.0.1:9090\nhorizon: 24h\nvalidity: 10m\ndefault_volume: 60\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "xa-an-binh" || c.HTTP != "127.0.0.1:9090" || c.Horizon != 24*time.Hour || c.Validity != 10*time.Minute || c.DefaultVolume != 60 {
		t.Fatalf("config %+v", c)
	}
	if c.MQTT != ":1883" || c.Timezone != "Asia/Ho_Chi_Minh" {
		t.Fatalf("defaults not kept: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "site: a\nvolumme: 50\n", "volumme"},
		{"typo of a known key", "time_zone: Asia/Ho_Chi_Minh\n", "time_zone"},
		{"wrong type", "default_volume: loud\n", "line 1"},
		{"not YAML", "site: [\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := controller.Defaults()
			err := c.LoadFile(writeFile(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadFile = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := c.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file is not an error")
	}
}

func TestLoadFileOnlyComments(t *testing.T) {
	// The example config with every line commented out means: defaults.
	c := controller.Defaults()
	if err := c.LoadFile(writeFile(t, "# site: commune\n# http: :8080\n")); err != nil {
		t.Fatalf("LoadFile of a commented-out file: %v", err)
	}
	if err := c.LoadFile(writeFile(t, "")); err != nil {
		t.Fatalf("LoadFile of an empty file: %v", err)
	}
	if !reflect.DeepEqual(c, controller.Defaults()) {
		t.Fatalf("config changed: %+v", c)
	}
}

func TestLoadEnv(t *testing.T) {
	t.Setenv("LOA_SITE", "xa-env")
	t.Setenv("LOA_HTTP", "127.0.0.1:1")
	c := controller.Defaults()
	c.LoadEnv()
	if c.Site != "xa-env" || c.HTTP != "127.0.0.1:1" || c.MQTT != ":1883" {
		t.Fatalf("config %+v", c)
	}
}

func testConfig(dir string) controller.Config {
	c := controller.Defaults()
	c.Site, c.Data, c.HTTP, c.MQTT = "xa-an-binh", dir, "127.0.0.1:0", "127.0.0.1:0"
	return c
}

func TestOpenCloseTwiceKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	c, err := controller.Open(ctx, testConfig(dir), log)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	token := c.AdminToken()
	fi, err := os.Stat(filepath.Join(dir, "admin.token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, %v", fi, err)
	}
	client := api.NewClient("http://"+c.HTTPAddr(), token)
	box, err := client.AddDevice(ctx, api.AddDeviceRequest{ID: "loa-1", Groups: []string{"thon-1"}})
	if err != nil {
		c.Close(ctx)
		t.Fatalf("device add through the first controller: %v", err)
	}
	if !strings.Contains(box.AgentConfig, "broker: tcp://127.0.0.1:"+port(c.BrokerAddr())) ||
		!strings.Contains(box.AgentConfig, "server: http://127.0.0.1:"+port(c.HTTPAddr())) {
		t.Errorf("agent config does not point at this controller:\n%s", box.AgentConfig)
	}
	// A box can log in to the embedded broker with the credentials it was given.
	mc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + c.BrokerAddr()).SetClientID("loa-1").
		SetUsername("loa-1").SetPassword(box.Token).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("the new box cannot connect: %v", tok.Error())
	} else {
		mc.Disconnect(100)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("first Close: %v", err)
	}

	c, err = controller.Open(ctx, testConfig(dir), log)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer c.Close(ctx)
	if c.AdminToken() != token {
		t.Fatal("the admin token changed on restart")
	}
	client = api.NewClient("http://"+c.HTTPAddr(), token)
	list, err := client.Devices(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "loa-1" {
		t.Fatalf("devices after restart: %+v, %v", list, err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Timezone = "Nowhere/Land"
	c, err := controller.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var fe *controller.FieldError
	if err == nil || !errors.As(err, &fe) || fe.Field != "timezone" {
		if c != nil {
			c.Close(context.Background())
		}
		t.Fatalf("Open = %v, want a FieldError for timezone", err)
	}
}

func TestOpenFailsCleanlyWhenPortTaken(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := controller.Open(ctx, testConfig(t.TempDir()), log)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	cfg := testConfig(t.TempDir())
	cfg.HTTP = first.HTTPAddr()
	if c, err := controller.Open(ctx, cfg, log); err == nil {
		c.Close(ctx)
		t.Fatal("a second controller on the same HTTP port started")
	}
	cfg = testConfig(t.TempDir())
	cfg.MQTT = first.BrokerAddr()
	if c, err := controller.Open(ctx, cfg, log); err == nil {
		c.Close(ctx)
		t.Fatal("a second controller on the same MQTT port started")
	}
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
