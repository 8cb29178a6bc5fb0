package e2e

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the controller's event log

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/ingest"
)

// Fault-injection tests: a real controller and real boxes whose links are
// degraded, cut and restored (Toxiproxy, toxi_test.go), and whose processes
// are killed (-9), frozen (SIGSTOP) and restarted. Each test builds its own
// commune on its own ports and folders and runs in parallel with the others.
// After each fault they check what a user would: every box that should play
// an item has one `played` row in `loa report`, the controller stored one
// `played` event for it (never two), the box's WAV output holds the item
// exactly once, and nothing is left unsent in its outbox.

// onTime is how far from an item's start its reported start may be and still
// count as on time. The boxes start on the sample; this only absorbs a loaded
// CI machine.
const onTime = 2 * time.Second

// process is a long-running binary the test may kill -9, freeze and start
// again. Its output goes to <dir>/<name>.log.
type process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startProcess(t testing.TB, dir, name string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, done: make(chan struct{}), log: filepath.Join(dir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	bin := args[0]
	if !strings.Contains(bin, "/") {
		if b := filepath.Join(binDir, bin); fileExists(b) {
			bin = b
		}
	}
	p.cmd = exec.Command(bin, args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	logf.Close()
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT) // a frozen process cannot stop
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop on SIGTERM within 10 s", name)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 6000))
		}
	})
	return p
}

// kill9 kills the process as a power cut would and waits until it is gone.
func (p *process) kill9() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop ends the process as systemd would (SIGTERM) and waits for it.
func (p *process) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s did not stop on SIGTERM within 10 s", p.name)
	}
}

func (p *process) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// logText is what the process wrote so far.
func (p *process) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// faultCommune is a controller and its boxes. Each box reaches the broker
// through its own link; all boxes fetch media through one shared link (the
// controller's public_server_url, which the device configs carry).
type faultCommune struct {
	*commune
	server   string   // the controller's HTTP URL, direct (for the CLI)
	serve    []string // the `loa serve` command line
	ctrl     *process
	ctrlRuns int
	brokerTo string // host:port the boxes' broker links lead to
	boxes    map[string]*box
}

type box struct {
	id     string
	cfg    string // the config `loa device add --write-config` wrote
	cache  string
	played string // the WAV output folder
	mqtt   *link
	proc   *process
	runs   int
}

type faultOptions struct {
	broker string      // an external broker URL; "" for the embedded one
	config string      // extra controller YAML
	media  func(*link) // toxics for the media link, added before anything connects
}

func newFaultCommune(t testing.TB, o faultOptions) *faultCommune {
	t.Helper()
	dir := t.TempDir()
	httpAddr, mqttAddr := freePort(t), freePort(t)
	media := newLink(t, "media", httpAddr)
	if o.media != nil {
		o.media(media)
	}
	cfg := filepath.Join(dir, "loa.yaml")
	// Boxes download the controller's Opus; at faultMedia's bitrate it is
	// as big as the test's MP3, so the slow links take as long to carry it.
	body := "site: e2e\npublic_server_url: http://" + media.addr + "\n" + faultMediaConfig + o.config
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	fc := &faultCommune{
		server: "http://" + httpAddr, boxes: map[string]*box{},
		serve: []string{"loa", "serve", "--config", cfg, "--data", filepath.Join(dir, "data"), "--http", httpAddr, "--mqtt", mqttAddr},
	}
	fc.brokerTo = mqttAddr
	if o.broker != "" {
		fc.serve = append(fc.serve, "--broker", o.broker)
		fc.brokerTo = strings.TrimPrefix(o.broker, "tcp://")
	}
	fc.commune = &commune{t: t, dir: dir, broker: o.broker, cli: cli{t: t, bin: filepath.Join(binDir, "loa"),
		env: []string{"LOA_SERVER=" + fc.server, "LOA_DATA=" + filepath.Join(dir, "data"), "LOA_TOKEN="}}}
	fc.startController()
	return fc
}

// startController starts `loa serve` (again: same ports, same data).
func (fc *faultCommune) startController() {
	fc.t.Helper()
	fc.ctrlRuns++
	name := "controller"
	if fc.ctrlRuns > 1 {
		name = fmt.Sprintf("controller.%d", fc.ctrlRuns)
	}
	fc.ctrl = startProcess(fc.t, fc.dir, name, fc.serve...)
	waitHTTP(fc.t, fc.server)
}

// addBox registers a box and starts its agent behind its own broker link.
func (fc *faultCommune) addBox(id, group string) *box {
	fc.t.Helper()
	b := &box{
		id: id, cfg: fc.commune.addBox(id, group),
		cache: filepath.Join(fc.dir, id, "cache"), played: filepath.Join(fc.dir, id, "played"),
		mqtt: newLink(fc.t, "mqtt-"+id, fc.brokerTo).withGate(),
	}
	fc.boxes[id] = b
	fc.start(b)
	return b
}

