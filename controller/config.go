package controller

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/backup"
	"github.com/loa-commune/loa/console"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/broadcaster"
	capxml "github.com/loa-commune/loa/cap"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/pki"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/triggers"
	"github.com/loa-commune/loa/tts"
)

// Config is the controller's configuration.
type Config struct {
	Site     string `yaml:"site"`
	Data     string `yaml:"data"`
	HTTP     string `yaml:"http"`
	MQTT     string `yaml:"mqtt"`
	Timezone string `yaml:"timezone"`
	// Broker selects an external MQTT broker instead of the embedded one;
	// several URLs, separated by commas (also in --broker and LOA_BROKER),
	// name the nodes of a cluster. Brokers lists more of them. Validate
	// leaves the first URL in Broker and the others, in order, in Brokers
	// (BrokerURLs gives them all); boxes get them all in their configs.
	Broker         string   `yaml:"broker"`
	Brokers        []string `yaml:"brokers"`
	BrokerUsername string   `yaml:"broker_username"`
	BrokerPassword string   `yaml:"broker_password"`
	// PublicServerURL and PublicBrokerURL are how boxes reach this
	// controller; they go into the agent configs `loa device add` writes.
	PublicServerURL string        `yaml:"public_server_url"`
	PublicBrokerURL string        `yaml:"public_broker_url"`
	Horizon         time.Duration `yaml:"horizon"`
	// OfflineDays is how far ahead boxes expand their recurring rules
	// themselves: how long a box cut off from the controller keeps its
	// daily programme.
	OfflineDays     int           `yaml:"offline_days"`
	Validity        time.Duration `yaml:"validity"`
	DefaultVolume   int           `yaml:"default_volume"`
	EmergencyVolume int           `yaml:"emergency_volume"`
	HeartbeatSec    int           `yaml:"heartbeat_sec"`
	// AnswerSpread is how long boxes may wait, at random, before they
	// answer (protocol.DeviceConfig.AnswerSpreadMS): a province's boxes
	// then do not all answer an emergency while the broker still sends it.
	AnswerSpread    time.Duration `yaml:"answer_spread"`
	MaxMediaMB      int64         `yaml:"max_media_mb"`
	MaxMediaMinutes int           `yaml:"max_media_minutes"`
	// Media says how uploads become what boxes play: ffmpeg, the loudness
	// target, the Opus bitrate and channels.
	Media ingest.Options `yaml:"media"`
	// Live says how live speech and relayed radio reach the boxes: the
	// play-out delay, packet size, a relay's Opus and retries, the longest
	// session and how long recordings are kept.
	Live live.Options `yaml:"live"`
	// EmergencyValidity is how long an emergency keeps reaching boxes that
	// come back online.
	EmergencyValidity time.Duration `yaml:"emergency_validity"`
	// ExerciseNotice is spoken before every exercise; AllClearText where an
	// emergency was cancelled (empty: no all-clear).
	ExerciseNotice string      `yaml:"exercise_notice"`
	AllClearText   string      `yaml:"all_clear_text"`
	TTS            tts.Options `yaml:"tts"`
	// CAP maps CAP 1.2 alerts (POST /v1/alerts/cap) to emergencies.
	CAP capxml.Config `yaml:"cap"`
	// Triggers are the sensor rules that start and cancel emergencies.
	Triggers []triggers.Rule `yaml:"triggers"`
	// HTTPLimits bound each client's API requests (per token, box or
	// address) and how long a request body may take; MQTTLimits what each
	// box or sensor may publish through the embedded broker.
	HTTPLimits api.Limits         `yaml:"http_limits"`
	MQTTLimits broadcaster.Limits `yaml:"mqtt_limits"`
	// TLSCert and TLSKey are the controller's certificate (PEM, its chain
	// may follow) and key, as `loa pki init` writes them. Set, the HTTP API
	// serves HTTPS and the embedded broker MQTT over TLS (ssl://).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSCA is the certificate authority boxes and the CLI trust: it goes
	// into agent configs (ca_pem) and <data>/ca.crt. Empty: the last
	// certificate of tls_cert's chain when it is a CA; else none (a
	// certificate that boxes already trust).
	TLSCA string `yaml:"tls_ca"`
	// TLSClientCA makes the embedded broker let in only boxes with a client
	// certificate this CA signed (`loa pki box ID`).
	TLSClientCA string `yaml:"tls_client_ca"`
	// Console is the web console's settings (served at the HTTP address).
	Console ConsoleConfig `yaml:"console"`
	// Backup copies the data folder to a second place every few minutes
	// (`loa restore` puts it on a new PC).
	Backup backup.Options `yaml:"backup"`
}

