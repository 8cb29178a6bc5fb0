package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/streamtest"
)

// relaySession is what `loa relay -o json` answers.
type relaySession struct {
	ID      string   `json:"id"`
	Rule    string   `json:"rule"`
	Devices []string `json:"devices"`
}

// relayCommune is a controller with short relay windows and two boxes of
// thon-1 playing into WAV files.
func relayCommune(t *testing.T) (*commune, map[string]string) {
	c := newCommune(t, "", "live:\n  retry_window: 3s\n  io_timeout: 2s\n")
	played := map[string]string{}
	for _, id := range []string{"box-1", "box-2"} {
		played[id] = c.startBox(id, c.addBox(id, "thon-1"))
	}
	c.waitOnline("box-1", "box-2")
	return c, played
}

// programme is a few seconds of speech, the radio's programme, and its
// reference decode.
func programme(t *testing.T, dir string) (string, []float32) {
	wav := mediatest.Speech(t, filepath.Join(dir, "news.wav"),
		"Đài tiếng nói Việt Nam. Bản tin thời sự buổi sáng. Hôm nay trời nắng, nhiệt độ từ hai mươi đến ba mươi độ.")
	return wav, mediatest.PCM(t, wav, 1)
}

// station puts the programme on a looping test radio: mp3 or aac (ADTS).
func station(t *testing.T, dir, wav string, ref []float32, codec string) *streamtest.Radio {
	t.Helper()
	args, ctype := []string{"-c:a", "libmp3lame", "-b:a", "64k"}, "audio/mpeg"
	if codec == "aac" {
		args, ctype = []string{"-c:a", "aac", "-b:a", "64k", "-f", "adts"}, "audio/aac"
	}
	path := filepath.Join(dir, "news."+codec)
	mediatest.FFmpeg(t, append(append([]string{"-i", wav, "-ac", "1"}, args...), path)...)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return streamtest.NewRadio(t, ctype, true, streamtest.Part{Data: data, Seconds: float64(len(ref)) / 48000})
}

// waitSession waits until every box of the relay's rule has a final answer
// and returns the rows.
func (c *commune) waitSession(rule string, boxes ...string) map[string]liveRow {
	var rows map[string]liveRow
	eventually(c.t, 90*time.Second, "every box to finish "+rule, func() bool {
		rows = c.sessionRows(rule)
		for _, b := range boxes {
			if s := rows[b].Status; s != "played" && s != "failed" && s != "cancelled" && s != "expired" && s != "missed" {
				return false
			}
		}
		return true
	})
	return rows
}