// start runs the box's agent (again: same cache, same output folder).
func (fc *faultCommune) start(b *box) {
	fc.t.Helper()
	b.runs++
	name := b.id
	if b.runs > 1 {
		name = fmt.Sprintf("%s.%d", b.id, b.runs)
	}
	b.proc = startProcess(fc.t, fc.dir, name, "loa-agent", "--config", b.cfg, "--broker", "tcp://"+b.mqtt.addr,
		"--cache", b.cache, "--output", "wav:"+b.played)
}

func (fc *faultCommune) ids() []string {
	var ids []string
	for id := range fc.boxes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// waitOnline waits longer than commune.waitOnline: a box whose link was cut
// reconnects with paho's backoff.
func (fc *faultCommune) waitOnline(ids ...string) {
	fc.t.Helper()
	eventually(fc.t, 90*time.Second, "boxes "+strings.Join(ids, ",")+" online", func() bool {
		st := fc.status()
		for _, id := range ids {
			if !st[id].Online {
				return false
			}
		}
		return true
	})
}

// addMedia uploads a file and returns its id (its SHA-256).
func (fc *faultCommune) addMedia(path string) string {
	id, _ := fc.addMediaPlay(path)
	return id
}

// addMediaPlay uploads a file and returns its id and the id of the file
// boxes download (the controller's Opus).
func (fc *faultCommune) addMediaPlay(path string) (id, play string) {
	fc.t.Helper()
	var m struct {
		ID   string `json:"id"`
		Play struct {
			ID string `json:"id"`
		} `json:"play"`
	}
	fc.cli.json(&m, "media", "add", path)
	return m.ID, m.Play.ID
}

// faultMedia are the ingest options of fault communes: Opus at 96 kbit/s,
// as big as the MP3s the slow-link tests send (faultMediaConfig).
var faultMedia = func() ingest.Options {
	o := ingest.DefaultOptions()
	o.BitrateKbps = 96
	return o
}()

const faultMediaConfig = "media:\n  bitrate_kbps: 96\n"

// expectedFaultPCM is expectedPCM for a fault commune.
func expectedFaultPCM(t testing.TB, path string, volume int) []float32 {
	return expectedPCMWith(t, faultMedia, path, volume)
}

// announceAt announces media to every box, to start at start (whole
// seconds), and returns the announcement id and its start.
func (fc *faultCommune) announceAt(media string, start time.Time) (string, time.Time) {
	fc.t.Helper()
	var a struct {
		ID    string    `json:"id"`
		Start time.Time `json:"start"`
	}
	fc.cli.json(&a, "announce", "--media", media, "--all", "--at", start.Format(time.RFC3339))
	if a.ID == "" || a.Start.IsZero() {
		fc.t.Fatalf("announce: %+v", a)
	}
	return a.ID, a.Start
}

// waitStatus waits until each box's report row for ann has one of the
// statuses given.
func (fc *faultCommune) waitStatus(ann string, timeout time.Duration, ids []string, statuses ...string) map[string]reportRow {
	fc.t.Helper()
	var rep map[string]reportRow
	eventually(fc.t, timeout, fmt.Sprintf("%v to report %v for %s", ids, statuses, ann), func() bool {
		rep = fc.report(ann)
		for _, id := range ids {
			if !slices.Contains(statuses, rep[id].Status) {
				return false
			}
		}
		return true
	})
	return rep
}

// eventCounts reads from the controller's event log how many events of each
// type every box sent for the announcement's items: box → type → count.
func (fc *faultCommune) eventCounts(ann string) map[string]map[string]int {
	fc.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(fc.dir, "data", "loa.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		fc.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT device_id, type, COUNT(*) FROM events WHERE announcement = ? GROUP BY device_id, type`, ann)
	if err != nil {
		fc.t.Fatalf("read the controller's events: %v", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var dev, typ string
		var n int
		if err := rows.Scan(&dev, &typ, &n); err != nil {
			fc.t.Fatal(err)
		}
		if out[dev] == nil {
			out[dev] = map[string]int{}
		}
		out[dev][typ] = n
	}
	if err := rows.Err(); err != nil {
		fc.t.Fatal(err)
	}
	return out
}

// outboxLen is how many events a box keeps on disk, not yet confirmed by
// the broker.
func (b *box) outboxLen() int {
	files, _ := filepath.Glob(filepath.Join(b.cache, "outbox", "*.ev"))
	return len(files)
}

// playedFiles lists the whole WAV files the box wrote for item: item.wav,
// then item_2.wav after a restart or preemption.
func (b *box) playedFiles(item string) []string {
	var out []string
	des, _ := os.ReadDir(b.played)
	for _, de := range des {
		n := de.Name()
		if !strings.HasSuffix(n, ".wav") || strings.HasPrefix(n, ".") {
			continue
		}
		stem := strings.TrimSuffix(n, ".wav")
		if stem == item || (strings.HasPrefix(stem, item+"_") && isDigits(stem[len(item)+1:])) {
			out = append(out, filepath.Join(b.played, n))
		}
	}
	sort.Strings(out)
	return out
}

// partialFiles lists the WAV files the sink had not finished (a kill
// leaves them): hidden temporary files.
func (b *box) partialFiles(item string) []string {
	files, _ := filepath.Glob(filepath.Join(b.played, "."+item+".wav.*.tmp"))
	return files
}

func isDigits(s string) bool {
	_, err := strconv.Atoi(s)
	return s != "" && err == nil
}

// assertPlayedOnce checks that every box in ids played the announcement
// exactly once: one report row per box, played, started on time (unless
// late is listed); one played event per box in the controller's log; one
// whole WAV file per box that holds the media once; and an empty outbox.
// It returns the report rows.
func (fc *faultCommune) assertPlayedOnce(ann, mediaPath string, start time.Time, late []string, ids ...string) map[string]reportRow {
	fc.t.Helper()
	t := fc.t
	rep := fc.waitStatus(ann, 90*time.Second, ids, "played", "failed", "missed", "expired", "cancelled")
	var rows []reportRow
	fc.cli.json(&rows, "report")
	perBox := map[string]int{}
	for _, r := range rows {
		if r.Announcement == ann {
			perBox[r.Device]++
		}
	}
	want := expectedFaultPCM(t, mediaPath, 80)
	events := fc.eventCounts(ann)
	for _, id := range ids {
		r := rep[id]
		if r.Status != "played" || perBox[id] != 1 {
			t.Errorf("%s: report has %d row(s), status %q (%s); want one row, played", id, perBox[id], r.Status, r.Reason)
			continue
		}
		if !slices.Contains(late, id) {
			started, err := time.Parse(time.RFC3339Nano, r.StartedAt)
			if err != nil {
				t.Errorf("%s: started_at %q: %v", id, r.StartedAt, err)
			} else if d := started.Sub(start); d < -onTime || d > onTime {
				t.Errorf("%s started at %s, %v from its start %s", id, r.StartedAt, d, start.Format(time.RFC3339))
			}
		}
		if n := events[id]["played"]; n != 1 {
			t.Errorf("%s: the controller stored %d played events for %s, want 1 (events: %v)", id, n, r.Item, events[id])
		}
		b := fc.boxes[id]
		files := b.playedFiles(r.Item)
		if len(files) != 1 {
			t.Errorf("%s wrote %v for %s, want one whole file", id, files, r.Item)
			continue
		}
		assertHeardOnce(t, id+" "+filepath.Base(files[0]), readWAV(t, files[0]), want)
	}
	for _, id := range ids {
		b := fc.boxes[id]
		eventually(t, 60*time.Second, id+"'s outbox to empty", func() bool { return b.outboxLen() == 0 })
	}
	return rep
}

// assertHeardOnce checks that got is want once, after any silence the sink
// put before the start.
func assertHeardOnce(t testing.TB, who string, got, want []float32) {
	t.Helper()
	ch := audio.DefaultFormat.Channels
	lead := firstSound(got, ch) - firstSound(want, ch)
	if lead < 0 {
		t.Errorf("%s: the sound starts before the media's first sound", who)
		return
	}
	got = got[lead:]
	if len(got) != len(want) {
		t.Errorf("%s: %d samples after %d of silence, want %d (the media once)", who, len(got), lead, len(want))
		return
	}
	var maxDiff float64
	for i := range got {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
	}
	if maxDiff > 1e-4 {
		t.Errorf("%s: samples differ from the media by up to %g", who, maxDiff)
	}
}

// firstSound is the index of the first frame that is not silent.
func firstSound(s []float32, channels int) int {
	for i, v := range s {
		if math.Abs(float64(v)) > 1e-6 {
			return i - i%channels
		}
	}
	return len(s)
}

// assertCacheSound checks a box's media cache after a crash: the media file
// is there with the right SHA-256, its decoded PCM is whole, and no partial
// download or decode is left.
func (b *box) assertCacheSound(t testing.TB, sha, mediaPath string) {
	t.Helper()
	f, err := os.Open(filepath.Join(b.cache, "media", sha))
	if err != nil {
		t.Errorf("%s: cached media: %v", b.id, err)
		return
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil || hex.EncodeToString(h.Sum(nil)) != sha {
		t.Errorf("%s: cached media has sha256 %x (%v), want %s", b.id, h.Sum(nil), err, sha)
	}
	want := int64(len(expectedFaultPCM(t, mediaPath, 80)) * 4) // float32 samples
	if pcm, err := os.Stat(filepath.Join(b.cache, "pcm", sha+".f32")); err != nil {
		t.Errorf("%s: decoded PCM: %v", b.id, err)
	} else if pcm.Size() != want {
		t.Errorf("%s: decoded PCM has %d bytes, want %d", b.id, pcm.Size(), want)
	}
	for _, pattern := range []string{"media/*.part", "media/*.tmp", "pcm/*.tmp"} {
		if left, _ := filepath.Glob(filepath.Join(b.cache, pattern)); len(left) > 0 {
			t.Errorf("%s: cache still holds %v", b.id, left)
		}
	}
}

// itemOf is the item id of an announcement starting at start.
func itemOf(ann string, start time.Time) string {
	return ann + "-" + strconv.FormatInt(start.Unix(), 10)
}

// sleepUntil waits for a moment of the scenario that is set by the test
// itself (when to inject a fault), not for the system under test.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// makeTestMP3 renders seconds of a speech-like sweep to an MP3 at kbps
// with sox and lame (scripts/deps.sh installs both for the tests).
func makeTestMP3(t testing.TB, dir string, seconds, kbps int) string {
	t.Helper()
	base := filepath.Join(dir, fmt.Sprintf("sweep-%ds-%dk", seconds, kbps))
	for _, args := range [][]string{
		{"sox", "-n", "-r", "44100", "-c", "2", base + ".wav", "synth", strconv.Itoa(seconds), "sine", "300-3000", "tremolo", "4", "80"},
		{"lame", "--quiet", "--cbr", "-b", strconv.Itoa(kbps), base + ".wav", base + ".mp3"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s failed (%v): %s", args[0], err, out)
			}
			t.Skipf("%s not available (%v): %s", args[0], err, out)
		}
	}
	return base + ".mp3"
}

// mosquittoProcess is Debian's mosquitto on a fixed loopback port, which
// the test may kill -9 and start again on the same port.
type mosquittoProcess struct {
	t    testing.TB
	dir  string
	bin  string
	conf string
	addr string
	proc *process
	runs int
}

func newMosquitto(t testing.TB, dir string) *mosquittoProcess {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if !fileExists(bin) {
			if os.Getenv("CI") != "" {
				t.Fatal("mosquitto is not installed: apt-get install mosquitto")
			}
			t.Skip("mosquitto is not installed: apt-get install mosquitto")
		}
	}
	m := &mosquittoProcess{t: t, dir: dir, bin: bin, addr: freePort(t), conf: filepath.Join(dir, "mosquitto.conf")}
	_, port, _ := net.SplitHostPort(m.addr)
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if os.Getuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(m.conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start()
	return m
}

func (m *mosquittoProcess) url() string { return "tcp://" + m.addr }

func (m *mosquittoProcess) start() {
	m.t.Helper()
	m.runs++
	m.proc = startProcess(m.t, m.dir, fmt.Sprintf("mosquitto.%d", m.runs), m.bin, "-c", m.conf)
	eventually(m.t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// connects counts the agent's connections to the broker so far.
func (b *box) connects() int {
	n := 0
	for _, p := range b.logs() {
		n += strings.Count(p, "connected to broker")
	}
	return n
}

// logs are the logs of every run of the box's agent.
func (b *box) logs() []string {
	var out []string
	for i := 1; i <= b.runs; i++ {
		name := b.id
		if i > 1 {
			name = fmt.Sprintf("%s.%d", b.id, i)
		}
		data, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(b.cache)), name+".log"))
		out = append(out, string(data))
	}
	return out
}

// TestFaultBrokerLinkCut (b): one box's link to the broker is cut after it
// got its plan and media, and restored after the item's start. The box
// plays on time from its stored plan while offline, keeps the answers in
// its outbox, and sends them once the link is back; the report has each
// play once. Run with the embedded broker and with mosquitto.
func TestFaultBrokerLinkCut(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			o := faultOptions{}
			if broker == "mosquitto" {
				o.broker = newMosquitto(t, t.TempDir()).url()
			}
			fc := newFaultCommune(t, o)
			cut := fc.addBox("box-1", "thon-1")
			fc.addBox("box-2", "thon-1")
			fc.waitOnline("box-1", "box-2")
			media := fc.addMedia("testdata/short.mp3")
			ann, start := fc.announceAt(media, time.Now().Add(10*time.Second))
			fc.waitStatus(ann, 30*time.Second, []string{"box-1", "box-2"}, "ready")

			cut.mqtt.cut()
			eventually(t, 30*time.Second, "the controller to see box-1 offline", func() bool { return !fc.status()["box-1"].Online })
			item := itemOf(ann, start)
			eventually(t, 30*time.Second, "box-1 to play offline", func() bool { return len(cut.playedFiles(item)) == 1 })
			fc.waitStatus(ann, 30*time.Second, []string{"box-2"}, "played")
			if s := fc.report(ann)["box-1"].Status; s == "played" || s == "playing" {
				t.Fatalf("box-1's answer %q reached the controller over a cut link", s)
			}
			if cut.outboxLen() == 0 {
				t.Fatal("box-1 played offline but keeps no answer in its outbox")
			}

			cut.mqtt.restore()
			fc.assertPlayedOnce(ann, "testdata/short.mp3", start, nil, "box-1", "box-2")
			if n := cut.connects(); n < 2 {
				t.Errorf("box-1 connected %d time(s), want a reconnect after the cut", n)
			}
		})
	}
}