// ConsoleConfig configures the web console.
type ConsoleConfig struct {
	// Tiles is the map's tile source, e.g.
	// https://tile.openstreetmap.org/{z}/{x}/{y}.png; empty: the map
	// draws the boxes on a plain background and asks nothing of the
	// internet.
	Tiles string `yaml:"tiles"`
	// SessionTTL signs a person out after this long without use (12h).
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Defaults returns the configuration of a controller run with no options.
func Defaults() Config {
	return Config{
		Site: "commune", Data: "loa-data", HTTP: ":8080", MQTT: ":1883", Timezone: "Asia/Ho_Chi_Minh",
		Horizon: 48 * time.Hour, Validity: 15 * time.Minute, DefaultVolume: 80, EmergencyVolume: 100,
		HeartbeatSec: 30, AnswerSpread: time.Second, OfflineDays: 30, MaxMediaMB: 50, MaxMediaMinutes: 30,
		EmergencyValidity: time.Hour,
		ExerciseNotice:    "Đây là bản tin diễn tập, không phải báo động thật.",
		AllClearText:      "Đã hết báo động. Bà con trở lại sinh hoạt bình thường.",
		TTS:               tts.DefaultOptions(),
		Media:             ingest.DefaultOptions(),
		Live:              live.DefaultOptions(),
		CAP:               capxml.DefaultConfig(),
		HTTPLimits:        api.DefaultLimits(),
		MQTTLimits:        broadcaster.DefaultLimits(),
	}
}

// LoadFile applies a YAML file over c. Unknown keys are an error, so a typo
// does not silently fall back to a default.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // EOF: empty or only comments
		return fmt.Errorf("read config %s: %w", path, err)
	}
	return nil
}

// LoadEnv applies LOA_SITE, LOA_DATA, LOA_HTTP, LOA_MQTT, LOA_BROKER,
// LOA_TIMEZONE, LOA_TLS_CERT, LOA_TLS_KEY, LOA_TLS_CA and LOA_TLS_CLIENT_CA
// over c.
func (c *Config) LoadEnv() {
	for env, field := range map[string]*string{
		"LOA_SITE": &c.Site, "LOA_DATA": &c.Data, "LOA_HTTP": &c.HTTP, "LOA_MQTT": &c.MQTT,
		"LOA_BROKER": &c.Broker, "LOA_TIMEZONE": &c.Timezone,
		"LOA_TLS_CERT": &c.TLSCert, "LOA_TLS_KEY": &c.TLSKey, "LOA_TLS_CA": &c.TLSCA, "LOA_TLS_CLIENT_CA": &c.TLSClientCA,
	} {
		if v, ok := os.LookupEnv(env); ok {
			*field = v
		}
	}
}