// checkPlayed checks that what box played of item is the programme: its
// sound found in the (looped) reference with a high correlation.
func checkPlayed(t *testing.T, dir, item string, ref []float32) {
	t.Helper()
	pcm := readWAV(t, filepath.Join(dir, item+".wav"))
	mono := make([]float32, len(pcm)/2)
	for i := range mono {
		mono[i] = pcm[2*i]
	}
	first, last := -1, -1
	for i, v := range mono {
		if v > 0.01 || v < -0.01 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || last-first < 48000 {
		t.Fatalf("%s: %d s of sound, want the programme", item, (last-first)/48000)
	}
	// Second by second: where the radio loops, its encoder starts again
	// (a few ms of priming), which no single lag fits across.
	looped := append(append(append([]float32{}, ref...), ref...), ref...)
	var good, all int
	var corrs []string
	for at := first; at+48000 <= last; at += 48000 {
		_, corr := mediatest.BestMatch(looped, mono[at:at+48000])
		corrs = append(corrs, fmt.Sprintf("%.2f", corr))
		all++
		if corr >= 0.8 {
			good++
		}
	}
	t.Logf("%s: %.1f s of sound, correlation with the programme second by second %v", item, float64(last-first)/48000, corrs)
	if good < all-1 {
		t.Errorf("%s: only %d of %d seconds match the programme (correlation ≥ 0.8): %v", item, good, all, corrs)
	}
}

// TestRelayStreams relays an Icecast-like MP3 and AAC stream and an HLS
// playlist from loopback with the CLI; both boxes play the programme, and
// the report and the session list say how each relay ended.
func TestRelayStreams(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "espeak-ng")
	dir := t.TempDir()
	c, played := relayCommune(t)
	wav, ref := programme(t, dir)
	hlsDir := filepath.Join(dir, "hls")
	if err := os.MkdirAll(hlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mediatest.FFmpeg(t, "-i", wav, "-ac", "1", "-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(hlsDir, "seg%03d.ts"), filepath.Join(hlsDir, "news.m3u8"))
	hls := httptest.NewServer(http.FileServer(http.Dir(hlsDir)))
	defer hls.Close()

	// Each radio goes on air just before its relay: a test radio cuts MP3
	// mid-frame, which ffmpeg joins only early in the broadcast (see
	// streamtest.Radio), and a loaded machine may take seconds to get here.
	for _, tc := range []struct {
		name string
		url  func() string
	}{
		{"mp3", func() string { return station(t, dir, wav, ref, "mp3").URL() }},
		{"aac", func() string { return station(t, dir, wav, ref, "aac").URL() }},
		{"hls", func() string { return hls.URL + "/news.m3u8" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var x relaySession
			c.cli.json(&x, "relay", tc.url(), "--group", "thon-1", "--for", "6s")
			if len(x.Devices) != 2 || x.Rule == "" {
				t.Fatalf("relay answer %+v; want both boxes of thon-1", x)
			}
			rows := c.waitSession(x.Rule, "box-1", "box-2")
			for box, dir := range played {
				r := rows[box]
				if r.Status != "played" || r.HeardMS < 3000 {
					t.Fatalf("%s: %+v; want played, with seconds heard", box, r)
				}
				checkPlayed(t, dir, r.Item, ref)
			}
		})
	}
	ended := map[string]string{}
	for _, s := range c.sessions() {
		ended[s.Kind+" "+s.Source] = s.EndReason
	}
	if len(ended) != 3 {
		t.Errorf("sessions: %v, want the three relays", ended)
	}
	t.Logf("how they ended: %v", ended)
}

// TestRelaySourceDies: the station goes off air mid-relay and stays off; the
// controller tries for its retry window, then ends the relay, and the
// session list says so. The boxes played what there was and stop.
func TestRelaySourceDies(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "espeak-ng")
	dir := t.TempDir()
	c, _ := relayCommune(t)
	wav, ref := programme(t, dir)
	radio := station(t, dir, wav, ref, "mp3")
	var x relaySession
	c.cli.json(&x, "relay", radio.URL(), "--group", "thon-1", "--for", "60s")
	eventually(t, 30*time.Second, "both boxes playing the relay", func() bool {
		r := c.sessionRows(x.Rule)
		return r["box-1"].Status == "playing" && r["box-2"].Status == "playing"
	})
	time.Sleep(2 * time.Second)
	radio.Kill()
	var s sessionRow
	eventually(t, 30*time.Second, "the relay to end", func() bool {
		for _, r := range c.sessions() {
			if r.Rule == x.Rule && r.EndedAt != "" {
				s = r
				return true
			}
		}
		return false
	})
	if !strings.Contains(s.EndReason, "did not come back within 3 s") {
		t.Errorf("the relay ended: %q; want it to say the source stopped and did not come back", s.EndReason)
	}
	rows := c.waitSession(x.Rule, "box-1", "box-2")
	for box, r := range rows {
		if r.Status != "played" {
			t.Errorf("%s: %+v; want played up to where the source died", box, r)
		}
	}
}

// TestRelayAndLiveBadInput: what cannot be relayed or spoken gets one plain
// sentence and a non-zero exit, and nothing goes on air.
func TestRelayAndLiveBadInput(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	c, _ := relayCommune(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/radio.mp3"
	l.Close()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><html><head><title>Đài phát thanh</title></head><body><p>Nghe trực tuyến</p></body></html>"))
	}))
	defer page.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unreachable", []string{"relay", closed, "--all"}, "cannot reach the stream"},
		{"a web page", []string{"relay", page.URL + "/", "--all"}, "is not a sound stream"},
		{"not http", []string{"relay", "file:///etc/passwd", "--all"}, "must start with http:// or https://"},
		{"unknown village", []string{"relay", page.URL, "--group", "thon-9"}, "no group"},
		{"missing recording", []string{"live", "--file", "/nonexistent.wav", "--all", "--yes"}, "cannot capture sound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := c.cli.run(tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("loa %s: exit %d, stdout %q, stderr %q; want a non-zero exit saying %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 0 {
				t.Errorf("the error takes %d lines: %q", n+1, errOut)
			}
		})
	}
	if s := c.sessions(); len(s) != 0 {
		t.Errorf("sessions after bad input: %+v", s)
	}
}

