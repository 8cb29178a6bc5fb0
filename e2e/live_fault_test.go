package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/streamtest"
	"github.com/loa-commune/loa/protocol"
)

// Live sessions under priorities, faults and forgery, with the real
// binaries. Each test's sound is a few seconds of a signal whose content
// says where in it a stretch comes from (a frequency sweep, or bursts of
// rising pitch), so the boxes' WAV files show what part of a session they
// played: a box that rejoins at the live point skips what went by, one
// that resumed would not.

// TestLiveRelayPreemptedByEmergency: a relay plays on two boxes; an
// emergency preempts it on each, plays whole, and the relay comes back at
// the live point (the programme it skipped is as long as the emergency)
// and, once stopped, ends played; the report shows both items played and
// the relay preempted once on each box.
func TestLiveRelayPreemptedByEmergency(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	const progSeconds = 40 // seconds, longer than the relay runs: no loop
	sweep := chirpWAV(t, progSeconds)
	mp3 := filepath.Join(t.TempDir(), "programme.mp3")
	mediatest.FFmpeg(t, "-i", sweep, "-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3", mp3)
	ref := mediatest.PCM(t, mp3, 1)
	data, err := os.ReadFile(mp3)
	if err != nil {
		t.Fatal(err)
	}

	c := newCommune(t, "", "")
	ids := []string{"box-1", "box-2"}
	played := map[string]string{}
	for _, id := range ids {
		played[id] = c.startBox(id, c.addBox(id, "thon-1"))
	}
	c.waitOnline(ids...)

	radio := streamtest.NewRadio(t, "audio/mpeg", false, streamtest.Part{Data: data, Seconds: progSeconds})
	var relay sessionRow
	c.cli.json(&relay, "relay", radio.URL(), "--all", "--for", "2m")
	if relay.Rule == "" || relay.ID == "" {
		t.Fatalf("relay: %+v", relay)
	}
	c.waitLiveRows(relay.Rule, 20*time.Second, ids, "playing")
	time.Sleep(2 * time.Second) // the programme plays a while

	var em struct {
		ID string `json:"id"`
	}
	c.cli.json(&em, "emergency", "--tone", "siren", "--repeat", "1", "--all", "--yes")
	emRows := c.waitLiveRows(em.ID, 40*time.Second, ids, "played", "failed", "cancelled")
	back := c.waitLiveRows(relay.Rule, 20*time.Second, ids, "playing") // at the live point again
	time.Sleep(2 * time.Second)
	c.cli.ok("relay", "stop", relay.Rule)
	rows := c.waitLiveRows(relay.Rule, 20*time.Second, ids, "played", "failed", "cancelled", "preempted", "missed")

	// The report says it in Vietnamese from the codes the boxes sent.
	vi := cli{t: t, bin: c.cli.bin, env: append(append([]string{}, c.cli.env...), "LOA_LANG=vi")}
	if table := vi.ok("report", "--announcement", relay.Rule); strings.Count(table, "giây không phát ra loa (bị ngắt hoặc đang khởi động lại)") != len(ids) {
		t.Errorf("LOA_LANG=vi loa report does not say, for each box, how long the relay was off its output:\n%s", table)
	}

	events := (&faultCommune{commune: c}).eventCounts(relay.Rule)
	for _, id := range ids {
		if r := emRows[id]; r.Status != "played" {
			t.Errorf("%s: the emergency is %s (%s), want played", id, r.Status, r.Reason)
		}
		r := rows[id]
		if r.Status != "played" || !strings.Contains(r.Reason, "not on the output") {
			t.Errorf("%s: the relay's row is %s (%q), want played, with the time it was off the output", id, r.Status, r.Reason)
		}
		if !strings.Contains(back[id].Reason, "after a preemption") {
			t.Errorf("%s: the relay came back saying %q, want it rejoining after a preemption", id, back[id].Reason)
		}
		if ev := events[id]; ev["preempted"] != 1 || ev["played"] != 1 || ev["playing"] != 2 {
			t.Errorf("%s: relay events %v, want playing, preempted, playing, played", id, ev)
		}

		// The emergency's sound: its alert tone, whole.
		alert := readWAV(t, filepath.Join(played[id], emRows[id].Item+".wav"))
		alertLen := frames(len(alert) / 2)
		if alertLen < 7*time.Second {
			t.Errorf("%s: the emergency played %v, want its whole alert tone (8 s)", id, alertLen)
		}
		// The relay before and after it: where in the programme each
		// file begins and ends.
		before := leftChannel(readWAV(t, filepath.Join(played[id], r.Item+".wav")))
		after := leftChannel(readWAV(t, filepath.Join(played[id], r.Item+"_2.wav")))
		from1, to1 := placeIn(t, id+" before the emergency", ref, before)
		from2, to2 := placeIn(t, id+" after the emergency", ref, after)
		skipped := frames(from2 - to1)
		t.Logf("%s: relay at %v..%v of the programme, then the emergency (%v), then %v..%v: skipped %v",
			id, frames(from1), frames(to1), alertLen, frames(from2), frames(to2), skipped)
		if skipped < alertLen || skipped > alertLen+4*time.Second {
			t.Errorf("%s: the relay came back %v further into the programme, want the live point: about the emergency's %v later", id, skipped, alertLen)
		}
		if d := frames(len(before)); d < time.Second {
			t.Errorf("%s: the relay played only %v before the emergency", id, d)
		}
		if d := frames(len(after)); d < time.Second {
			t.Errorf("%s: the relay played only %v after the emergency", id, d)
		}
	}
	var sessions []sessionRow
	for _, s := range c.sessions() {
		if s.Rule == relay.Rule {
			sessions = append(sessions, s)
		}
	}
	if len(sessions) != 1 || sessions[0].Kind != "relay" || sessions[0].EndedAt == "" || !strings.Contains(sessions[0].EndReason, "stopped") {
		t.Errorf("the relay's session: %+v, want one relay, ended when stopped", sessions)
	}
}

