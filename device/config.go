package device

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/pki"
	"github.com/loa-commune/loa/protocol"
)

// Defaults of the agent's settings.
const (
	DefaultCacheDir   = "/var/lib/loa-agent"
	DefaultCacheMaxMB = 512
	DefaultOutput     = "alsa"
	DefaultHeartbeat  = 30 * time.Second
	// DefaultHotC is the processor temperature above which the box warns
	// ("hot"): a Raspberry Pi throttles from 80 °C.
	DefaultHotC = 80
	// DefaultUpdateTrial is how long a new agent build has to prove itself.
	DefaultUpdateTrial = 3 * time.Minute
)

// DefaultMinValidTime is the earliest wall-clock time the agent believes: a
// Raspberry Pi without a real-time clock boots in 1970, and nothing is
// scheduled until NTP has set the clock past this.
var DefaultMinValidTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// BuildDate (YYYY-MM-DD) is set by the build (make build:
// -ldflags "-X github.com/loa-commune/loa/device.BuildDate=2026-11-28"). A
// clock earlier than the agent's own build is certainly wrong, so it moves
// the plausibility threshold past DefaultMinValidTime.
var BuildDate string

// Config is what one loudspeaker box needs to know before it can reach its
// controller. It is loaded as defaults, then a YAML file (LoadConfig), then
// command-line flags (set by the caller), then checked with Validate.
type Config struct {
	// ID is this box's device id, as `loa device add` registered it.
	ID string `yaml:"id"`
	// Site is the commune's site id (the topic root is loa/<site>).
	Site string `yaml:"site"`
	// Broker is the MQTT broker URL, tcp://host:port; several, separated
	// by commas, are also accepted (as --broker takes them).
	Broker string `yaml:"broker"`
	// Brokers are more broker URLs: the nodes of a clustered broker (NATS,
	// EMQX) or bridged ones that carry the same site. The box tries
	// Broker's URLs, then these, in order, on every connect and reconnect
	// (BrokerURLs), and keeps its session on whichever answers.
	Brokers []string `yaml:"brokers"`
	// Server is the controller's base URL; media is fetched from
	// <server>/v1/media/<sha256> unless the device config names a media URL.
	Server string `yaml:"server"`
	// Token is the device secret: the MQTT password and the HTTP Basic
	// password for media downloads.
	Token string `yaml:"token"`
	// Cache is the folder for state.json, downloaded media and decoded PCM.
	Cache string `yaml:"cache"`
	// CacheMaxMB bounds media and PCM in Cache; least recently used files no
	// plan refers to are evicted beyond it.
	CacheMaxMB int `yaml:"cache_max_mb"`
	// Output selects the sound output: alsa, alsa:DEVICE, wav:DIR or null.
	// The agent itself does not open it; the caller makes the audio.Sink.
	Output string `yaml:"output"`
	// Heartbeat is how often the retained state is republished (±10 %).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// HotC is the processor temperature (°C) above which the box reports
	// the problem "hot"; it clears 5 °C below. 0 means DefaultHotC.
	HotC float64 `yaml:"hot_c"`
	// ControllerKeys are the controller's public keys ("ed25519:…", as
	// `loa device add` writes them): the box obeys only plans, configs and
	// time answers they signed. A signed config may replace them (a key
	// rotation); the box keeps the new ones in its state file.
	ControllerKeys []string `yaml:"controller_keys"`
	// MinValidTime overrides the plausibility threshold (the build date, or
	// DefaultMinValidTime) when set.
	MinValidTime time.Time `yaml:"min_valid_time"`
	// CAFile or CAPEM is the certificate authority the box trusts for
	// ssl:// and https:// (a PEM file, or the PEM text itself, as `loa
	// device add` writes it); neither: the system's roots.
	CAFile string `yaml:"ca_file"`
	CAPEM  string `yaml:"ca_pem"`
	// CertFile and KeyFile are the box's client certificate and key (`loa
	// pki box ID`), for a broker that asks for one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// UpdateTrial is how long a new agent build installed over the air has
	// to connect, get its signed config and report, before the previous
	// build runs again (10s to 1h).
	UpdateTrial time.Duration `yaml:"update_trial"`
	// TimeSources are where the box reads the time when its controller
	// cannot tell it: an RTC, the modem's network time, a GPS receiver
	// (timesource.go).
	TimeSources TimeSources `yaml:"time_sources"`
}

// DefaultConfig returns the settings used where neither the file nor a flag
// says otherwise.
func DefaultConfig() Config {
	return Config{
		Cache:       DefaultCacheDir,
		CacheMaxMB:  DefaultCacheMaxMB,
		Output:      DefaultOutput,
		Heartbeat:   DefaultHeartbeat,
		HotC:        DefaultHotC,
		UpdateTrial: DefaultUpdateTrial,
		TimeSources: DefaultTimeSources(),
	}
}

// LoadConfig returns DefaultConfig overlaid with the YAML file at path.
// Unknown keys are an error, so a typo does not silently fall back to a
// default.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("read config %s: %w", path, err)
	}
	return cfg, nil
}

// FieldError says which setting is wrong and why.
type FieldError struct {
	Field string // the YAML key, which is also the flag name
	Err   error
}

