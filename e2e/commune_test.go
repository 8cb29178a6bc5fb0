package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/ingest"
	"github.com/loa-commune/loa/internal/mediatest"
)

type statusRow struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Online   bool     `json:"online"`
	State    string   `json:"state"`
	Playing  *string  `json:"playing"`
	Volume   int      `json:"volume"`
	LastSeen string   `json:"last_seen"`
	// ClockOffsetMS is what the box's time sync measured; nil before.
	ClockOffsetMS *int64 `json:"clock_offset_ms"`
	Version       string `json:"version"`
}

type reportRow struct {
	Item         string `json:"item"`
	Announcement string `json:"announcement"`
	Device       string `json:"device"`
	Status       string `json:"status"`
	StartedAt    string `json:"started_at"`
	FinishedAt   string `json:"finished_at"`
	Reason       string `json:"reason"`
	Text         string `json:"text"`
}

// commune is a running controller, its boxes and a CLI pointed at it.
type commune struct {
	t      testing.TB
	dir    string
	cli    cli
	broker string // external broker URL, "" for the embedded one
	server string // the controller's HTTP address (API and console)
}

func newCommune(t testing.TB, broker string, extraConfig string) *commune {
	dir := t.TempDir()
	httpAddr, mqttAddr := freePort(t), freePort(t)
	cfg := filepath.Join(dir, "loa.yaml")
	if !strings.Contains(extraConfig, "site:") {
		extraConfig = "site: e2e\n" + extraConfig
	}
	if err := os.WriteFile(cfg, []byte(extraConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"loa", "serve", "--config", cfg, "--data", filepath.Join(dir, "data"), "--http", httpAddr, "--mqtt", mqttAddr}
	if broker != "" {
		args = append(args, "--broker", broker)
	}
	proc(t, dir, "controller", args...)
	server := "http://" + httpAddr
	waitHTTP(t, server)
	c := &commune{t: t, dir: dir, broker: broker, server: server, cli: cli{t: t, bin: filepath.Join(binDir, "loa"),
		env: []string{"LOA_SERVER=" + server, "LOA_DATA=" + filepath.Join(dir, "data"), "LOA_TOKEN="}}}
	return c
}

// addBox registers a box with the CLI and returns its agent config file.
func (c *commune) addBox(id, group string) string {
	cfg := filepath.Join(c.dir, id+".yaml")
	c.cli.ok("device", "add", id, "--group", group, "--write-config", cfg)
	return cfg
}

// startBox runs loa-agent from the config `device add` wrote, with a WAV sink.
func (c *commune) startBox(id, cfg string) string {
	played := filepath.Join(c.dir, id, "played")
	proc(c.t, c.dir, id, "loa-agent", "--config", cfg, "--cache", filepath.Join(c.dir, id, "cache"), "--output", "wav:"+played)
	return played
}

func (c *commune) status() map[string]statusRow {
	var rows []statusRow
	c.cli.json(&rows, "status")
	m := map[string]statusRow{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

func (c *commune) waitOnline(ids ...string) {
	eventually(c.t, 30*time.Second, "boxes "+strings.Join(ids, ",")+" online", func() bool {
		st := c.status()
		for _, id := range ids {
			if !st[id].Online {
				return false
			}
		}
		return true
	})
}

func (c *commune) report(announcement string) map[string]reportRow {
	var rows []reportRow
	c.cli.json(&rows, "report")
	m := map[string]reportRow{}
	for _, r := range rows {
		if r.Announcement == announcement {
			m[r.Device] = r
		}
	}
	return m
}

func TestAnnounceToOneVillageEmbeddedBroker(t *testing.T) {
	testAnnounceToOneVillage(t, "")
}

func TestAnnounceToOneVillageMosquitto(t *testing.T) {
	testAnnounceToOneVillage(t, startMosquitto(t, t.TempDir()))
}

func testAnnounceToOneVillage(t testing.TB, broker string) {
	c := newCommune(t, broker, "")
	cfg1, cfg2, cfg3 := c.addBox("box-1", "thon-1"), c.addBox("box-2", "thon-1"), c.addBox("box-3", "thon-2")
	if broker != "" {
		b, _ := os.ReadFile(cfg1)
		if !strings.Contains(string(b), "broker: "+broker) {
			t.Fatalf("agent config does not name the external broker %s:\n%s", broker, b)
		}
	}
	played := map[string]string{
		"box-1": c.startBox("box-1", cfg1), "box-2": c.startBox("box-2", cfg2), "box-3": c.startBox("box-3", cfg3),
	}
	c.waitOnline("box-1", "box-2", "box-3")

	var media struct {
		ID         string `json:"id"`
		Codec      string `json:"codec"`
		DurationMS int64  `json:"duration_ms"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	if len(media.ID) != 64 || media.Codec != "mp3" || media.DurationMS < 1900 || media.DurationMS > 2200 {
		t.Fatalf("media add: %+v", media)
	}
	var ann struct {
		ID      string   `json:"id"`
		Devices []string `json:"devices"`
	}
	c.cli.json(&ann, "announce", "--media", media.ID, "--group", "thon-1", "--wait", "--timeout", "60s")
	if strings.Join(ann.Devices, ",") != "box-1,box-2" {
		t.Fatalf("announcement targets %v, want box-1,box-2", ann.Devices)
	}

	rep := c.report(ann.ID)
	if len(rep) != 2 || rep["box-1"].Status != "played" || rep["box-2"].Status != "played" {
		t.Fatalf("report = %+v, want played on box-1 and box-2 only", rep)
	}
	for _, r := range rep {
		if r.StartedAt == "" || r.FinishedAt == "" || r.FinishedAt < r.StartedAt {
			t.Errorf("report row times: %+v", r)
		}
	}

	want := expectedPCM(t, "testdata/short.mp3", 80)
	for _, id := range []string{"box-1", "box-2"} {
		item := rep[id].Item
		got := readWAV(t, filepath.Join(played[id], item+".wav"))
		assertSamples(t, id, got, want)
	}
	if files, _ := filepath.Glob(filepath.Join(played["box-3"], "*.wav")); len(files) != 0 {
		t.Fatalf("box-3 in thon-2 played %v", files)
	}

	st := c.status()
	for _, id := range []string{"box-1", "box-2", "box-3"} {
		s := st[id]
		if !s.Online || s.State != "idle" || s.Playing != nil || s.Volume != 80 || s.LastSeen == "" {
			t.Errorf("status of %s = %+v", id, s)
		}
	}
}

// TestOfflineBoxCatchesUp: a box that was off when an announcement was made
// plays it on reconnect while it has not expired, and reports expired after.
func TestOfflineBoxCatchesUp(t *testing.T) {
	c := newCommune(t, "", "validity: 8s\n")
	cfgLate := c.addBox("late", "thon-1")
	cfgGone := c.addBox("gone", "thon-2")
	var media struct {
		ID string `json:"id"`
	}
	c.cli.json(&media, "media", "add", "testdata/short.mp3")
	var a1, a2 struct {
		ID string `json:"id"`
	}
	c.cli.json(&a1, "announce", "--media", media.ID, "--group", "thon-1")
	c.cli.json(&a2, "announce", "--media", media.ID, "--group", "thon-2")

	// "late" comes up within the 8 s window and plays; "gone" after it.
	played := c.startBox("late", cfgLate)
	eventually(t, 30*time.Second, "late box to play", func() bool { return c.report(a1.ID)["late"].Status == "played" })
	if files, _ := filepath.Glob(filepath.Join(played, "*.wav")); len(files) != 1 {
		t.Fatalf("late box wrote %v", files)
	}
	time.Sleep(time.Until(startOf(t, c, a2.ID).Add(9 * time.Second))) // let the second announcement expire
	goneDir := c.startBox("gone", cfgGone)
	eventually(t, 30*time.Second, "gone box to report expired", func() bool {
		s := c.report(a2.ID)["gone"].Status
		return s == "expired" || s == "missed"
	})
	if files, _ := filepath.Glob(filepath.Join(goneDir, "*.wav")); len(files) != 0 {
		t.Fatalf("expired item was played: %v", files)
	}
}

// startOf reads an announcement's start from its item id ("<id>-<unix>").
func startOf(t testing.TB, c *commune, id string) time.Time {
	t.Helper()
	for _, r := range c.report(id) {
		var sec int64
		if _, err := fmt.Sscan(r.Item[strings.LastIndexByte(r.Item, '-')+1:], &sec); err != nil {
			t.Fatalf("item id %q: %v", r.Item, err)
		}
		return time.Unix(sec, 0)
	}
	t.Fatalf("no report rows for %s", id)
	return time.Time{}
}

// expectedPCM is what a box must play: the controller's rendition of the
// media (made here with the controller's default ingest options: the same
// bytes), decoded by ffmpeg into the output format, times the gain of the
// volume. ffmpeg decodes with libopus in float, as the agent does, so the
// samples are the same; what is independent of Loa is everything around
// the codec: the Ogg pages, the pre-skip, the end trimming.
func expectedPCM(t testing.TB, path string, volume int) []float32 {
	return expectedPCMWith(t, ingest.DefaultOptions(), path, volume)
}

// expectedPCMWith is expectedPCM for a controller with other ingest options.
func expectedPCMWith(t testing.TB, o ingest.Options, path string, volume int) []float32 {
	t.Helper()
	mono := mediatest.PCM(t, renditionOf(t, o, path), 1, "-c:a", "libopus", "-request_sample_fmt", "flt")
	g := audio.VolumeGain(volume)
	out := make([]float32, 2*len(mono))
	for i, v := range mono {
		out[2*i], out[2*i+1] = v*g, v*g // mono repeats on both channels
	}
	return out
}

var renditions sync.Map // original path and bitrate → rendition path

// renditionOf renders the media at path as a controller with options o
// does, once per test binary.
func renditionOf(t testing.TB, o ingest.Options, path string) string {
	t.Helper()
	key := fmt.Sprint(path, o.BitrateKbps)
	if p, ok := renditions.Load(key); ok {
		return p.(string)
	}
	f, err := os.CreateTemp(binDir, "rendition-*.opus") // removed with binDir
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ingest.New(o).Render(context.Background(), path, f.Name()); err != nil {
		t.Fatalf("render %s: %v", path, err)
	}
	p, _ := renditions.LoadOrStore(key, f.Name())
	return p.(string)
}

func readWAV(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		dir, _ := os.ReadDir(filepath.Dir(path))
		var names []string
		for _, d := range dir {
			names = append(names, d.Name())
		}
		sort.Strings(names)
		t.Fatalf("open played file: %v (folder has %v)", err, names)
	}
	defer f.Close()
	format, samples, err := audio.ReadWAV(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if format != audio.DefaultFormat {
		t.Fatalf("%s is %+v, want %+v", path, format, audio.DefaultFormat)
	}
	return samples
}

func assertSamples(t testing.TB, who string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s played %d samples, want %d", who, len(got), len(want))
	}
	var maxDiff float64
	for i := range got {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
	}
	if maxDiff > 1e-4 {
		t.Fatalf("%s: samples differ from the media by up to %g", who, maxDiff)
	}
}