// TestFaultBrokerLinkSilent (b, silent): the link goes dead without a
// word (no FIN, no RST: a NAT that dropped the mapping, a cell that lost
// the box) after the box got its plan and media for three items. Neither
// side learns of it until MQTT keep-alive (30 s) runs out; meanwhile the
// box plays the items on time and its answers go into the dead connection.
// Once the link carries data again the box reconnects and paho sends again
// what the broker never confirmed, in no particular order: the report must
// still have each play once, with its start.
func TestFaultBrokerLinkSilent(t *testing.T) {
	t.Parallel()
	fc := newFaultCommune(t, faultOptions{})
	dead := fc.addBox("box-1", "thon-1")
	fc.addBox("box-2", "thon-1")
	fc.waitOnline("box-1", "box-2")
	media := fc.addMedia("testdata/short.mp3")
	first := time.Now().Add(10 * time.Second)
	var anns []string
	var starts []time.Time
	for i := range 3 { // 2.1 s each, 3 s apart
		ann, start := fc.announceAt(media, first.Add(time.Duration(3*i)*time.Second))
		anns, starts = append(anns, ann), append(starts, start)
	}
	for _, ann := range anns {
		fc.waitStatus(ann, 30*time.Second, []string{"box-1", "box-2"}, "ready")
	}

	dead.mqtt.silence()
	for i, ann := range anns {
		item := itemOf(ann, starts[i])
		eventually(t, 30*time.Second, "box-1 to play "+item+" over a dead link", func() bool { return len(dead.playedFiles(item)) == 1 })
		fc.waitStatus(ann, 30*time.Second, []string{"box-2"}, "played")
	}
	// The broker gives up on the box after 1.5 keep-alives and publishes
	// its will; the box notices a missing ping answer by itself.
	eventually(t, 90*time.Second, "the controller to see box-1 offline", func() bool { return !fc.status()["box-1"].Online })
	eventually(t, 90*time.Second, "box-1 to notice the dead link", func() bool {
		return strings.Contains(strings.Join(dead.logs(), ""), "lost broker connection")
	})
	for _, ann := range anns {
		if s := fc.report(ann)["box-1"].Status; s == "played" || s == "playing" {
			t.Fatalf("box-1's answer %q crossed a dead link", s)
		}
	}

	dead.mqtt.unsilence()
	for i, ann := range anns {
		fc.assertPlayedOnce(ann, "testdata/short.mp3", starts[i], nil, "box-1", "box-2")
	}
	if t.Failed() {
		t.Logf("box-1's events in the order the controller received them: %s", fc.eventLog("box-1"))
	}
	fc.waitOnline("box-1")
}

