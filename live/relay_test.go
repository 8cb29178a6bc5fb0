package live_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/streamtest"
	"github.com/loa-commune/loa/internal/testnet"
	"github.com/loa-commune/loa/live"
)

// relayOptions are short windows, so the tests take seconds.
func relayOptions() live.Options {
	o := testOptions()
	o.RetryWindow = 2 * time.Second
	o.IOTimeout = 2 * time.Second
	return o
}

// relayResult is a relay's outcome.
type relayResult struct {
	sum live.Summary
	err error
}

// startRelay runs a relay of url on the real clock until ctx ends.
func startRelay(t *testing.T, ctx context.Context, url string, opts live.Options, recording string) (*live.Session, *publisher, keys, <-chan relayResult) {
	t.Helper()
	s, pub, k := newSession(t, live.SystemClock{}, opts, recording)
	done := make(chan relayResult, 1)
	go func() {
		sum, err := s.Relay(ctx, url)
		done <- relayResult{sum, err}
	}()
	return s, pub, k, done
}

// waitFor polls cond until it holds, or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wait(t *testing.T, done <-chan relayResult, limit time.Duration) relayResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("the relay did not end within %v", limit)
		return relayResult{}
	}
}

// repeat is pcm twice over: the reference of a looped programme.
func repeat(pcm []float32, n int) []float32 {
	var out []float32
	for range n {
		out = append(out, pcm...)
	}
	return out
}

// checkSound checks that each stretch of the relayed sound (split where
// the timeline jumps) is the source's, wherever in it ffmpeg joined.
func checkSound(t *testing.T, ps []decoded, ref []float32, min float64) {
	t.Helper()
	for i, seg := range segments(t, ps) {
		got := render(t, seg)
		if len(got) < 48000/2 {
			continue // too short to say
		}
		lag, c := mediatest.BestMatch(ref, got)
		t.Logf("segment %d: %.2f s of sound, correlation %.4f at %.3f s into the source", i, float64(len(got))/48000, c, float64(lag)/48000)
		if c < min {
			t.Errorf("segment %d: correlation %.4f with the source, want at least %v", i, c, min)
		}
	}
}

func fileBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mp3File(t testing.TB) string {
	return clipFile(t, "clip.mp3", "-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3")
}

func aacFile(t testing.TB) string {
	return clipFile(t, "clip.aac", "-ar", "44100", "-c:a", "aac", "-b:a", "64k", "-f", "adts")
}

// TestRelayStreams relays an Icecast-like MP3 and AAC stream and an HLS
// playlist: the packets' sound is the programme's.
func TestRelayStreams(t *testing.T) {
	ref := reference(t, clipWAV(t))
	seconds := float64(len(ref)) / 48000
	t.Run("mp3", func(t *testing.T) {
		t.Parallel()
		relayLooped(t, streamtest.NewRadio(t, "audio/mpeg", true, streamtest.Part{Data: fileBytes(t, mp3File(t)), Seconds: seconds}), ref)
	})
	t.Run("aac", func(t *testing.T) {
		t.Parallel()
		relayLooped(t, streamtest.NewRadio(t, "audio/aac", true, streamtest.Part{Data: fileBytes(t, aacFile(t)), Seconds: seconds}), ref)
	})
	t.Run("hls", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		mediatest.FFmpeg(t, "-i", clipWAV(t), "-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "1",
			"-hls_playlist_type", "vod", "-hls_segment_filename", filepath.Join(dir, "seg%03d.ts"), filepath.Join(dir, "index.m3u8"))
		srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
		defer srv.Close()
		opts := relayOptions()
		_, pub, k, done := startRelay(t, context.Background(), srv.URL+"/index.m3u8", opts, "")
		r := wait(t, done, 20*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		// A playlist that ends is a programme that ends: not tried again.
		if r.sum.Ended != live.EndFinished || r.sum.Restarts != 0 || r.sum.Gaps != 0 {
			t.Errorf("summary %+v", r.sum)
		}
		if d := r.sum.End.Sub(r.sum.Start).Seconds(); d < seconds-0.1 || d > seconds+0.2 {
			t.Errorf("relayed %.2f s of a %.2f s programme", d, seconds)
		}
		ps := decodePackets(t, pub.all(), k)
		checkTimeline(t, ps, opts, r.sum)
		checkSound(t, ps, ref, 0.9)
	})
}