// TestLivePreemptsAnnouncement: a long file announced at normal priority
// plays; a live speech (priority) starts: the file is preempted, the speech
// plays whole, then the file plays again from its beginning (its
// on_preempt rule, restart).
func TestLivePreemptsAnnouncement(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	long := chirpWAV(t, 10)
	speech := risingBeeps(t, 4)
	c := newCommune(t, "", "")
	played := c.startBox("box-1", c.addBox("box-1", "thon-1"))
	c.waitOnline("box-1")

	var a struct {
		ID string `json:"id"`
	}
	c.cli.json(&a, "announce", "--file", long, "--all")
	c.waitLiveRows(a.ID, 20*time.Second, []string{"box-1"}, "playing")
	time.Sleep(time.Second)
	run := c.goLive("--all", "--file", speech)
	s := c.awaitSession("live")
	lr := c.waitLiveRows(s.Rule, 30*time.Second, []string{"box-1"}, "played", "failed", "missed", "cancelled")["box-1"]
	run.wait(t, 20*time.Second)
	ar := c.waitLiveRows(a.ID, 40*time.Second, []string{"box-1"}, "played", "failed", "missed", "cancelled", "expired")["box-1"]

	// The speech whole: the announcement made way for it a cue ahead.
	sess := c.sessionOf(s.Rule)
	length := mustTime(t, sess.EndedAt).Sub(mustTime(t, sess.StartedAt))
	if heard := time.Duration(lr.HeardMS) * time.Millisecond; lr.Status != "played" || heard < length-100*time.Millisecond || lr.MissedMS > 100 {
		t.Errorf("the live session's row: %s, heard %d ms, missed %d ms (%s); want played, the session's %v heard", lr.Status, lr.HeardMS, lr.MissedMS, lr.Reason, length)
	}
	if ar.Status != "played" {
		t.Errorf("the announcement's row: %s (%s), want played after the live session", ar.Status, ar.Reason)
	}
	ev := c.eventTimes(a.ID, "box-1")
	live := c.eventTimes(s.Rule, "box-1")
	t.Logf("announcement: %v; live session: %v", ev, live)
	if types := ev.types(); types != "playing preempted playing played" {
		t.Errorf("the announcement's answers: %s, want playing preempted playing played", types)
	} else {
		if d := live.first("playing").Sub(ev[1].at); d < 0 || d > 1500*time.Millisecond {
			t.Errorf("the announcement was preempted %v before the live session's start, want up to the cue (1 s) before", d)
		}
		if ev[2].at.Before(live.first("played").Add(-500 * time.Millisecond)) {
			t.Errorf("the announcement started again at %v, before the live session ended at %v", ev[2].at, live.first("played"))
		}
	}

	// The file: cut where the speech began, then whole again after it.
	want := expectedPCM(t, long, 80)
	first := readWAV(t, filepath.Join(played, ar.Item+".wav"))
	cutAt := len(first) - 2*48000*50/1000 // the last 50 ms hold the fade-out
	if cutAt < 48000 || len(first) >= len(want) {
		t.Errorf("before the speech the file played %v, want a part of its %v", frames(len(first)/2), frames(len(want)/2))
	} else if d := maxSampleDiff(first[:cutAt], want[:cutAt]); d > 1e-4 {
		t.Errorf("before the speech the file played something else (differs by %g)", d)
	}
	assertHeardOnce(t, "box-1's replay of the file", readWAV(t, filepath.Join(played, ar.Item+"_2.wav")), want)
	speechWAV := leftChannel(readWAV(t, filepath.Join(played, lr.Item+".wav")))
	if n := len(bursts(speechWAV, 0, 0.05, 24000)); n < 2 {
		t.Errorf("the live session's file has %d bursts, want the speech's (2 or 3)", n)
	}
}

