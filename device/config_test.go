package device

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.ID, c.Site, c.Broker, c.Server, c.Token, c.Cache = "box-1", "xa-an-binh", "tcp://127.0.0.1:1883", "http://127.0.0.1:8080", "t", "/tmp/x"
	c.ControllerKeys = testKeys
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		mut   func(*Config)
		field string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "id"},
		{"bad id", func(c *Config) { c.ID = "box 1" }, "id"},
		{"no site", func(c *Config) { c.Site = "" }, "site"},
		{"bad site", func(c *Config) { c.Site = "a/b" }, "site"},
		{"no broker", func(c *Config) { c.Broker = "" }, "broker"},
		{"broker without scheme", func(c *Config) { c.Broker = "127.0.0.1:1883" }, "broker"},
		{"broker http", func(c *Config) { c.Broker = "http://h:1883" }, "broker"},
		{"broker ssl", func(c *Config) { c.Broker = "ssl://h:8883" }, ""},
		{"brokers only", func(c *Config) { c.Broker, c.Brokers = "", []string{"tcp://a:1883", "tcp://b:1883"} }, ""},
		{"broker and brokers", func(c *Config) { c.Brokers = []string{"tcp://b:1883"} }, ""},
		{"broker list", func(c *Config) { c.Broker = "tcp://a:1883, tcp://b:1883" }, ""},
		{"bad URL in broker list", func(c *Config) { c.Broker = "tcp://a:1883,b:1883" }, "broker"},
		{"bad URL in brokers", func(c *Config) { c.Brokers = []string{"tcp://b:1883", "http://c"} }, "brokers"},
		{"empty URL in brokers", func(c *Config) { c.Brokers = []string{""} }, "brokers"},
		{"no server", func(c *Config) { c.Server = "" }, "server"},
		{"server not http", func(c *Config) { c.Server = "ftp://h" }, "server"},
		{"no token", func(c *Config) { c.Token = "" }, "token"},
		{"no cache", func(c *Config) { c.Cache = "" }, "cache"},
		{"zero cache size", func(c *Config) { c.CacheMaxMB = 0 }, "cache_max_mb"},
		{"bad output", func(c *Config) { c.Output = "speaker" }, "output"},
		{"wav without dir", func(c *Config) { c.Output = "wav:" }, "output"},
		{"wav", func(c *Config) { c.Output = "wav:/tmp/out" }, ""},
		{"alsa device", func(c *Config) { c.Output = "alsa:hw:1,0" }, ""},
		{"null", func(c *Config) { c.Output = "null" }, ""},
		{"short heartbeat", func(c *Config) { c.Heartbeat = time.Millisecond }, "heartbeat"},
		{"hot_c unset", func(c *Config) { c.HotC = 0 }, ""},
		{"hot_c too low", func(c *Config) { c.HotC = 8 }, "hot_c"},
		{"hot_c in fahrenheit", func(c *Config) { c.HotC = 176 }, "hot_c"},
		{"update_trial too short", func(c *Config) { c.UpdateTrial = 5 * time.Second }, "update_trial"},
		{"update_trial too long", func(c *Config) { c.UpdateTrial = 2 * time.Hour }, "update_trial"},
		{"update_trial unset", func(c *Config) { c.UpdateTrial = 0 }, "update_trial"},
		{"update_trial 10s", func(c *Config) { c.UpdateTrial = 10 * time.Second }, ""},
		{"no controller key", func(c *Config) { c.ControllerKeys = nil }, "controller_keys"},
		{"bad controller key", func(c *Config) { c.ControllerKeys = []string{"ed25519:nope"} }, "controller_keys"},
		{"two controller keys", func(c *Config) { c.ControllerKeys = append(testKeys, testKeys...) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mut(&c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}

func TestConfigMissingBrokerSaysWhatToDo(t *testing.T) {
	c := validConfig()
	c.Broker = ""
	if err := c.Validate(); !strings.Contains(err.Error(), "--broker tcp://HOST:1883") || !strings.Contains(err.Error(), "broker:") {
		t.Fatalf("message %q does not say how to fix it", err)
	}
}

func TestBrokerURLs(t *testing.T) {
	tests := []struct {
		name    string
		broker  string
		brokers []string
		want    string
	}{
		{"one", "tcp://a:1883", nil, "tcp://a:1883"},
		{"comma list", "tcp://a:1883, tcp://b:1883,", nil, "tcp://a:1883 tcp://b:1883"},
		{"broker first, then brokers", "tcp://a:1883", []string{"tcp://b:1883", "tcp://c:1883"}, "tcp://a:1883 tcp://b:1883 tcp://c:1883"},
		{"each once", "tcp://a:1883", []string{"tcp://b:1883", "tcp://a:1883"}, "tcp://a:1883 tcp://b:1883"},
		{"brokers only", "", []string{"tcp://b:1883"}, "tcp://b:1883"},
		{"none", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Broker: tt.broker, Brokers: tt.brokers}
			if got := strings.Join(c.BrokerURLs(), " "); got != tt.want {
				t.Fatalf("BrokerURLs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadConfigBrokers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	body := "id: b1\nsite: s1\nbrokers: [tcp://10.0.0.2:1883, tcp://10.0.0.3:1883]\nserver: http://10.0.0.2:8080\ntoken: t\ncontroller_keys: [" + testKeys[0] + "]\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.BrokerURLs(), " "); got != "tcp://10.0.0.2:1883 tcp://10.0.0.3:1883" {
		t.Fatalf("BrokerURLs = %q", got)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	yaml := `id: loa-thon1-01
site: xa-an-binh
broker: tcp://10.0.0.2:1883
server: http://10.0.0.2:8080
token: abc
cache: /var/lib/loa
output: wav:/tmp/out
heartbeat: 15s
min_valid_time: 2025-06-01T00:00:00Z
controller_keys:
  - ` + testKeys[0] + `
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "loa-thon1-01" || c.Broker != "tcp://10.0.0.2:1883" || c.Output != "wav:/tmp/out" || c.Heartbeat != 15*time.Second {
		t.Fatalf("loaded %+v", c)
	}
	if c.CacheMaxMB != DefaultCacheMaxMB {
		t.Fatalf("default cache_max_mb lost: %d", c.CacheMaxMB)
	}
	if want := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC); !c.minValidTime().Equal(want) {
		t.Fatalf("min_valid_time %v", c.minValidTime())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(path, []byte("brokr: tcp://x:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "brokr") {
		t.Fatalf("a misspelt key gave %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing file gave no error")
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if c, err := LoadConfig(empty); err != nil || c.Heartbeat != DefaultHeartbeat {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func TestParseOutput(t *testing.T) {
	tests := []struct {
		in   string
		want Output
		ok   bool
	}{
		{"alsa", Output{Kind: OutputALSA}, true},
		{"alsa:plughw:1,0", Output{Kind: OutputALSA, Arg: "plughw:1,0"}, true},
		{"wav:/tmp/a", Output{Kind: OutputWAV, Arg: "/tmp/a"}, true},
		{"null", Output{Kind: OutputNull}, true},
		{"null:x", Output{}, false},
		{"wav", Output{}, false},
		{"", Output{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOutput(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseOutput(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}
