package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
	"github.com/loa-commune/loa/internal/pulsetest"
)

// procStats reads a process's resident memory (bytes) and CPU time used.
func procStats(b *testing.B, pid int) (rss int64, cpu time.Duration) {
	b.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb * 1024
		}
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return rss, time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// makeMP3 renders seconds of speech-like audio to an MP3 with sox and lame.
func makeMP3(b *testing.B, dir string, seconds int) string {
	b.Helper()
	wav, mp3 := filepath.Join(dir, "long.wav"), filepath.Join(dir, "long.mp3")
	for _, args := range [][]string{
		{"sox", "-n", "-r", "44100", "-c", "2", wav, "synth", strconv.Itoa(seconds), "sine", "300-3000", "tremolo", "4", "80"},
		{"lame", "--quiet", "-b", "128", wav, mp3},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Skipf("%s not available (%v): %s", args[0], err, out)
		}
	}
	return mp3
}

// BenchmarkAgentPlaying60s measures one real loa-agent while idle and while
// it plays a 60 s MP3: resident memory and the CPU it uses while playing,
// with the paced null sink and with the real oto/ALSA path into PulseAudio.
func BenchmarkAgentPlaying60s(b *testing.B) {
	b.Run("null", func(b *testing.B) { benchPlaying(b, "null", nil) })
	b.Run("alsa", func(b *testing.B) { benchPlaying(b, "alsa", pulsetest.Start(b).Env()) })
}

func benchPlaying(b *testing.B, output string, env []string) {
	for i := 0; i < b.N; i++ {
		c := newCommune(b, "", "")
		cfg := c.addBox("box", "thon-1")
		agent := procEnv(b, env, c.dir, "box", "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, "cache"), "--output", output)
		c.waitOnline("box")
		mp3 := makeMP3(b, c.dir, 60)
		var media struct{ ID string }
		c.cli.json(&media, "media", "add", mp3)
		time.Sleep(2 * time.Second) // settle after start-up
		idleRSS, _ := procStats(b, agent.Process.Pid)

		// Announce a minute ahead so the download and decode happen before
		// play time and are not counted as playing.
		var ann struct{ ID string }
		c.cli.json(&ann, "announce", "--media", media.ID, "--all", "--at", time.Now().Add(70*time.Second).Format("2006-01-02T15:04:05Z07:00"))
		var cpu0 time.Duration
		var t0 time.Time
		eventually(b, 3*time.Minute, "playing", func() bool {
			if c.report(ann.ID)["box"].Status == "playing" {
				_, cpu0 = procStats(b, agent.Process.Pid)
				t0 = time.Now()
				return true
			}
			return false
		})
		var peakRSS int64
		eventually(b, 3*time.Minute, "played", func() bool {
			rss, _ := procStats(b, agent.Process.Pid)
			peakRSS = max(peakRSS, rss)
			return c.report(ann.ID)["box"].Status == "played"
		})
		_, cpu1 := procStats(b, agent.Process.Pid)
		wall := time.Since(t0)
		b.ReportMetric(float64(idleRSS)/(1<<20), "MB-rss-idle")
		b.ReportMetric(float64(peakRSS)/(1<<20), "MB-rss-playing")
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall.Seconds(), "%cpu-playing")

	}
}

// BenchmarkAnnounceToPlaying measures the time from `loa announce` (now) to
// every one of 3 boxes reporting playing, as the demo runs them.
func BenchmarkAnnounceToPlaying(b *testing.B) {
	benchToPlaying(b, func(c *commune, media string) string {
		var ann struct{ ID string }
		c.cli.json(&ann, "announce", "--media", media, "--all")
		return ann.ID
	})
}

// BenchmarkEmergencyToPlaying is the same for `loa emergency --yes` (a
// siren and the message, repeated once), cancelled after each round.
func BenchmarkEmergencyToPlaying(b *testing.B) {
	benchToPlaying(b, func(c *commune, media string) string {
		var e struct{ ID string }
		c.cli.json(&e, "emergency", "--media", media, "--all", "--repeat", "1", "--yes")
		return e.ID
	})
}