// TestLiveJitteryLink: box-2 reaches the broker through a link that turns
// bad once the box has connected and set its clock: 300 ms of latency
// ± 300 ms of jitter each way and 16 kB/s downstream (four times the
// stream). box-1's link stays clean. Both play a live session: box-2
// misses little of it, and its sound is box-1's, each burst within 20 ms.
// (The link is clean while the box sets its clock: under this jitter the
// first estimates are off by about 100 ms and move by tens of
// milliseconds between bursts, and each move of 20 ms or more shifts a
// playing box's sound; that is the clock's test, not the stream's.)
func TestLiveJitteryLink(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	speech := risingBeeps(t, 9)
	fc := newFaultCommune(t, faultOptions{})
	clean := fc.addBox("box-1", "thon-1")
	jittery := &box{id: "box-2", cfg: fc.commune.addBox("box-2", "thon-1"),
		cache: filepath.Join(fc.dir, "box-2", "cache"), played: filepath.Join(fc.dir, "box-2", "played"),
		mqtt: newLink(t, "mqtt-box-2", fc.brokerTo)}
	bad := jittery.mqtt.shaky(shakyLink{latency: 300 * time.Millisecond, jitter: 300 * time.Millisecond, kBps: 16})
	fc.boxes[jittery.id] = jittery
	fc.start(jittery)
	ids := fc.ids()
	fc.waitOnline(ids...)
	eventually(t, 30*time.Second, "time sync on both boxes", func() bool {
		st := fc.status()
		return st["box-1"].ClockOffsetMS != nil && st["box-2"].ClockOffsetMS != nil
	})
	bad.on.Store(true)

	run := fc.goLive("--all", "--file", speech)
	s := fc.awaitSession("live")
	rows := fc.waitLiveRows(s.Rule, 40*time.Second, ids, "played", "failed", "missed", "cancelled")
	run.wait(t, 20*time.Second)
	t.Logf("the bad link carried %d chunks, held back %d of them, up to %v", bad.carried.Load(), bad.delayed.Load(), time.Duration(bad.most.Load()).Round(time.Millisecond))
	if bad.carried.Load() < 40 {
		t.Fatalf("the bad link carried only %d chunks: the session did not go through it", bad.carried.Load())
	}
	for _, id := range ids {
		r := rows[id]
		t.Logf("%s: %s, heard %d ms, missed %d ms (%s)", id, r.Status, r.HeardMS, r.MissedMS, r.Reason)
		if r.Status != "played" {
			t.Errorf("%s: %s (%s), want played", id, r.Status, r.Reason)
		}
	}
	if r := rows["box-2"]; r.HeardMS < 7000 || r.MissedMS > (r.HeardMS+r.MissedMS)/20 {
		t.Errorf("box-2 over the jittery link heard %d ms and missed %d ms; want at most 5%% missed of the 8 s", r.HeardMS, r.MissedMS)
	}
	a := leftChannel(readWAV(t, filepath.Join(clean.played, rows["box-1"].Item+".wav")))
	b := leftChannel(readWAV(t, filepath.Join(jittery.played, rows["box-2"].Item+".wav")))
	onsA, onsB := bursts(a, 0, 0.05, 24000), bursts(b, 0, 0.05, 24000)
	t.Logf("bursts at %v (box-1) and %v (box-2)", onsA, onsB)
	if len(onsA) < 7 || len(onsA) != len(onsB) {
		t.Fatalf("box-1 played %d bursts, box-2 %d; want the same 8", len(onsA), len(onsB))
	}
	// The first burst starts with the session: what the jittery link lost
	// there (box-2's missed time) shows as a later onset of that burst,
	// not as a drift. The bursts after it show whether the boxes agree.
	var worst time.Duration
	for k := 1; k < len(onsA); k++ {
		worst = max(worst, frames(onsB[k]-onsA[k]).Abs())
	}
	t.Logf("the boxes' bursts are at most %v apart", worst)
	if worst > 20*time.Millisecond {
		t.Errorf("box-2's bursts are up to %v off box-1's, want within 20 ms", worst)
	}
}