// FieldError names the setting that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("config %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks every setting and fills in the derived public URLs.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if err := protocol.ValidName(c.Site); err != nil {
		return &FieldError{Field: "site", Err: err}
	}
	if c.Data == "" {
		return bad("data", "empty: give a folder for the database and media")
	}
	if c.OfflineDays < 1 || c.OfflineDays > 366 {
		return bad("offline_days", "%d: give how many days boxes keep their schedules without the controller, 1 to 366 (30 is usual)", c.OfflineDays)
	}
	if c.Console.Tiles != "" {
		if err := console.ValidTiles(c.Console.Tiles); err != nil {
			return &FieldError{Field: "console.tiles", Err: err}
		}
	}
	if c.Backup.Dir != "" {
		if err := c.validBackup(); err != nil {
			return &FieldError{Field: "backup.dir", Err: err}
		}
	}
	if c.Backup.Every != 0 && c.Backup.Every < 10*time.Second {
		return bad("backup.every", "%v is too often: give 10s or more (5m is usual)", c.Backup.Every)
	}
	if c.Console.SessionTTL < 0 {
		return bad("console.session_ttl", "%v is negative: give how long a sign-in lasts unused, like 12h", c.Console.SessionTTL)
	}
	if !validListen(c.HTTP) {
		return bad("http", "%q is not HOST:PORT (e.g. :8080)", c.HTTP)
	}
	brokers := c.BrokerURLs()
	if len(brokers) == 0 {
		if !validListen(c.MQTT) {
			return bad("mqtt", "%q is not HOST:PORT (e.g. :1883)", c.MQTT)
		}
	}
	for _, b := range []struct {
		field string
		urls  []string
	}{{"broker", protocol.SplitList(c.Broker)}, {"brokers", c.Brokers}} {
		for _, s := range b.urls {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl") || u.Host == "" {
				return bad(b.field, "%q must look like tcp://HOST:1883", s)
			}
		}
	}
	if len(brokers) > 0 {
		c.Broker, c.Brokers = brokers[0], brokers[1:]
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return bad("timezone", "%q is not a time zone (e.g. Asia/Ho_Chi_Minh)", c.Timezone)
	}
	if c.Horizon < time.Hour {
		return bad("horizon", "%v is shorter than 1h", c.Horizon)
	}
	if c.Validity < time.Second {
		return bad("validity", "%v is shorter than 1s", c.Validity)
	}
	if c.AnswerSpread < 0 || c.AnswerSpread > protocol.MaxAnswerSpreadMS*time.Millisecond {
		return bad("answer_spread", "%v is not within 0s..1m", c.AnswerSpread)
	}
	if c.EmergencyValidity < time.Minute {
		return bad("emergency_validity", "%v is shorter than 1m", c.EmergencyValidity)
	}
	if len(c.TTS.Command) == 0 {
		return bad("tts.command", "empty: give the speech program and its arguments, e.g. [espeak-ng, -v, \"{voice}\", -w, \"{out}\", --stdin]")
	}
	if err := c.CAP.Validate(); err != nil {
		var ce *capxml.ConfigError
		if errors.As(err, &ce) {
			return &FieldError{Field: "cap." + ce.Field, Err: ce.Err}
		}
		return &FieldError{Field: "cap", Err: err}
	}
	if _, err := triggers.NewEngine(c.Triggers); err != nil {
		return &FieldError{Field: "triggers", Err: err}
	}
	if c.DefaultVolume < 0 || c.DefaultVolume > 100 {
		return bad("default_volume", "%d is not within 0..100", c.DefaultVolume)
	}
	if c.EmergencyVolume < 0 || c.EmergencyVolume > 100 {
		return bad("emergency_volume", "%d is not within 0..100", c.EmergencyVolume)
	}
	if c.MaxMediaMB <= 0 {
		return bad("max_media_mb", "%d must be positive", c.MaxMediaMB)
	}
	if c.MaxMediaMinutes <= 0 {
		return bad("max_media_minutes", "%d must be positive", c.MaxMediaMinutes)
	}
	c.Media.MaxDuration = time.Duration(c.MaxMediaMinutes) * time.Minute
	if err := c.Media.Validate(); err != nil {
		var fe *ingest.FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: "media." + fe.Field, Err: fe.Err}
		}
		return &FieldError{Field: "media", Err: err}
	}
	if c.Live.FFmpeg == live.DefaultOptions().FFmpeg {
		c.Live.FFmpeg = c.Media.FFmpeg // one ffmpeg for uploads and relays
	}
	if err := c.Live.Validate(); err != nil {
		var fe *live.FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: "live." + fe.Field, Err: fe.Err}
		}
		return &FieldError{Field: "live", Err: err}
	}
	if err := c.HTTPLimits.Validate(); err != nil {
		return &FieldError{Field: "http_limits", Err: err}
	}
	if err := c.MQTTLimits.Validate(); err != nil {
		return &FieldError{Field: "mqtt_limits", Err: err}
	}
	if _, err := c.loadTLS(); err != nil {
		return err
	}
	return nil
}

// BrokerURLs lists the external broker's URLs in the order they are tried:
// those of Broker (comma-separated), then Brokers, each once. None: the
// embedded broker.
func (c *Config) BrokerURLs() []string { return protocol.BrokerURLs(c.Broker, c.Brokers) }

