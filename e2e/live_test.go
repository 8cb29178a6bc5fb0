package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/pulsetest"
)

// sessionRow is a row of `loa report --sessions -o json`.
type sessionRow struct {
	ID        string `json:"id"`
	Rule      string `json:"rule"`
	Kind      string `json:"kind"`
	Source    string `json:"source"`
	StartedBy string `json:"started_by"`
	StartedAt string `json:"started_at"`
	EndedAt   string `json:"ended_at"`
	EndReason string `json:"end_reason"`
	Packets   int64  `json:"packets"`
}

// liveRow is a report row with what a box heard of a session.
type liveRow struct {
	reportRow
	HeardMS  int64 `json:"heard_ms"`
	MissedMS int64 `json:"missed_ms"`
}

func (c *commune) sessionRows(rule string) map[string]liveRow {
	var rows []liveRow
	c.cli.json(&rows, "report", "--announcement", rule)
	m := map[string]liveRow{}
	for _, r := range rows {
		m[r.Device] = r
	}
	return m
}

func (c *commune) sessions() []sessionRow {
	var rows []sessionRow
	c.cli.json(&rows, "report", "--sessions")
	return rows
}

// beeps writes n bursts of a 1 kHz tone, 300 ms each, one a second.
func beeps(t testing.TB, n int) string {
	path := filepath.Join(t.TempDir(), "beeps.wav")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("aevalsrc='if(lt(mod(t,1),0.3),0.5*sin(2*PI*1000*t),0)':d=%d:s=48000", n), "-ac", "1", path)
	return path
}

// bursts finds where each burst of x starts (frames), at least gap apart.
func bursts(x []float32, from int, quiet float64, gap int) []int {
	var out []int
	for i := from; i < len(x); i++ {
		if float64(x[i]) > quiet || float64(-x[i]) > quiet {
			out = append(out, i)
			i += gap
		}
	}
	return out
}

// TestLiveSpeech is the microphone of the commune office: a PulseAudio
// source (the monitor of the sink a known signal plays into, recorded on
// its own channel) is what `loa live` captures, and two real agents play
// through oto into the same recorder. The recording shows the signal on
// both boxes, and how late and how far apart they play it.
func TestLiveSpeech(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "paplay")
	pulse := pulsetest.StartBoxes(t, 3) // boxes 0 and 1; the mouth on 2
	c := newCommune(t, "", "")
	ids := []string{"box-0", "box-1"}
	for i, id := range ids {
		cfg := c.addBox(id, "thon-1")
		procEnv(t, pulse.BoxEnv(i), c.dir, id, "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, id, "cache"), "--output", "alsa")
	}
	c.waitOnline(ids...)
	eventually(t, 30*time.Second, "time sync on both boxes", func() bool {
		st := c.status()
		return st["box-0"].ClockOffsetMS != nil && st["box-1"].ClockOffsetMS != nil
	})

	speaker := c.startLive(t, pulse, "live")
	from := len(pulse.Channels(t)[2])
	pulse.Play(t, "box2", beeps(t, 4)) // "speaks" for 4 s
	time.Sleep(2 * time.Second)        // the play-out delay
	speaker.stop(t)
	rule := speaker.rule
	eventually(t, 20*time.Second, "both boxes to finish the session", func() bool {
		r := c.sessionRows(rule)
		return r["box-0"].Status == "played" && r["box-1"].Status == "played"
	})

	ch := pulse.Channels(t)
	const quiet, gap = 0.05, 48000 / 2
	mouth := bursts(ch[2], from, quiet, gap)
	if len(mouth) != 4 {
		t.Fatalf("the mouth's channel has %d bursts after frame %d, want 4", len(mouth), from)
	}
	heard := [][]int{bursts(ch[0], from, quiet, gap), bursts(ch[1], from, quiet, gap)}
	for i, h := range heard {
		if len(h) != 4 {
			t.Fatalf("box-%d played %d bursts (frames %v), want the 4 the microphone heard", i, len(h), h)
		}
		for k := range 3 { // the signal's own rhythm, unchanged
			if d := (h[k+1] - h[k]) - (mouth[k+1] - mouth[k]); d < -480 || d > 480 {
				t.Errorf("box-%d: bursts %d and %d are %d frames apart, the microphone's %d", i, k, k+1, h[k+1]-h[k], mouth[k+1]-mouth[k])
			}
		}
	}
	var latency []time.Duration
	var skews []time.Duration
	for k := range 4 {
		latency = append(latency, frames(heard[0][k]-mouth[k]), frames(heard[1][k]-mouth[k]))
		skews = append(skews, frames(heard[0][k]-heard[1][k]).Abs())
	}
	slices.Sort(latency)
	t.Logf("mouth-to-speaker latency %v (median %v); skew between the boxes %v", latency, latency[len(latency)/2], skews)
	if lo, hi := latency[0], latency[len(latency)-1]; lo < time.Second || hi > 3*time.Second {
		t.Errorf("latency %v..%v; want about the play-out delay (1.5 s) plus the capture's", lo, hi)
	}
	if s := slices.Max(skews); s > 10*time.Millisecond {
		t.Errorf("the boxes played %v apart; want within 10 ms", s)
	}
	rows := c.sessionRows(rule)
	for _, id := range ids {
		if r := rows[id]; r.HeardMS < 4000 {
			t.Errorf("%s heard %d ms of the session, want more than the 4 s spoken (row %+v)", id, r.HeardMS, r)
		}
	}
	sessions := c.sessions()
	if len(sessions) != 1 || sessions[0].Kind != "live" || sessions[0].Source != "box2.monitor" || sessions[0].EndedAt == "" {
		b, _ := json.Marshal(sessions)
		t.Errorf("sessions: %s", b)
	}
}

func frames(n int) time.Duration { return time.Duration(n) * time.Second / 48000 }

// speaker is a `loa live` running on the box2.monitor source of a
// pulsetest.Boxes, the office microphone.
type speaker struct {
	cmd  *exec.Cmd
	log  string
	rule string
}

// startLive starts `loa live` for thon-1 (boxes box-0 and box-1) and
// returns once both play the session.
func (c *commune) startLive(t testing.TB, pulse *pulsetest.Boxes, name string) *speaker {
	t.Helper()
	env := append(append(os.Environ(), c.cli.env...), "PULSE_SERVER="+pulse.PulseServer())
	s := &speaker{log: filepath.Join(c.dir, name+".log")}
	s.cmd = procEnv(t, env, c.dir, name, "loa", "live", "--group", "thon-1", "--source", "box2.monitor", "--yes", "--for", "90s")
	eventually(t, 20*time.Second, "the session on air", func() bool {
		b, _ := os.ReadFile(s.log)
		_, after, ok := strings.Cut(string(b), "(session ")
		s.rule, _, _ = strings.Cut(after, ")")
		return ok && s.rule != ""
	})
	eventually(t, 20*time.Second, "both boxes playing the session", func() bool {
		r := c.sessionRows(s.rule)
		return r["box-0"].Status == "playing" && r["box-1"].Status == "playing"
	})
	return s
}

// stop presses Ctrl-C and waits until the CLI says the session ended.
func (s *speaker) stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the session's end", func() bool {
		b, _ := os.ReadFile(s.log)
		return strings.Contains(string(b), "ended")
	})
}