// TestLiveBoxKilled: a box is killed (-9) three seconds into a live
// session and started again: it rejoins at the live point, not where it
// was cut: its second file begins well after what its first had reached,
// on the session's 20 ms grid, sample for sample what the other box
// played there; its row ends played.
func TestLiveBoxKilled(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	speech := chirpWAV(t, 14)
	fc := newFaultCommune(t, faultOptions{})
	steady, killed := fc.addBox("box-1", "thon-1"), fc.addBox("box-2", "thon-1")
	ids := fc.ids()
	fc.waitOnline(ids...)

	run := fc.goLive("--all", "--file", speech)
	s := fc.awaitSession("live")
	fc.waitLiveRows(s.Rule, 20*time.Second, ids, "playing")
	origin := mustTime(t, fc.sessionOf(s.Rule).StartedAt)
	time.Sleep(time.Until(origin.Add(3 * time.Second)))
	killedAt := time.Now()
	killed.proc.kill9()
	fc.start(killed)
	rows := fc.waitLiveRows(s.Rule, 60*time.Second, ids, "played", "failed", "missed", "cancelled", "expired")
	run.wait(t, 20*time.Second)
	for _, id := range ids {
		r := rows[id]
		t.Logf("%s: %s, heard %d ms, missed %d ms (%s)", id, r.Status, r.HeardMS, r.MissedMS, r.Reason)
		if r.Status != "played" {
			t.Errorf("%s: %s (%s), want played", id, r.Status, r.Reason)
		}
	}
	item := rows["box-2"].Item
	if files := killed.playedFiles(item); len(files) != 1 || filepath.Base(files[0]) != item+"_2.wav" {
		t.Fatalf("box-2 wrote %v, want its play after the restart, %s_2.wav", files, item)
	}
	partial := killed.partialFiles(item)
	if len(partial) != 1 {
		t.Fatalf("box-2 left %v, want the one file it was writing when killed", partial)
	}
	ref := leftChannel(readWAV(t, filepath.Join(steady.played, item+".wav")))
	first := leftChannel(rawWAV(t, partial[0]))
	second := leftChannel(readWAV(t, filepath.Join(killed.played, item+"_2.wav")))

	// The first play began at the session's start, like box-1's.
	if len(first) < 48000 {
		t.Fatalf("box-2's first play holds %v, want the seconds before the kill", frames(len(first)))
	}
	if d := maxSampleDiff(first, ref[:min(len(ref), len(first))]); d > 1e-4 || len(first) > len(ref) {
		t.Errorf("box-2's first play is not box-1's from the start (differs by %g)", d)
	}
	// The second: at the live point. Its first packets went out before
	// the box subscribed again: it begins with silence (missed).
	fs := firstSound(second, 1)
	if fs >= len(second)-48000 {
		t.Fatalf("box-2's second play is silent (%v)", frames(len(second)))
	}
	lag, corr := mediatest.BestMatch(ref, second[fs:])
	rejoin := lag - fs
	killPos := killedAt.Sub(origin)
	t.Logf("box-2 played %v before the kill at %v; after the restart it rejoined at %v (%v after the kill), silent for its first %v, correlation %.4f",
		frames(len(first)), killPos.Round(time.Millisecond), frames(rejoin), frames(rejoin)-killPos, frames(fs), corr)
	if corr < 0.99 {
		t.Fatalf("box-2's second play is not the session's sound (correlation %.3f with box-1's)", corr)
	}
	if rejoin%(48000/50) != 0 {
		t.Errorf("box-2 rejoined at sample %d, not on the session's 20 ms grid", rejoin)
	}
	if rejoin < len(first) || frames(rejoin) < killPos+time.Second || frames(rejoin) > killPos+15*time.Second {
		t.Errorf("box-2 rejoined at %v of the session, killed at %v: want the live point, at least the cue's second after", frames(rejoin), killPos)
	}
	if rejoin+len(second) != len(ref) {
		t.Errorf("box-2's second play ends at %v, box-1's at %v", frames(rejoin+len(second)), frames(len(ref)))
	}
	settled := fs + 48000/5 // the decoder has settled
	if d := maxSampleDiff(second[settled:], ref[rejoin+settled:]); d > 0.02 {
		t.Errorf("box-2's second play differs from box-1's there by %g", d)
	}
	if missed := time.Duration(rows["box-2"].MissedMS) * time.Millisecond; (missed - frames(fs)).Abs() > 100*time.Millisecond {
		t.Errorf("box-2's row says %v missed; its second play begins with %v of silence", missed, frames(fs))
	}
}