func benchToPlaying(b *testing.B, send func(c *commune, media string) string) {
	c := newCommune(b, "", "")
	ids := []string{"box-1", "box-2", "box-3"}
	for _, id := range ids {
		cfg := c.addBox(id, "thon-1")
		proc(b, c.dir, id, "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, id, "cache"), "--output", "null")
	}
	c.waitOnline(ids...)
	var media struct{ ID string }
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sent := time.Now()
		ann := struct{ ID string }{send(c, media.ID)}
		var last time.Time
		eventually(b, time.Minute, "all playing", func() bool {
			rep := c.report(ann.ID)
			for _, id := range ids {
				r := rep[id]
				if r.StartedAt == "" {
					return false
				}
				st, err := time.Parse(time.RFC3339Nano, r.StartedAt)
				if err != nil {
					b.Fatal(err)
				}
				if st.After(last) {
					last = st
				}
			}
			return true
		})
		lat = append(lat, last.Sub(sent))
		eventually(b, time.Minute, "all done", func() bool {
			rep := c.report(ann.ID)
			for _, id := range ids {
				if !finalStatus(rep[id].Status) {
					return false
				}
			}
			return true
		})
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-to-all-playing-p50")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-to-all-playing-max")
}

func finalStatus(s string) bool {
	switch s {
	case "played", "failed", "missed", "expired", "cancelled":
		return true
	}
	return false
}

// BenchmarkAgentFetch30MinSpeech measures one real loa-agent while it
// downloads and decodes a 30-minute speech recording (uploaded as a phone's
// 128 kbit/s MP3, so the box gets the controller's Opus): its peak resident
// memory, the bytes it downloaded per minute of speech, and the time from
// the announcement to the item ready to play.
func BenchmarkAgentFetch30MinSpeech(b *testing.B) {
	needMediaTools(b)
	dir := b.TempDir()
	mp3 := filepath.Join(dir, "thirty.mp3")
	mediatest.FFmpeg(b, "-stream_loop", "-1", "-i", speechWAV(b, dir, "Thông báo của ủy ban nhân dân xã về lịch tiêm vắc xin cho trẻ em."),
		"-af", "apad=pad_dur=1", "-t", "1800", "-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", mp3)
	for i := 0; i < b.N; i++ {
		c := newCommune(b, "", "")
		cfg := c.addBox("box", "thon-1")
		cache := filepath.Join(c.dir, "cache")
		agent := proc(b, c.dir, "box", "loa-agent", "--config", cfg, "--cache", cache, "--output", "null")
		c.waitOnline("box")
		var media struct {
			ID         string
			DurationMS int64 `json:"duration_ms"`
			Play       struct{ Size int64 }
		}
		c.cli.json(&media, "media", "add", mp3)
		idleRSS, _ := procStats(b, agent.Process.Pid)
		var ann struct{ ID string }
		sent := time.Now()
		c.cli.json(&ann, "announce", "--media", media.ID, "--all", "--at", time.Now().Add(10*time.Minute).Format("2006-01-02T15:04:05Z07:00"))
		var peakRSS int64
		eventually(b, 5*time.Minute, "ready", func() bool {
			rss, _ := procStats(b, agent.Process.Pid)
			peakRSS = max(peakRSS, rss)
			return c.report(ann.ID)["box"].Status == "ready"
		})
		ready := time.Since(sent)
		b.ReportMetric(float64(idleRSS)/(1<<20), "MB-rss-idle")
		b.ReportMetric(float64(peakRSS)/(1<<20), "MB-rss-fetching")
		b.ReportMetric(float64(media.Play.Size)/1000/(float64(media.DurationMS)/60000), "kB-per-min")
		b.ReportMetric(ready.Seconds(), "s-to-ready")
	}
}