// eventLog lists a box's events as the controller received them.
func (fc *faultCommune) eventLog(device string) string {
	fc.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(fc.dir, "data", "loa.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		fc.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT item, type FROM events WHERE device_id = ? ORDER BY received_at, rowid`, device)
	if err != nil {
		fc.t.Fatalf("read the controller's events: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var item, typ string
		if err := rows.Scan(&item, &typ); err != nil {
			fc.t.Fatal(err)
		}
		out = append(out, item+" "+typ)
	}
	return strings.Join(out, "; ")
}

// TestFaultAgentKilled (c): kill -9 of a box mid-download and of another
// mid-playback, each started again on the same cache. The design: a partial
// download stays and is resumed with Range, and the media is checked against
// its SHA-256 before use; an item interrupted by a restart plays again from
// its start while its window is open (item_2.wav), and what was heard
// before the crash is a prefix of it.
func TestFaultAgentKilled(t *testing.T) {
	t.Parallel()
	var flaky flakyMedia
	fc := newFaultCommune(t, faultOptions{media: func(l *link) { flaky = makeFlaky(l, flakyLink{latency: 100 * time.Millisecond, kBps: 16}) }})
	mp3 := makeTestMP3(t, t.TempDir(), 8, 96) // 96 kB: 6 s over the 16 kB/s link
	playing, fetching := fc.addBox("box-1", "thon-1"), fc.addBox("box-2", "thon-1")
	fc.waitOnline("box-1", "box-2")
	id, sha := fc.addMediaPlay(mp3)
	ann, start := fc.announceAt(id, time.Now().Add(25*time.Second))
	item := itemOf(ann, start)

	// box-2 dies with part of the media on disk.
	part := filepath.Join(fetching.cache, "media", sha+".part")
	eventually(t, 30*time.Second, "box-2 to have part of the media", func() bool {
		fi, err := os.Stat(part)
		return err == nil && fi.Size() >= 24<<10
	})
	fetching.proc.kill9()
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatalf("the partial download did not survive the kill: %v", err)
	}
	had := fi.Size()
	fc.start(fetching)

	// box-1 dies two seconds into the item.
	fc.waitStatus(ann, 40*time.Second, []string{"box-1"}, "playing")
	heard := 2 * audio.DefaultFormat.SampleRate * audio.DefaultFormat.BytesPerFrame()
	eventually(t, 20*time.Second, "box-1 to have played 2 s", func() bool {
		for _, f := range playing.partialFiles(item) {
			if fi, err := os.Stat(f); err == nil && fi.Size() >= int64(58+heard) {
				return true
			}
		}
		return false
	})
	playing.proc.kill9()
	fc.start(playing)

	fc.assertPlayedOnce(ann, mp3, start, []string{"box-1"}, "box-1", "box-2")
	want := expectedFaultPCM(t, mp3, 80)
	if files := playing.playedFiles(item); len(files) != 1 || filepath.Base(files[0]) != item+"_2.wav" {
		t.Errorf("box-1 wrote %v, want the replay %s_2.wav only", files, item)
	}
	partial := playing.partialFiles(item)
	if len(partial) != 1 {
		t.Fatalf("box-1 left %v, want the one file it was writing when killed", partial)
	}
	assertPrefix(t, "box-1's interrupted play", partial[0], want)
	if ev := fc.eventCounts(ann)["box-1"]; ev["playing"] != 2 || ev["failed"] != 0 {
		t.Errorf("box-1 events %v, want playing twice (before and after the crash), then played", ev)
	}

	var resumedFrom []int64
	for _, r := range flaky.sniff.requests("box-2") {
		if r.from > 0 {
			resumedFrom = append(resumedFrom, r.from)
		}
	}
	if len(resumedFrom) == 0 || resumedFrom[0] < had {
		t.Errorf("box-2 resumed its download from %v, want a Range from at least the %d bytes it had when killed", resumedFrom, had)
	}
	playing.assertCacheSound(t, sha, mp3)
	fetching.assertCacheSound(t, sha, mp3)
}

// assertPrefix checks that the unfinished WAV file at path holds the start
// of want (its header was never finished, so only its data is read).
func assertPrefix(t testing.TB, who, path string, want []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const header = 58 // the WAV sink's float header
	data := b[min(header, len(b)):]
	n := len(data) / 4
	n -= n % audio.DefaultFormat.Channels
	got := make([]float32, n)
	for i := range got {
		got[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
	}
	lead := firstSound(got, audio.DefaultFormat.Channels) - firstSound(want, audio.DefaultFormat.Channels)
	if lead < 0 || len(got)-lead > len(want) || len(got)-lead < audio.DefaultFormat.SampleRate {
		t.Errorf("%s: %d samples (%d of them silence first), not a prefix of the %d-sample media", who, len(got), max(lead, 0), len(want))
		return
	}
	got = got[lead:]
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-4 {
			t.Errorf("%s differs from the media at sample %d", who, i)
			return
		}
	}
}

// TestFaultControllerKilled (d): kill -9 of `loa serve` after an item was
// scheduled and delivered, and a restart on the same database after the
// item's start. The boxes play it on time without the controller; the
// report is complete once it is back, with each play once, and nobody
// plays the item again when the restarted controller republishes its plans.
// With the embedded broker the broker dies too; with mosquitto it stays.
func TestFaultControllerKilled(t *testing.T) {
	t.Parallel()
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			t.Parallel()
			o := faultOptions{}
			if broker == "mosquitto" {
				o.broker = newMosquitto(t, t.TempDir()).url()
			}
			fc := newFaultCommune(t, o)
			fc.addBox("box-1", "thon-1")
			fc.addBox("box-2", "thon-2")
			fc.waitOnline("box-1", "box-2")
			media := fc.addMedia("testdata/short.mp3")
			ann, start := fc.announceAt(media, time.Now().Add(10*time.Second))
			fc.waitStatus(ann, 30*time.Second, []string{"box-1", "box-2"}, "ready")

			plansBefore := map[string]int{}
			for id, b := range fc.boxes {
				plansBefore[id] = strings.Count(strings.Join(b.logs(), ""), "msg=plan ")
			}
			fc.ctrl.kill9()
			item := itemOf(ann, start)
			for _, id := range []string{"box-1", "box-2"} {
				b := fc.boxes[id]
				eventually(t, 30*time.Second, id+" to play without the controller", func() bool { return len(b.playedFiles(item)) == 1 })
			}
			fc.startController()
			fc.waitOnline("box-1", "box-2")
			fc.assertPlayedOnce(ann, "testdata/short.mp3", start, nil, "box-1", "box-2")
			// The restarted controller publishes every plan again, the item
			// still in them: the boxes take them and must not play it again
			// (a replay would start in the same loop turn as the plan).
			for _, id := range []string{"box-1", "box-2"} {
				b := fc.boxes[id]
				eventually(t, 30*time.Second, id+" to get the plans of the restarted controller", func() bool {
					return strings.Count(strings.Join(b.logs(), ""), "msg=plan ") > plansBefore[id]
				})
			}
			time.Sleep(time.Second)
			for _, id := range []string{"box-1", "box-2"} {
				if files := fc.boxes[id].playedFiles(item); len(files) != 1 {
					t.Errorf("%s played %v after the controller came back", id, files)
				}
			}
		})
	}
}