// TestLiveBrokerRestart: the commune runs on mosquitto, killed (-9) three
// seconds into a live session and started again on the same port two
// seconds later. The boxes come back when their reconnect policy says (a
// random wait of up to 15 s, so that a fleet does not storm the broker),
// and the controller with them; once they are back the speaker stops. Each
// box's row is played, its missed time about its own outage (the play-out
// delay's 1.5 s of sound in hand covers as much of the outage as the
// delay does of the sound after it), its file silent for that long with
// the session's sound before and after.
func TestLiveBrokerRestart(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	speech := chirpWAV(t, 60) // ended by Ctrl-C once everyone is back
	m := newMosquitto(t, t.TempDir())
	fc := newFaultCommune(t, faultOptions{broker: m.url()})
	fc.addBox("box-1", "thon-1")
	fc.addBox("box-2", "thon-1")
	ids := fc.ids()
	fc.waitOnline(ids...)

	run := fc.goLive("--all", "--file", speech)
	s := fc.awaitSession("live")
	fc.waitLiveRows(s.Rule, 20*time.Second, ids, "playing")
	origin := mustTime(t, fc.sessionOf(s.Rule).StartedAt)
	time.Sleep(time.Until(origin.Add(3 * time.Second)))
	down := time.Now()
	m.proc.kill9()
	time.Sleep(2 * time.Second)
	m.start()
	back := map[string]time.Time{}
	eventually(t, 60*time.Second, "the boxes and the controller to reconnect", func() bool {
		for _, id := range ids {
			if at := reconnectedAt(fc.boxes[id].logs(), "connected to broker"); !at.IsZero() {
				back[id] = at
			}
		}
		if at := reconnectedAt([]string{fc.ctrl.logText()}, "connected to the MQTT broker"); !at.IsZero() {
			back["controller"] = at
		}
		return len(back) == len(ids)+1
	})
	time.Sleep(3 * time.Second) // the sound is back on every box
	if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	run.wait(t, 20*time.Second)
	rows := fc.waitLiveRows(s.Rule, 30*time.Second, ids, "played", "failed", "missed", "cancelled", "expired")
	length := mustTime(t, fc.sessionOf(s.Rule).EndedAt).Sub(origin)
	t.Logf("mosquitto down at %v of the %v session for 2 s; back: %v", down.Sub(origin).Round(time.Millisecond), length.Round(time.Millisecond), back)

	var files [][]float32
	for _, id := range ids {
		r := rows[id]
		missed := time.Duration(r.MissedMS) * time.Millisecond
		outage := back[id].Sub(down)
		if back["controller"].After(back[id]) {
			outage = back["controller"].Sub(down)
		}
		t.Logf("%s: %s, heard %d ms, missed %d ms (%s); its outage %v", id, r.Status, r.HeardMS, r.MissedMS, r.Reason, outage.Round(time.Millisecond))
		if r.Status != "played" {
			t.Errorf("%s: %s (%s), want played", id, r.Status, r.Reason)
			continue
		}
		if (missed - outage).Abs() > time.Second {
			t.Errorf("%s missed %v; want about its outage, %v", id, missed, outage)
		}
		if total := time.Duration(r.HeardMS+r.MissedMS) * time.Millisecond; (total - length).Abs() > 300*time.Millisecond {
			t.Errorf("%s heard and missed %v of a %v session", id, total, length)
		}
		pcm := leftChannel(readWAV(t, filepath.Join(fc.boxes[id].played, r.Item+".wav")))
		from, to := longestSilence(pcm)
		gap := frames(to - from)
		t.Logf("%s: silent from %v to %v of the session (%v)", id, frames(from), frames(to), gap)
		if (gap - missed).Abs() > 300*time.Millisecond {
			t.Errorf("%s: its file is silent for %v, its row says %v missed", id, gap, missed)
		}
		if frames(from) < 2*time.Second || frames(len(pcm)-to) < 2*time.Second {
			t.Errorf("%s: silent from %v to %v of the %v it played: want sound before and after the outage", id, frames(from), frames(to), frames(len(pcm)))
		}
		files = append(files, pcm)
	}
	if len(files) == 2 { // the rest of the session: the same on both
		if len(files[0]) != len(files[1]) {
			t.Fatalf("box-1 played %v, box-2 %v", frames(len(files[0])), frames(len(files[1])))
		}
		a, b := files[0][len(files[0])-48000:], files[1][len(files[1])-48000:]
		if d, corr := maxSampleDiff(a, b), mediatest.Correlation(a, b); d > 0.02 || corr < 0.999 {
			t.Errorf("the boxes' last second differs by up to %g (correlation %.4f)", d, corr)
		}
	}
}