// validListen reports whether addr is HOST:PORT with a port from 0 to 65535.
func validListen(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// publicURLs fills in how boxes reach the controller when not configured:
// the listen ports on this machine's loopback (right for `loa demo`; a real
// site sets public_server_url and public_broker_url), https:// and ssl://
// with TLS.
func (c *Config) publicURLs(httpAddr, brokerAddr string) (server, broker string) {
	server, broker = c.PublicServerURL, c.PublicBrokerURL
	httpScheme, mqttScheme := "http", "tcp"
	if c.TLSCert != "" {
		httpScheme, mqttScheme = "https", "ssl"
	}
	if server == "" {
		_, port, _ := net.SplitHostPort(httpAddr)
		server = httpScheme + "://127.0.0.1:" + port
	}
	if broker == "" {
		if urls := c.BrokerURLs(); len(urls) > 0 {
			// Every node of a cluster, so a box fails over as the
			// controller does (the agent reads the comma-separated list).
			broker = strings.Join(urls, ",")
		} else {
			_, port, _ := net.SplitHostPort(brokerAddr)
			broker = mqttScheme + "://127.0.0.1:" + port
		}
	}
	return server, broker
}

// tlsFiles is what the TLS settings name, read and checked.
type tlsFiles struct {
	cert tls.Certificate
	leaf *x509.Certificate
	// caPEM is the CA boxes and the CLI are told to trust, caPool the same
	// as a pool; nil: none (boxes use their system's roots).
	caPEM  []byte
	caPool *x509.CertPool
	// clientCAs sign the boxes' client certificates; nil: none needed.
	clientCAs *x509.CertPool
}

// loadTLS reads and checks the TLS settings' files: nil without TLS. Its
// errors are *FieldError.
func (c *Config) loadTLS() (*tlsFiles, error) {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	if c.TLSCert == "" && c.TLSKey == "" {
		if c.TLSCA != "" {
			return nil, bad("tls_ca", "needs tls_cert and tls_key (the controller's certificate and key: `loa pki init` makes them)")
		}
		if c.TLSClientCA != "" {
			return nil, bad("tls_client_ca", "needs tls_cert and tls_key (the controller's certificate and key: `loa pki init` makes them)")
		}
		return nil, nil
	}
	if c.TLSCert == "" {
		return nil, bad("tls_cert", "empty while tls_key is set: give both (server.crt and server.key from `loa pki init`)")
	}
	if c.TLSKey == "" {
		return nil, bad("tls_key", "empty while tls_cert is set: give both (server.crt and server.key from `loa pki init`)")
	}
	var f tlsFiles
	var err error
	if f.cert, err = tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
		return nil, bad("tls_cert", "load %s with the key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	if f.leaf = f.cert.Leaf; f.leaf == nil {
		if f.leaf, err = x509.ParseCertificate(f.cert.Certificate[0]); err != nil {
			return nil, bad("tls_cert", "%s: %w", c.TLSCert, err)
		}
	}
	chain := x509.NewCertPool()
	for _, der := range f.cert.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, bad("tls_cert", "%s: %w", c.TLSCert, err)
		}
		chain.AddCert(cert)
	}
	if c.TLSCA != "" {
		b, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, bad("tls_ca", "%w", err)
		}
		certs, err := pki.ParseCerts(b)
		if err != nil {
			return nil, bad("tls_ca", "%s: %w", c.TLSCA, err)
		}
		f.caPEM = pki.EncodeCerts(certs...)
	} else if n := len(f.cert.Certificate); n > 1 {
		// `loa pki init` puts the CA after the server's certificate.
		if ca, err := x509.ParseCertificate(f.cert.Certificate[n-1]); err == nil && ca.IsCA {
			f.caPEM = pki.EncodeCerts(ca)
		}
	}
	if f.caPEM != nil {
		f.caPool, _ = pki.PoolFromPEM(f.caPEM)
		if _, err := f.leaf.Verify(x509.VerifyOptions{Roots: f.caPool, Intermediates: chain}); err != nil {
			return nil, bad("tls_ca", "boxes would refuse %s with this CA: %w", c.TLSCert, err)
		}
	}
	if c.TLSClientCA != "" {
		if c.Broker != "" {
			return nil, bad("tls_client_ca", "only the embedded broker checks client certificates: set them up in the external broker %s instead", c.Broker)
		}
		b, err := os.ReadFile(c.TLSClientCA)
		if err != nil {
			return nil, bad("tls_client_ca", "%w", err)
		}
		if f.clientCAs, err = pki.PoolFromPEM(b); err != nil {
			return nil, bad("tls_client_ca", "%s: %w", c.TLSClientCA, err)
		}
	}
	if u, err := url.Parse(c.PublicServerURL); c.PublicServerURL != "" && err == nil && u.Scheme == "http" {
		return nil, bad("public_server_url", "%q is plain HTTP, but with tls_cert the API serves only HTTPS: use https://", c.PublicServerURL)
	}
	if u, err := url.Parse(c.PublicBrokerURL); c.Broker == "" && c.PublicBrokerURL != "" && err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt") {
		return nil, bad("public_broker_url", "%q is plain MQTT, but with tls_cert the embedded broker speaks only TLS: use ssl://", c.PublicBrokerURL)
	}
	return &f, nil
}

// validBackup refuses a backup folder inside the data folder (or the data
// folder inside it): a copy on the same disk dies with the PC.
func (c *Config) validBackup() error {
	dir, err1 := filepath.Abs(c.Backup.Dir)
	data, err2 := filepath.Abs(c.Data)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if within(dir, data) || within(data, dir) {
		return fmt.Errorf("%s and the data folder %s overlap: give a folder on another disk (a USB disk, a NAS share)", c.Backup.Dir, c.Data)
	}
	return nil
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