// relayLooped relays a looped programme for 2 s, then stops it.
func relayLooped(t *testing.T, rd *streamtest.Radio, ref []float32) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := relayOptions()
	_, pub, k, done := startRelay(t, ctx, rd.URL(), opts, "")
	waitFor(t, 15*time.Second, "2 s of sound", func() bool { return pub.count() >= 20 })
	cancel()
	r := wait(t, done, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum.Ended != live.EndStopped || r.sum.Restarts != 0 || r.sum.Gaps != 0 {
		t.Errorf("summary %+v", r.sum)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, r.sum)
	checkSound(t, ps, repeat(ref, 3), 0.9)
}

// TestRelaySourceDies: the radio dies mid-relay and stays dead: the relay
// tries for the retry window, then ends saying when the source stopped.
func TestRelaySourceDies(t *testing.T) {
	t.Parallel()
	ref := reference(t, clipWAV(t))
	rd := streamtest.NewRadio(t, "audio/mpeg", true, streamtest.Part{Data: fileBytes(t, mp3File(t)), Seconds: float64(len(ref)) / 48000})
	opts := relayOptions()
	opts.RetryWindow = time.Second
	_, pub, k, done := startRelay(t, context.Background(), rd.URL(), opts, "")
	waitFor(t, 15*time.Second, "2 s of sound", func() bool { return pub.count() >= 20 })
	rd.Kill()
	r := wait(t, done, 20*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum.Ended != live.EndSourceLost || r.sum.Restarts != 0 {
		t.Errorf("summary %+v", r.sum)
	}
	if !regexp.MustCompile(`^the source stopped at \d\d:\d\d:\d\d and did not come back within 1 s \(.*Connection refused\)$`).MatchString(r.sum.Reason) {
		t.Errorf("reason %q", r.sum.Reason)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, r.sum)
	checkSound(t, ps, repeat(ref, 3), 0.9)
}

// TestRelaySourceReturns: the radio dies and comes back within the
// window: ffmpeg starts again, the timeline goes on after a gap, the
// recording holds it all.
func TestRelaySourceReturns(t *testing.T) {
	t.Parallel()
	ref := reference(t, clipWAV(t))
	rd := streamtest.NewRadio(t, "audio/aac", true, streamtest.Part{Data: fileBytes(t, aacFile(t)), Seconds: float64(len(ref)) / 48000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := relayOptions()
	opts.RetryWindow = 10 * time.Second
	rec := filepath.Join(t.TempDir(), "relay.opus")
	s, pub, k, done := startRelay(t, ctx, rd.URL(), opts, rec)
	waitFor(t, 15*time.Second, "2 s of sound", func() bool { return pub.count() >= 20 })
	rd.Kill()
	// The radio is down longer than ffmpeg's own reconnecting lasts.
	time.Sleep(2500 * time.Millisecond)
	rd.Revive()
	waitFor(t, 15*time.Second, "a restart", func() bool { return s.Progress().Restarts > 0 })
	before := pub.count()
	waitFor(t, 15*time.Second, "1 s of sound after the restart", func() bool { return pub.count() >= before+10 })
	cancel()
	r := wait(t, done, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum.Ended != live.EndStopped || r.sum.Restarts != 1 || r.sum.Gaps != 1 {
		t.Errorf("summary %+v, want one restart and one gap", r.sum)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, r.sum)
	if n := len(segments(t, ps)); n != 2 {
		t.Errorf("%d stretches of sound, want 2", n)
	}
	checkSound(t, ps, repeat(ref, 4), 0.9)

	// The recording plays as long as the session, gap included.
	if r.sum.Recording != rec {
		t.Fatalf("recording %q: %v", r.sum.Recording, r.sum.RecordingError)
	}
	recorded := reference(t, rec, "-c:a", "libopus")
	if got, want := samplesDur(len(recorded)), r.sum.End.Sub(r.sum.Start); got > want || got < want-20*time.Millisecond {
		t.Errorf("recording of %v, the session played %v", got, want)
	}
}

// TestRelayCodecChange: the stream changes from MP3 to AAC mid-way.
// ffmpeg's MP3 decoder fails on it; the relay starts ffmpeg again, which
// finds AAC, and carries on: every stretch of sound is the programme's.
func TestRelayCodecChange(t *testing.T) {
	t.Parallel()
	ref := reference(t, clipWAV(t))
	seconds := float64(len(ref)) / 48000
	rd := streamtest.NewRadio(t, "audio/mpeg", false, streamtest.Part{Data: fileBytes(t, mp3File(t)), Seconds: seconds}, streamtest.Part{Data: fileBytes(t, aacFile(t)), Seconds: seconds})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := relayOptions()
	opts.RetryWindow = 5 * time.Second
	s, pub, k, done := startRelay(t, ctx, rd.URL(), opts, "")
	waitFor(t, 30*time.Second, "a restart", func() bool { return s.Progress().Restarts > 0 })
	before := pub.count()
	waitFor(t, 15*time.Second, "1.5 s of sound after the restart", func() bool { return pub.count() >= before+15 })
	cancel()
	r := wait(t, done, 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum.Restarts < 1 {
		t.Errorf("summary %+v, want a restart", r.sum)
	}
	ps := decodePackets(t, pub.all(), k)
	checkTimeline(t, ps, opts, r.sum)
	checkSound(t, ps, slices.Concat(ref, ref), 0.85)
}

// TestRelayBadSources: a source that never gives sound is a clear error,
// quickly, and nothing is published.
func TestRelayBadSources(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><html><head><title>Đài phát thanh</title></head><body><p>Nghe trực tuyến</p></body></html>\n"))
	})
	video := fixture(t, "video.ts", func(path string) {
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=2", "-c:v", "mpeg2video", "-f", "mpegts", path)
	})
	mux.HandleFunc("/video", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, video) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// A server that takes the connection and says nothing.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	for _, tc := range []struct {
		name, url string
		want      error
		says      string
		edit      func(*live.Options)
	}{
		{name: "closed port", url: "http://" + testnet.FreePort(t) + "/stream", want: live.ErrSourceUnreachable, says: "Connection refused"},
		{name: "404", url: srv.URL + "/nothing-here", want: live.ErrSourceUnreachable, says: "404 Not Found"},
		{name: "silent server", url: "http://" + silent.Addr().String() + "/stream", want: live.ErrSourceUnreachable, says: "timed out"},
		{name: "web page", url: srv.URL + "/page", want: live.ErrNotAStream, says: "Invalid data"},
		{name: "no sound track", url: srv.URL + "/video", want: live.ErrNotAStream, says: "no sound track"},
		{name: "file", url: "file:///etc/passwd", want: live.ErrBadURL},
		{name: "pipe", url: "pipe:0", want: live.ErrBadURL},
		{name: "ftp", url: "ftp://127.0.0.1/x.mp3", want: live.ErrBadURL},
		{name: "no host", url: "http:///x.mp3", want: live.ErrBadURL},
		{name: "option", url: "-i", want: live.ErrBadURL},
		{name: "concat", url: "concat:http://a|http://b", want: live.ErrBadURL},
		{name: "no ffmpeg", url: srv.URL + "/page", want: ingest.ErrNoFFmpeg, edit: func(o *live.Options) { o.FFmpeg = "no-such-ffmpeg" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := relayOptions()
			if tc.edit != nil {
				tc.edit(&opts)
			}
			rec := filepath.Join(t.TempDir(), "r.opus")
			start := time.Now()
			_, pub, _, done := startRelay(t, context.Background(), tc.url, opts, rec)
			r := wait(t, done, 10*time.Second)
			took := time.Since(start)
			if !errors.Is(r.err, tc.want) || !strings.Contains(errString(r.err), tc.says) {
				t.Errorf("err = %v, want %v saying %q", r.err, tc.want, tc.says)
			}
			if pub.count() > 0 {
				t.Errorf("%d packets published", pub.count())
			}
			if _, err := os.Stat(rec); err == nil {
				t.Error("a recording was left")
			}
			t.Logf("%v after %v", r.err, took.Round(time.Millisecond))
		})
	}
	if err := live.CheckURL("https://radio.example/live.m3u8"); err != nil {
		t.Errorf("CheckURL: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