// reconnectedAt is the time of the second line of logs saying what, as the
// process logged it; zero before it reconnected.
func reconnectedAt(logs []string, what string) time.Time {
	n := 0
	for _, l := range strings.Split(strings.Join(logs, "\n"), "\n") {
		if !strings.Contains(l, what) {
			continue
		}
		if n++; n < 2 {
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		at, _ := time.Parse(time.RFC3339Nano, f)
		return at
	}
	return time.Time{}
}

// TestLiveForgedStream is the attacker on an open broker who follows a
// session's stream and sends packets of his own for it, well formed and
// signed with his key, each for the stretch just after the controller's
// latest, so that they come first: a loud 2 kHz tone over the speaker's
// quiet 440 Hz. The boxes play only the speaker, and each reports the
// forgery, which the controller writes to its audit log.
func TestLiveForgedStream(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	dir := t.TempDir()
	speech := filepath.Join(dir, "speech.wav")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "aevalsrc='0.3*sin(2*PI*440*t)':d=7:s=48000", "-ac", "1", speech)
	loud := filepath.Join(dir, "loud.opus")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "aevalsrc='0.9*sin(2*PI*2000*t)':d=1:s=48000", "-ac", "1",
		"-c:a", "libopus", "-b:a", "24k", "-frame_duration", "20", loud)
	evil := opusFrames(t, loud)[10:15] // 100 ms of the tone, past the encoder's start

	broker := startMosquitto(t, t.TempDir())
	c := newCommune(t, broker, "")
	ids := []string{"box-1", "box-2"}
	played := map[string]string{}
	for _, id := range ids {
		played[id] = c.startBox(id, c.addBox(id, "thon-1"))
	}
	c.waitOnline(ids...)

	topics := protocol.NewTopics("e2e")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := protocol.NewSigner(key)
	own := protocol.Keyring{signer.KeyID(): signer.Public()}
	attacker := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("attacker"))
	if tok := attacker.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("attacker connect:", tok.Error())
	}
	defer attacker.Disconnect(100)
	var mu sync.Mutex
	var sent int
	var forgeErr error
	forge := func(_ paho.Client, m paho.Message) {
		p := m.Payload()
		if len(p) < 24 || string(p[:4]) != "LOAS" || p[5]&1 != 0 {
			return // not a packet with sound
		}
		if _, err := protocol.DecodeStreamPacket(p, m.Topic(), own); err == nil {
			return // one of his own, back from the broker
		}
		seq := binary.BigEndian.Uint64(p[8:])
		at := time.UnixMicro(int64(binary.BigEndian.Uint64(p[16:])))
		// The next-but-three stretch: it reaches the boxes before the
		// controller's packet for it.
		b, err := protocol.EncodeStreamPacket(m.Topic(), protocol.StreamPacket{Seq: seq + 500, At: at.Add(300 * time.Millisecond), Channels: 1, Frames: evil}, signer)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			forgeErr = err
			return
		}
		attacker.Publish(m.Topic(), 0, false, b)
		sent++
	}
	if tok := attacker.Subscribe(topics.AllStreams(), 0, forge); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("attacker subscribe:", tok.Error())
	}

	run := c.goLive("--all", "--file", speech)
	s := c.awaitSession("live")
	rows := c.waitLiveRows(s.Rule, 40*time.Second, ids, "played", "failed", "missed", "cancelled")
	run.wait(t, 20*time.Second)
	mu.Lock()
	n, ferr := sent, forgeErr
	mu.Unlock()
	if ferr != nil {
		t.Fatal("forging:", ferr)
	}
	t.Logf("the attacker sent %d packets of his own", n)
	if n < 30 {
		t.Fatalf("the attacker sent only %d packets; the test means him to cover the session", n)
	}
	for _, id := range ids {
		r := rows[id]
		if r.Status != "played" || r.HeardMS < 5000 {
			t.Errorf("%s: %s, heard %d ms (%s); want the speaker's 6 s played", id, r.Status, r.HeardMS, r.Reason)
		}
		pcm := leftChannel(readWAV(t, filepath.Join(played[id], r.Item+".wav")))
		const block = 48000 / 50
		speaking, worst := 0, 0.0
		for i := 0; i+block <= len(pcm); i += block {
			x := pcm[i : i+block]
			if toneLevel(x, 440) > 0.1 {
				speaking++
			}
			worst = max(worst, toneLevel(x, 2000))
		}
		t.Logf("%s: 440 Hz in %d of %d blocks of 20 ms; 2 kHz at most %.4f", id, speaking, len(pcm)/block, worst)
		if speaking < len(pcm)/block*9/10 {
			t.Errorf("%s: the speaker's tone is in %d of %d blocks of 20 ms", id, speaking, len(pcm)/block)
		}
		if worst > 0.01 {
			t.Errorf("%s played the forger's 2 kHz tone (level %.3f)", id, worst)
		}
	}
	eventually(t, 20*time.Second, "both boxes' rejections in the audit log", func() bool {
		seen := map[string]bool{}
		for _, e := range c.audit() {
			if e.Action == "box.rejected" && strings.Contains(e.Details, "/stream/") {
				seen[e.Actor] = true
			}
		}
		return seen["device:box-1"] && seen["device:box-2"]
	})
}

func init() {
	toxics.Register("loa_shaky", new(shakyToxic)) // before any proxy exists
}

