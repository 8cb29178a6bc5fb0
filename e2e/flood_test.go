package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"
)

// TestFloodDoesNotStopTheSchedule: while junk HTTP requests, slow and
// broken connections and a registered box flooding junk MQTT messages hit
// a real `loa serve`, an announcement scheduled before the flood plays on
// time on a real loa-agent, the API answers floods with 429 and
// Retry-After, and the controller's log stays short.
func TestFloodDoesNotStopTheSchedule(t *testing.T) {
	c := newCommune(t, "", "")
	played := c.startBox("box-1", c.addBox("box-1", "thon-1"))
	floodCfg := c.addBox("box-2", "thon-2") // registered; its credentials flood
	c.waitOnline("box-1")
	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var ann struct {
		ID string `json:"id"`
	}
	at := time.Now().Add(20 * time.Second).Truncate(time.Second)
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", "thon-1", "--at", at.Format(time.RFC3339))

	server := strings.TrimPrefix(c.cli.env[0], "LOA_SERVER=")
	adminToken, err := os.ReadFile(filepath.Join(c.dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	var script struct {
		Secret string `json:"secret"`
	}
	c.cli.json(&script, "token", "add", "dashboard", "--role", "viewer")
	var box struct{ ID, Broker, Token string }
	if b, err := os.ReadFile(floodCfg); err != nil || yaml.Unmarshal(b, &box) != nil {
		t.Fatalf("read %s: %v", floodCfg, err)
	}
	brokerURL, err := url.Parse(box.Broker)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := strings.TrimPrefix(server, "http://")

	var wg sync.WaitGroup
	var statuses sync.Map // status code → *atomic.Int64
	count := func(code int) {
		n, _ := statuses.LoadOrStore(code, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	var sawRetryAfter, scriptHeldBack atomic.Bool
	client := &http.Client{Timeout: 30 * time.Second}
	request := func(method, path, token string, body io.Reader) int {
		req, err := http.NewRequest(method, server+path, body)
		if err != nil {
			t.Error(err)
			return 0
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			count(0) // the server closed on us: fine for junk
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		count(resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
			sawRetryAfter.Store(true)
		}
		return resp.StatusCode
	}
	// HTTP: no token, guessed tokens, junk paths, a dashboard's token too
	// fast, oversized bodies.
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				switch i % 4 {
				case 0:
					request("GET", "/v1/status", "", nil)
				case 1:
					request("GET", "/v1/devices", fmt.Sprintf("guess-%d-%d", w, i), nil)
				case 2:
					request("GET", fmt.Sprintf("/v1/media/%064d", i), "", nil)
				case 3:
					request("POST", "/v1/announcements", "", strings.NewReader(`{"text":`))
				}
			}
		})
	}
	wg.Go(func() {
		for range 300 {
			if request("GET", "/v1/devices", script.Secret, nil) == http.StatusTooManyRequests {
				scriptHeldBack.Store(true)
			}
		}
	})
	wg.Go(func() {
		for range 5 {
			request("POST", "/v1/announcements", strings.TrimSpace(string(adminToken)), bytes.NewReader(bytes.Repeat([]byte("{"), 5<<20)))
		}
	})
	// Broken and slow connections: garbage, and headers that never end.
	var slow []net.Conn
	for i := range 20 {
		conn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, conn)
		if i%2 == 0 {
			conn.Write([]byte("\x16\x03\x01garbage\r\n\r\n"))
		} else {
			conn.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		}
	}
	defer func() {
		for _, conn := range slow {
			conn.Close()
		}
	}()
	// MQTT: garbage on the broker's port, a packet header announcing 200 MB,
	// and a registered box flooding junk on its own topics.
	for _, junk := range [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n"), {0x10, 0xff, 0xff, 0xff, 0x7f}} {
		conn, err := net.Dial("tcp", brokerURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(junk)
		defer conn.Close()
	}
	flooder := paho.NewClient(paho.NewClientOptions().AddBroker(box.Broker).SetClientID("flooder").
		SetUsername(box.ID).SetPassword(box.Token).SetAutoReconnect(false))
	if tok := flooder.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("flooder connect: %v", tok.Error())
	}
	defer flooder.Disconnect(100)
	root := "loa/e2e/"
	wg.Go(func() {
		var toks []paho.Token
		for i := range 5000 {
			topic := []string{"device/box-2/state", "device/box-2/events", "device/box-2/time/req", "trigger/box-2"}[i%4]
			payload := []byte(`{"v":1,"kind":"junk"`)
			if i%10 == 0 {
				payload = bytes.Repeat([]byte("x"), 100<<10)
			}
			toks = append(toks, flooder.Publish(root+topic, 0, i%4 == 0, payload))
		}
		for _, tok := range toks {
			tok.WaitTimeout(30 * time.Second)
		}
	})
	wg.Wait()
	if time.Now().After(at) {
		t.Logf("the flood lasted past the item's start (%v): it was playing meanwhile", at.Format(time.TimeOnly))
	}

	// The scheduled item played, on time and whole.
	eventually(t, 60*time.Second, "the scheduled announcement to be played", func() bool {
		return c.report(ann.ID)["box-1"].Status == "played"
	})
	row := c.report(ann.ID)["box-1"]
	started, err := time.Parse(time.RFC3339Nano, row.StartedAt)
	if err != nil || started.Sub(at).Abs() > 2*time.Second {
		t.Errorf("started at %q, scheduled %v: %v", row.StartedAt, at, err)
	}
	assertSamples(t, "box-1", readWAV(t, filepath.Join(played, row.Item+".wav")), expectedPCM(t, "testdata/short.mp3", 80))

	// The floods were refused politely, and the API still answers.
	if !sawRetryAfter.Load() || !scriptHeldBack.Load() {
		t.Errorf("429 with Retry-After: %v; the dashboard's token held back: %v", sawRetryAfter.Load(), scriptHeldBack.Load())
	}
	var summary []string
	statuses.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%d×%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	t.Logf("HTTP answers: %s", strings.Join(summary, " "))
	if n, ok := statuses.Load(http.StatusInternalServerError); ok {
		t.Errorf("%d requests failed with 500", n.(*atomic.Int64).Load())
	}
	if st := c.status(); !st["box-1"].Online {
		t.Errorf("box-1 status after the flood: %+v", st["box-1"])
	}

	// The log says what was dropped in a few lines, not a line per message.
	log, err := os.ReadFile(filepath.Join(c.dir, "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ignored a bad", "request failed", `msg=""`} {
		if n := strings.Count(string(log), line); n != 0 {
			t.Errorf("the controller log has %d lines with %q", n, line)
		}
	}
	for _, line := range []string{"refused a request over the rate limit", "broker dropped a message from a box", "broker closed a connection"} {
		if n := strings.Count(string(log), line); n > 1 {
			t.Errorf("the controller log has %d lines with %q, want at most 1 (then summaries)", n, line)
		}
	}
	if lines := strings.Count(string(log), "\n"); lines > 200 {
		t.Errorf("the controller log has %d lines after the flood", lines)
	}
}