// TestFaultAgentFrozen (e): SIGSTOP of a box across its item's start. The
// design (device/queue.go): an item is due from its start until it
// expires (start + validity, here 10 s); a box that gets the CPU back
// within the window plays it late, one that gets it after reports expired
// and plays nothing.
func TestFaultAgentFrozen(t *testing.T) {
	t.Parallel()
	fc := newFaultCommune(t, faultOptions{config: "validity: 10s\n"})
	fc.addBox("box-1", "thon-1")
	late, gone := fc.addBox("box-2", "thon-1"), fc.addBox("box-3", "thon-1")
	fc.waitOnline("box-1", "box-2", "box-3")
	media := fc.addMedia("testdata/short.mp3")
	ann, start := fc.announceAt(media, time.Now().Add(10*time.Second))
	fc.waitStatus(ann, 30*time.Second, []string{"box-1", "box-2", "box-3"}, "ready")

	sleepUntil(start.Add(-2500 * time.Millisecond))
	late.proc.signal(syscall.SIGSTOP)
	gone.proc.signal(syscall.SIGSTOP)
	sleepUntil(start.Add(2500 * time.Millisecond)) // frozen for 5 s
	thawed := time.Now()
	late.proc.signal(syscall.SIGCONT)
	sleepUntil(start.Add(13 * time.Second)) // past the 10 s window
	gone.proc.signal(syscall.SIGCONT)

	rep := fc.assertPlayedOnce(ann, "testdata/short.mp3", start, []string{"box-2"}, "box-1", "box-2")
	if st, err := time.Parse(time.RFC3339Nano, rep["box-2"].StartedAt); err != nil || st.Before(thawed.Add(-500*time.Millisecond)) {
		t.Errorf("box-2 reports it started at %s, but it was frozen until %s", rep["box-2"].StartedAt, thawed.Format(time.RFC3339Nano))
	}
	r := fc.waitStatus(ann, 30*time.Second, []string{"box-3"}, "expired", "missed", "failed", "played")["box-3"]
	if r.Status != "expired" {
		t.Errorf("box-3 (frozen past the window) reports %q (%s), want expired", r.Status, r.Reason)
	}
	if files := gone.playedFiles(itemOf(ann, start)); len(files) != 0 {
		t.Errorf("box-3 played the item after its window: %v", files)
	}
	if ev := fc.eventCounts(ann)["box-3"]; ev["playing"] != 0 || ev["expired"] != 1 {
		t.Errorf("box-3 events %v, want one expired and no playing", ev)
	}
	eventually(t, 30*time.Second, "box-3's outbox to empty", func() bool { return gone.outboxLen() == 0 })
}