// shakyLink is a weak uplink: each chunk is delayed by latency ± jitter
// after the link has carried the chunks before it at kBps.
type shakyLink struct {
	latency, jitter time.Duration
	kBps            int64
}

// shakes are the switches of the links' shaky toxics, by link.
var shakes sync.Map // name@addr → *shakySwitch

// shakySwitch turns a link's shaky toxics on, and counts what they held
// back.
type shakySwitch struct {
	on      atomic.Bool
	carried atomic.Int64 // chunks carried while on
	delayed atomic.Int64 // of them, chunks held back
	most    atomic.Int64 // the longest hold, ns
}

// shaky puts a shaky toxic on both directions of l (the rate downstream
// only), off; the link is as bad as s says while the switch returned is
// on. Toxics are not added to a link that carries traffic (see withGate).
func (l *link) shaky(s shakyLink) *shakySwitch {
	key := l.name + "@" + l.addr
	on := new(shakySwitch)
	shakes.Store(key, on)
	l.t.Cleanup(func() { shakes.Delete(key) })
	attrs := map[string]any{"switch": key, "latency_ms": s.latency.Milliseconds(), "jitter_ms": s.jitter.Milliseconds()}
	l.toxic("shaky-up", "loa_shaky", stream.Upstream, 1, attrs)
	attrs["kbps"] = s.kBps
	l.toxic("shaky-down", "loa_shaky", stream.Downstream, 1, attrs)
	return on
}

// shakyToxic delays data while its switch is on: by the time the link
// takes to carry it at KBps (0: no limit) behind what came before, plus
// LatencyMS ± JitterMS. Chunks leave in order, as on a TCP connection.
type shakyToxic struct {
	Switch    string `json:"switch"`
	LatencyMS int64  `json:"latency_ms"`
	JitterMS  int64  `json:"jitter_ms"`
	KBps      int64  `json:"kbps"`
}

func (s *shakyToxic) Pipe(stub *toxics.ToxicStub) {
	v, _ := shakes.Load(s.Switch)
	sw, _ := v.(*shakySwitch)
	var free time.Time // when the link has carried what it took so far
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if sw != nil && sw.on.Load() {
				sw.carried.Add(1)
				start := c.Timestamp
				if free.After(start) {
					start = free
				}
				free = start
				if s.KBps > 0 {
					free = start.Add(time.Duration(len(c.Data)) * time.Second / time.Duration(s.KBps*1000))
				}
				delay := s.LatencyMS
				if s.JitterMS > 0 {
					delay += mrand.Int64N(2*s.JitterMS+1) - s.JitterMS
				}
				if wait := time.Until(free.Add(time.Duration(delay) * time.Millisecond)); wait > 0 {
					sw.delayed.Add(1)
					if int64(wait) > sw.most.Load() {
						sw.most.Store(int64(wait))
					}
					select {
					case <-time.After(wait):
					case <-stub.Interrupt:
						stub.Output <- c // nothing is lost
						return
					}
				}
			}
			stub.Output <- c
		}
	}
}

// chirpWAV writes seconds of a sweep from 200 Hz rising 40 Hz a second
// (mono, 48 kHz): every stretch of it is found in one place only.
func chirpWAV(t testing.TB, seconds int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("chirp-%ds.wav", seconds))
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='0.5*sin(2*PI*(200*t+20*t*t))':d=%d:s=48000", seconds), "-ac", "1", path)
	return path
}

// risingBeeps writes n bursts of a tone, 300 ms each, one a second, each
// higher than the one before.
func risingBeeps(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("beeps-%d.wav", n))
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='if(lt(mod(t,1),0.3),0.5*sin(2*PI*(500*t+50*t*t)),0)':d=%d:s=48000", n), "-ac", "1", path)
	return path
}

// opusFrames are the Opus packets of an Ogg Opus file.
func opusFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := audio.NewOpusPackets(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(p))
	}
}

// liveRun is `loa live` running in the background, as at the office PC.
type liveRun struct {
	cmd            *exec.Cmd
	done           chan struct{}
	stdout, stderr bytes.Buffer
	err            error
}

