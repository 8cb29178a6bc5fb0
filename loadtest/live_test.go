package loadtest

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/live"
	"github.com/loa-commune/loa/protocol"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed")
	}
}

// checkLive checks what every run of a small live session must show: every
// packet with sound reached every box, verified, on time, and the end too.
func checkLive(t *testing.T, res LiveResult, boxes int) {
	t.Helper()
	if res.Packets < 20 || res.Received != int64(boxes)*(res.Packets-1) {
		t.Errorf("%d packets published, %d received by %d boxes, want every one with sound at every box", res.Packets, res.Received, boxes)
	}
	if res.Lost != 0 || res.Bad != 0 || res.Duplicates != 0 || res.NoEnd != 0 {
		t.Errorf("lost %d, bad %d, duplicates %d, boxes without the end %d; want none", res.Lost, res.Bad, res.Duplicates, res.NoEnd)
	}
	if res.Late != 0 || res.Lead.Min <= 0 || res.Lead.P50 > 2*time.Second {
		t.Errorf("late %d frames, lead %+v; want every frame ahead of its time, about the 1.5 s delay", res.Late, res.Lead)
	}
	if res.BoxFrames < int64(boxes)*4*(res.Packets-1) || res.Sound < 2*time.Second {
		t.Errorf("%d frames at the boxes, %v of sound", res.BoxFrames, res.Sound)
	}
	if res.WireBytesPerBoxMinute <= res.PayloadBytesPerBoxMinute || res.PayloadBytesPerBoxMinute <= 0 {
		t.Errorf("bytes a minute: wire %.0f, payload %.0f", res.WireBytesPerBoxMinute, res.PayloadBytesPerBoxMinute)
	}
	if res.Controller.CPU <= 0 || res.Controller.RSSPeak <= 0 {
		t.Errorf("controller cost not measured: %+v", res.Controller)
	}
	if res.Connections < int64(boxes) {
		t.Errorf("%d connections with %d boxes", res.Connections, boxes)
	}
}

// TestLiveSmallMQTT follows one short live session on a few simulated
// boxes through a real controller and its embedded broker.
func TestLiveSmallMQTT(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT, cfg.AllClearText = "lt", filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", "127.0.0.1:0", ""
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctrl, err := controller.Open(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close(ctx)
	c := api.NewClient("http://"+ctrl.HTTPAddr(), ctrl.AdminToken())
	res, err := Live(ctx, c, LiveOptions{Boxes: 5, Groups: 2, Site: "lt", Brokers: []string{"tcp://" + ctrl.BrokerAddr()},
		For: 3 * time.Second, Idle: -1, Keep: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, res, 5)
	if res.Connections != 6 { // the boxes and the controller
		t.Errorf("broker connections %d, want 6", res.Connections)
	}
}

// TestLiveSmallHTTP follows one short live session on a few HTTP clients of
// the benchmark's stream server.
func TestLiveSmallHTTP(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	srv, err := NewStreamServer("lt", live.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, err := Live(ctx, nil, LiveOptions{Boxes: 5, Transport: TransportHTTP, StreamURL: hs.URL, For: 3 * time.Second, Idle: -1}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, res, 5)
	if res.Frames*5 != res.BoxFrames || res.Dropped != 0 {
		t.Errorf("frames %d published, %d at the 5 boxes, dropped %d", res.Frames, res.BoxFrames, res.Dropped)
	}
}

// TestStreamCacheRefusesForgery: a packet signed by another key is counted
// bad, never played.
func TestStreamCacheRefusesForgery(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	keys := protocol.Keyring{protocol.KeyID(pub): pub}
	topic := protocol.NewTopics("lt").Stream("s-1")
	frame := []byte{0xfc, 1, 2, 3} // a 20 ms CELT frame's table of contents
	at := time.Now().Add(time.Second)
	good, err := protocol.EncodeStreamPacket(topic, protocol.StreamPacket{Seq: 0, At: at, Channels: 1, Frames: [][]byte{frame, frame}}, protocol.NewSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := protocol.EncodeStreamPacket(topic, protocol.StreamPacket{Seq: 1, At: at, Channels: 1, Frames: [][]byte{frame}}, protocol.NewSigner(other))
	if err != nil {
		t.Fatal(err)
	}
	r := newStreamRecv(newStreamCache(keys))
	r.onPacket(topic, good, time.Now(), len(good))
	r.onPacket(topic, forged, time.Now(), len(forged))
	r.onPacket(protocol.NewTopics("lt").Stream("s-2"), good, time.Now(), len(good)) // moved to another session
	if r.frames != 2 || r.bad != 2 || len(r.arrivals) != 1 || r.late != 0 {
		t.Fatalf("frames %d, bad %d, arrivals %d, late %d; want 2, 2, 1, 0", r.frames, r.bad, len(r.arrivals), r.late)
	}
}

// BenchmarkDecodeStreamPacket is what one box spends on each packet of a
// live session (100 ms of 24 kbit/s Opus, one signature): the simulated
// boxes share one decoding per packet, a real box does its own.
func BenchmarkDecodeStreamPacket(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	keys := protocol.Keyring{protocol.KeyID(pub): pub}
	topic := protocol.NewTopics("lt").Stream("s-1")
	var frames [][]byte
	for range 5 {
		f := make([]byte, 60) // 24 kbit/s: 60 bytes a 20 ms frame
		f[0] = 0xfc
		frames = append(frames, f)
	}
	p, err := protocol.EncodeStreamPacket(topic, protocol.StreamPacket{At: time.Now(), Channels: 1, Frames: frames}, protocol.NewSigner(key))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := protocol.DecodeStreamPacket(p, topic, keys); err != nil {
			b.Fatal(err)
		}
	}
}