// Error returns "<field>: <what is wrong and how to fix it>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying reason.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks every setting and returns a *FieldError naming the first
// one that is missing or wrong.
func (c *Config) Validate() error {
	if c.ID == "" {
		return fieldErr("id", "no device id set: pass --id ID or set id: in the config file (loa device add prints it)")
	}
	if err := protocol.ValidName(c.ID); err != nil {
		return &FieldError{Field: "id", Err: err}
	}
	if c.Site == "" {
		return fieldErr("site", "no site set: pass --site SITE or set site: in the config file")
	}
	if err := protocol.ValidName(c.Site); err != nil {
		return &FieldError{Field: "site", Err: err}
	}
	if len(c.BrokerURLs()) == 0 {
		return fieldErr("broker", "no broker set: pass --broker tcp://HOST:1883 or set broker: in the config file (brokers: [URL, ...] for the nodes of a cluster)")
	}
	for _, b := range []struct {
		field string
		urls  []string
	}{{"broker", protocol.SplitList(c.Broker)}, {"brokers", c.Brokers}} {
		for _, s := range b.urls {
			if u, err := url.Parse(s); err != nil || u.Host == "" || !brokerSchemes[u.Scheme] {
				return fieldErr(b.field, "%q is not a broker URL: use tcp://HOST:1883 (or ssl://HOST:8883, ws://HOST/PATH)", s)
			}
		}
	}
	if c.Server == "" {
		return fieldErr("server", "no controller URL set: pass --server http://HOST:8080 or set server: in the config file")
	}
	if u, err := url.Parse(c.Server); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fieldErr("server", "%q is not an http(s) URL: use http://HOST:8080", c.Server)
	}
	if c.Token == "" {
		return fieldErr("token", "no device token set: pass --token SECRET or set token: in the config file (loa device add prints it)")
	}
	if len(c.ControllerKeys) == 0 {
		return fieldErr("controller_keys", "no controller key set: use the config file `loa device add ID --write-config FILE` writes, or pass --controller-key ed25519:…")
	}
	if _, err := protocol.NewKeyring(c.ControllerKeys...); err != nil {
		return &FieldError{Field: "controller_keys", Err: err}
	}
	if c.Cache == "" {
		return fieldErr("cache", "no cache folder set: pass --cache DIR or set cache: in the config file")
	}
	if c.CacheMaxMB <= 0 {
		return fieldErr("cache_max_mb", "%d is not a positive number of megabytes", c.CacheMaxMB)
	}
	if _, err := ParseOutput(c.Output); err != nil {
		return &FieldError{Field: "output", Err: err}
	}
	if c.HotC != 0 && (c.HotC < 30 || c.HotC > 150) {
		return fieldErr("hot_c", "%g °C is not a processor temperature to warn at: use 30 to 150 (default %d)", c.HotC, DefaultHotC)
	}
	if c.Heartbeat < time.Second {
		return fieldErr("heartbeat", "%v is too short: use at least 1s (default 30s)", c.Heartbeat)
	}
	if c.UpdateTrial < 10*time.Second || c.UpdateTrial > time.Hour {
		return fieldErr("update_trial", "%v is not a trial time for a new agent build: use 10s to 1h (default 3m)", c.UpdateTrial)
	}
	if err := c.TimeSources.validate(); err != nil {
		return err
	}
	if _, err := c.tlsConfig(nil); err != nil {
		return err
	}
	return nil
}

// tlsConfig is the box's TLS client configuration for the broker and the
// media server, from the CA and client certificate settings. Certificates
// are checked at now() (time.Now when nil). Its errors are *FieldError.
func (c *Config) tlsConfig(now func() time.Time) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: pki.MinVersion, Time: now}
	var caPEM []byte
	field := "ca_pem"
	switch {
	case c.CAFile != "" && c.CAPEM != "":
		return nil, fieldErr("ca_file", "set ca_file or ca_pem, not both")
	case c.CAFile != "":
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fieldErr("ca_file", "read the CA certificate: %w", err)
		}
		caPEM, field = b, "ca_file"
	case c.CAPEM != "":
		caPEM = []byte(c.CAPEM)
	}
	if caPEM != nil {
		pool, err := pki.PoolFromPEM(caPEM)
		if err != nil {
			return nil, fieldErr(field, "%v: use the ca_pem block `loa device add` writes, or the ca.crt of `loa pki init`", err)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		return nil, fieldErr("key_file", "empty while cert_file is set: give both (`loa pki box ID` writes box-ID.crt and box-ID.key)")
	case c.CertFile == "" && c.KeyFile != "":
		return nil, fieldErr("cert_file", "empty while key_file is set: give both (`loa pki box ID` writes box-ID.crt and box-ID.key)")
	case c.CertFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fieldErr("cert_file", "load %s with the key %s: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// BrokerURLs lists every broker the box may use, in the order it tries
// them: the URLs of Broker (comma-separated), then Brokers, each once, blanks
// dropped.
func (c *Config) BrokerURLs() []string { return protocol.BrokerURLs(c.Broker, c.Brokers) }

var brokerSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "ws": true, "wss": true}

// Output kinds accepted by ParseOutput.
const (
	OutputALSA = "alsa"
	OutputWAV  = "wav"
	OutputNull = "null"
)

// Output is a parsed output setting.
type Output struct {
	Kind string // OutputALSA, OutputWAV or OutputNull
	Arg  string // the ALSA device (empty for the default) or the WAV folder
}

// ParseOutput reads "alsa", "alsa:DEVICE", "wav:DIR" or "null".
func ParseOutput(s string) (Output, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch {
	case kind == OutputALSA:
		return Output{Kind: kind, Arg: arg}, nil
	case kind == OutputWAV && arg != "":
		return Output{Kind: kind, Arg: arg}, nil
	case s == OutputNull:
		return Output{Kind: kind}, nil
	}
	return Output{}, fmt.Errorf("output %q is not one of alsa, alsa:DEVICE, wav:DIR, null", s)
}

// minValidTime is the configured plausibility threshold.
func (c *Config) minValidTime() time.Time {
	if !c.MinValidTime.IsZero() {
		return c.MinValidTime
	}
	if built, err := time.Parse(time.DateOnly, BuildDate); err == nil && built.After(DefaultMinValidTime) {
		return built
	}
	return DefaultMinValidTime
}