// TestFaultMosquittoRestart (f): mosquitto is killed (-9, no persistence:
// its sessions and retained messages are gone) while the controller and
// boxes are connected, and started again on the same port. Every box and
// the controller reconnect; an announcement made afterwards plays once on
// every box. box-4 was switched off before the restart and missed an
// announcement: it comes back afterwards, still gets the plan that holds
// it (the controller republishes its retained configs and plans after a
// reconnect), and plays it late, within its window.
func TestFaultMosquittoRestart(t *testing.T) {
	t.Parallel()
	m := newMosquitto(t, t.TempDir())
	fc := newFaultCommune(t, faultOptions{broker: m.url()})
	for _, id := range []string{"box-1", "box-2", "box-3", "box-4"} {
		fc.addBox(id, "thon-1")
	}
	ids := fc.ids()
	fc.waitOnline(ids...)
	off := fc.boxes["box-4"]
	off.proc.stop() // switched off; it keeps its config and plans on disk
	on := ids[:3]
	media := fc.addMedia("testdata/short.mp3")
	before, beforeStart := fc.announceAt(media, time.Now().Add(3*time.Second))
	fc.assertPlayedOnce(before, "testdata/short.mp3", beforeStart, nil, on...)

	m.proc.kill9()
	m.start()
	for _, id := range on {
		b := fc.boxes[id]
		eventually(t, 60*time.Second, id+" to reconnect", func() bool { return b.connects() >= 2 })
	}
	eventually(t, 60*time.Second, "the controller to reconnect", func() bool {
		return strings.Count(fc.ctrl.logText(), "connected to the MQTT broker") >= 2
	})
	fc.start(off)
	fc.assertPlayedOnce(before, "testdata/short.mp3", beforeStart, []string{"box-4"}, ids...)
	after, afterStart := fc.announceAt(media, time.Now().Add(5*time.Second))
	fc.assertPlayedOnce(after, "testdata/short.mp3", afterStart, nil, ids...)
	fc.assertPlayedOnce(before, "testdata/short.mp3", beforeStart, []string{"box-4"}, ids...)
}

