package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mochistop"
	"github.com/loa-commune/loa/protocol"
)

// testSigner plays the controller; the agent is given its public key.
var (
	testSigner = protocol.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	testKey    = protocol.FormatPublicKey(testSigner.Public())
)

func TestErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "pass --config FILE"},
		{"no broker", []string{"--id", "b1", "--site", "s1"}, "no broker set: pass --broker tcp://HOST:1883 or set broker: in the config file"},
		{"no controller key", []string{"--id", "b1", "--site", "s1", "--broker", "tcp://h:1883", "--server", "http://h", "--token", "t"}, "no controller key set"},
		{"bad output", []string{"--id", "b1", "--site", "s1", "--broker", "tcp://h:1883", "--server", "http://h", "--token", "t", "--controller-key", testKey, "--output", "hdmi"}, "alsa, alsa:DEVICE, wav:DIR, null"},
		{"bad repeated broker", []string{"--id", "b1", "--site", "s1", "--broker", "tcp://h:1883", "--broker", "h2:1883", "--server", "http://h", "--token", "t"}, `broker: "h2:1883" is not a broker URL`},
		{"bad broker in a list", []string{"--id", "b1", "--site", "s1", "--broker", "tcp://h:1883,http://h2", "--server", "http://h", "--token", "t"}, `broker: "http://h2" is not a broker URL`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "read config"},
		{"stray argument", []string{"--id", "b1", "extra"}, `unexpected argument "extra"`},
		{"bad level", []string{"--id", "b1", "--site", "s1", "--broker", "tcp://h:1883", "--server", "http://h", "--token", "t", "--controller-key", testKey, "--cache", dir, "--output", "null", "--log-level", "loud"}, "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestPlaysWithWAVOutput runs the command as a box would be run, with the
// config file and a flag overriding it, against a broker and a media server,
// and checks the WAV file it plays.
func TestPlaysWithWAVOutput(t *testing.T) {
	const site, id, token = "xa-test", "box-7", "tok"
	broker := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	broker.AddHook(new(auth.AllowHook), nil)
	l := mochistop.NewListener("t", "127.0.0.1:0", nil)
	if err := broker.AddListener(l); err != nil {
		t.Fatal(err)
	}
	broker.Serve()
	t.Cleanup(func() { _ = mochistop.Close(broker) })

	f := audio.Format{SampleRate: 48000, Channels: 2}
	s := make([]float32, 2*4800)
	for i := range s {
		s[i] = float32(0.3 * math.Sin(float64(i)/10))
	}
	var wav bytes.Buffer
	audio.WriteWAV(&wav, f, audio.PutFloats(nil, s))
	sum := sha256.Sum256(wav.Bytes())
	sha := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != id || p != token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, sha, time.Time{}, bytes.NewReader(wav.Bytes()))
	}))
	t.Cleanup(srv.Close)

	ctl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + l.Address()).SetClientID("ctl"))
	if tok := ctl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer ctl.Disconnect(100)
	tp := protocol.NewTopics(site)
	now := time.Now().UTC()
	pub := func(topic string, kind protocol.Kind, body any) {
		b, err := protocol.EncodeSigned(topic, kind, site, 1, now, body, testSigner)
		if err != nil {
			t.Fatal(err)
		}
		if tok := ctl.Publish(topic, 1, true, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	pub(tp.DeviceConfig(id), protocol.KindConfig, protocol.DeviceConfig{Groups: []string{}, Volume: 100})
	pub(tp.PlanAll(), protocol.KindPlan, protocol.Plan{Target: "all", Generated: now, Items: []protocol.PlanItem{{
		ID: "hello-1", Start: now, Expires: now.Add(time.Hour), Priority: protocol.Normal,
		Media: protocol.Media{SHA256: sha, Size: int64(wav.Len()), DurationMS: 100}, Repeat: 1, Status: protocol.StatusLive,
	}}})

	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, []byte(strings.Join([]string{
		"id: " + id, "site: " + site, "broker: tcp://" + l.Address(), "server: " + srv.URL,
		"token: " + token, "cache: " + filepath.Join(dir, "cache"), "output: null", "controller_keys: [" + testKey + "]", "",
	}, "\n")), 0o600)
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- run(ctx, []string{"--config", conf, "--output", "wav:" + out}, &syncWriter{w: &logs}) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(out, "hello-1.wav")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no WAV played; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	fh, err := os.Open(filepath.Join(out, "hello-1.wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	_, got, err := audio.ReadWAV(fh)
	if err != nil || len(got) != len(s) {
		t.Fatalf("played %d samples (%v), want %d", len(got), err, len(s))
	}
	for i := range got {
		if math.Abs(float64(got[i]-s[i])) > 1e-4 {
			t.Fatalf("sample %d = %v, want %v", i, got[i], s[i])
		}
	}
}

// syncWriter serialises writes from the agent's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