// goLive starts `loa live --yes args...`; it is stopped (Ctrl-C) at the
// test's end if it still runs.
func (c *commune) goLive(args ...string) *liveRun {
	c.t.Helper()
	r := &liveRun{done: make(chan struct{})}
	r.cmd = exec.Command(c.cli.bin, append([]string{"live", "--yes"}, args...)...)
	r.cmd.Env = append(os.Environ(), c.cli.env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		c.t.Fatalf("loa live: %v", err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	c.t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for `loa live` to end on its own (its file is over) and
// checks that it succeeded.
func (r *liveRun) wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		t.Fatalf("loa live still runs after %v", timeout)
	}
	if r.err != nil {
		t.Fatalf("loa live: %v\nstdout: %s\nstderr: %s", r.err, r.stdout.String(), r.stderr.String())
	}
}

// awaitSession waits for the session of kind to be on air.
func (c *commune) awaitSession(kind string) sessionRow {
	c.t.Helper()
	var s sessionRow
	eventually(c.t, 30*time.Second, "a "+kind+" session on air", func() bool {
		for _, x := range c.sessions() {
			if x.Kind == kind {
				s = x
				return true
			}
		}
		return false
	})
	return s
}

// sessionOf is the record of the session of rule.
func (c *commune) sessionOf(rule string) sessionRow {
	c.t.Helper()
	for _, x := range c.sessions() {
		if x.Rule == rule {
			return x
		}
	}
	c.t.Fatalf("no session of rule %s", rule)
	return sessionRow{}
}

// waitLiveRows waits until the rows of rule for the boxes ids have one of the
// statuses given, and returns them.
func (c *commune) waitLiveRows(rule string, timeout time.Duration, ids []string, statuses ...string) map[string]liveRow {
	c.t.Helper()
	var rows map[string]liveRow
	eventually(c.t, timeout, fmt.Sprintf("%v to report %v for %s", ids, statuses, rule), func() bool {
		rows = c.sessionRows(rule)
		for _, id := range ids {
			ok := false
			for _, s := range statuses {
				ok = ok || rows[id].Status == s
			}
			if !ok {
				return false
			}
		}
		return true
	})
	return rows
}

// boxAnswer is one answer-back event a box sent, as the controller stored it.
type boxAnswer struct {
	typ string
	at  time.Time
}

type boxAnswers []boxAnswer

func (a boxAnswers) types() string {
	var s []string
	for _, x := range a {
		s = append(s, x.typ)
	}
	return strings.Join(s, " ")
}

// first is the time of the first answer of type typ.
func (a boxAnswers) first(typ string) time.Time {
	for _, x := range a {
		if x.typ == typ {
			return x.at
		}
	}
	return time.Time{}
}

// eventTimes reads from the controller's event log the answers device
// sent for rule's items, in the order of their times (received and ready
// left out).
func (c *commune) eventTimes(rule, device string) boxAnswers {
	c.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(c.dir, "data", "loa.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type, at FROM events WHERE announcement = ? AND device_id = ? AND type NOT IN ('received', 'ready') ORDER BY at, rowid`, rule, device)
	if err != nil {
		c.t.Fatalf("read the controller's events: %v", err)
	}
	defer rows.Close()
	var out boxAnswers
	for rows.Next() {
		var typ string
		var ms int64
		if err := rows.Scan(&typ, &ms); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, boxAnswer{typ, time.UnixMilli(ms)})
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (a boxAnswer) String() string { return a.typ + "@" + a.at.Format("15:04:05.000") }

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

// leftChannel is the first channel of interleaved stereo.
func leftChannel(stereo []float32) []float32 {
	out := make([]float32, len(stereo)/2)
	for i := range out {
		out[i] = stereo[2*i]
	}
	return out
}

// rawWAV reads the samples of a WAV file the sink never finished (a kill
// left it): its header says nothing of its length.
func rawWAV(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const header = 58 // the WAV sink's float header
	data := b[min(header, len(b)):]
	n := len(data) / 8 * 8 // whole stereo frames
	return audio.Floats(data[:n])
}

// placeIn finds where got sits in ref: the first and last sample of ref it
// plays. The first 100 ms of got (a fade-in) are left out of the match.
func placeIn(t testing.TB, who string, ref, got []float32) (from, to int) {
	t.Helper()
	skip := min(len(got)/4, 48000/10)
	lag, corr := mediatest.BestMatch(ref, got[skip:])
	if corr < 0.8 {
		t.Fatalf("%s: its sound is not the programme's (correlation %.3f)", who, corr)
	}
	from = lag - skip
	return from, from + len(got)
}

// maxSampleDiff is the largest difference of two runs of samples, over the
// shorter.
func maxSampleDiff(a, b []float32) float64 {
	var d float64
	for i := range min(len(a), len(b)) {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// longestSilence is the longest run of samples under -60 dBFS.
func longestSilence(x []float32) (from, to int) {
	start := -1
	for i := 0; i <= len(x); i++ {
		if i < len(x) && math.Abs(float64(x[i])) < 1e-3 {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > to-from {
			from, to = start, i
		}
		start = -1
	}
	return from, to
}

// toneLevel is the amplitude of the frequency hz in x (48 kHz), by
// Goertzel's algorithm.
func toneLevel(x []float32, hz float64) float64 {
	w := 2 * math.Pi * hz / 48000
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+coeff*s1-s2, s1
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return 2 * math.Sqrt(max(power, 0)) / float64(len(x))
}