// TestFaultFlakyMediaLink (a): the media link has 300 ms of latency, 16 kB/s
// per connection and resets every connection 3 s after it opened, so no box
// can fetch the 96 kB media in one go. Every box still plays the item on
// time, having resumed its download with Range after a reset, and its
// cached media matches its SHA-256.
func TestFaultFlakyMediaLink(t *testing.T) {
	t.Parallel()
	var flaky flakyMedia
	fc := newFaultCommune(t, faultOptions{media: func(l *link) {
		flaky = makeFlaky(l, flakyLink{latency: 300 * time.Millisecond, kBps: 16, lifetime: 3 * time.Second})
	}})
	mp3 := makeTestMP3(t, t.TempDir(), 8, 96)
	for _, id := range []string{"box-1", "box-2", "box-3"} {
		fc.addBox(id, "thon-1")
	}
	ids := fc.ids()
	fc.waitOnline(ids...)
	id, sha := fc.addMediaPlay(mp3)
	ann, start := fc.announceAt(id, time.Now().Add(30*time.Second))

	fc.assertPlayedOnce(ann, mp3, start, nil, ids...)
	for _, id := range ids {
		b := fc.boxes[id]
		reqs := flaky.sniff.requests(id)
		if len(reqs) < 2 || reqs[0].from != 0 || flaky.sniff.resumed(id) == 0 {
			t.Errorf("%s: media requests %+v, want a first GET and at least one resumed with Range", id, reqs)
		}
		if log := strings.Join(b.logs(), ""); !strings.Contains(log, "media download failed; will retry") {
			t.Errorf("%s: its log does not show a failed attempt", id)
		}
		b.assertCacheSound(t, sha, mp3)
	}
	if flaky.cutter.Cuts() == 0 {
		t.Error("no connection was reset")
	}
}

// TestFaultDownloadBackoffAfterProgress: a link that resets every
// connection after 16 kB (a 3G cell that drops long transfers) still
// carries a 128 kB media in eight quick attempts, each resuming where the
// last one stopped. The agent should retry soon after an attempt that made
// progress; it should not wait longer and longer as if the link were dead.
func TestFaultDownloadBackoffAfterProgress(t *testing.T) {
	t.Parallel()
	var flaky flakyMedia
	fc := newFaultCommune(t, faultOptions{media: func(l *link) { flaky = makeFlaky(l, flakyLink{bytes: 16 << 10}) }})
	mp3 := makeTestMP3(t, t.TempDir(), 8, 128) // 128 kB
	b := fc.addBox("box-1", "thon-1")
	fc.waitOnline("box-1")
	id, sha := fc.addMediaPlay(mp3)
	ann, start := fc.announceAt(id, time.Now().Add(35*time.Second))
	fc.assertPlayedOnce(ann, mp3, start, nil, "box-1")
	t.Logf("box-1 fetched the media in %d requests", len(flaky.sniff.requests("box-1")))
	b.assertCacheSound(t, sha, mp3)
}