// TestLiveSilentMicrophone: `loa live` warns when what it captures is
// silent (a microphone unplugged or muted), and the session still runs.
func TestLiveSilentMicrophone(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	c, _ := relayCommune(t)
	silence := filepath.Join(t.TempDir(), "silence.wav")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "anullsrc=sample_rate=48000:channel_layout=mono", "-t", "6", silence)
	out, errOut, code := c.cli.run("live", "--file", silence, "--group", "thon-1", "--yes")
	if code != 0 {
		t.Fatalf("loa live: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "the input is silent") {
		t.Errorf("no silence warning: stderr %q", errOut)
	}
	if !strings.Contains(out, "ended") {
		t.Errorf("stdout %q; want the session's end", out)
	}
}

// TestRelaySchedule: a schedule relays the station at every occurrence of
// its cron rule (every minute here, for 5 s): the boxes play it from its
// start, and each occurrence is a session of its own in the record.
func TestRelaySchedule(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "espeak-ng")
	dir := t.TempDir()
	c, played := relayCommune(t)
	wav, ref := programme(t, dir)
	// AAC: the relay joins the radio mid-broadcast (see streamtest.Radio).
	radio := station(t, dir, wav, ref, "aac")
	// The first occurrence must come after the controller had time to
	// open the stream (10 s ahead), as a 6:00 bulletin does; and the rule
	// must not be added during an occurrence's 5 s, which the controller
	// would put on air at once for the rest of its time.
	now := time.Now()
	switch sec := now.Sub(now.Truncate(time.Minute)); {
	case sec < 7*time.Second:
		time.Sleep(7*time.Second - sec)
	case sec > 45*time.Second:
		time.Sleep(time.Minute - sec + 7*time.Second)
	}
	var sched struct{ ID string }
	c.cli.json(&sched, "schedule", "add", "--cron", "* * * * *", "--relay", radio.URL(), "--for", "5s", "--group", "thon-1", "--name", "tin sáng")
	var item string
	// Every minute is an item in the plans: look for one both boxes played.
	rows := map[string]liveRow{}
	eventually(t, 100*time.Second, "an occurrence played on both boxes", func() bool {
		var all []liveRow
		c.cli.json(&all, "report", "--announcement", sched.ID, "--status", "played")
		byItem := map[string]map[string]liveRow{}
		for _, r := range all {
			if byItem[r.Item] == nil {
				byItem[r.Item] = map[string]liveRow{}
			}
			byItem[r.Item][r.Device] = r
			if len(byItem[r.Item]) == 2 {
				item, rows = r.Item, byItem[r.Item]
				return true
			}
		}
		return false
	})
	c.cli.ok("schedule", "rm", sched.ID)
	for box, dir := range played {
		if r := rows[box]; r.Item != item || r.HeardMS < 3000 {
			t.Errorf("%s: %+v; want the occurrence %s heard for most of its 5 s", box, rows[box], item)
			continue
		}
		checkPlayed(t, dir, item, ref)
	}
	var found bool
	for _, s := range c.sessions() {
		if s.ID == item {
			found = true
			if s.Kind != "relay" || !strings.HasPrefix(s.StartedBy, "schedule ") || s.EndedAt == "" {
				t.Errorf("the occurrence's record: %+v", s)
			}
		}
	}
	if !found {
		t.Errorf("no session record for the occurrence %s: %+v", item, c.sessions())
	}
}
