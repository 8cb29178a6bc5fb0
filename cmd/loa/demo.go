package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/store"
)

//go:embed demodata/announcement.mp3
var demoAnnouncement []byte

// demoBoxes is the demo commune: two villages, three boxes, placed on the
// console's map in a valley of Lào Cai.
var demoBoxes = []struct {
	id, name, group string
	lat, lon        float64
}{
	{"thon1-a", "Thôn 1 - nhà văn hoá", "thon-1", 22.3364, 103.8438},
	{"thon1-b", "Thôn 1 - chợ", "thon-1", 22.3391, 103.8502},
	{"thon2-a", "Thôn 2 - trường học", "thon-2", 22.3298, 103.8367},
}

type demoOptions struct {
	dir     string
	group   string
	speaker string // "auto", "yes", "no"
	agent   string
	http    string
	// keep leaves the commune running for the web console until Ctrl+C.
	keep bool
}

func newDemo() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole commune on this machine: a controller, 3 boxes in 2 villages, one announcement",
		Long: "Starts a controller with its embedded broker, three loa-agent processes (two in village thon-1,\n" +
			"one in thon-2), uploads a Vietnamese announcement, plays it to thon-1, and prints what every box\n" +
			"reported. Boxes write what they play as WAV files; one also plays through the sound card if there is one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "demo-out", "folder for the demo's database, caches and WAV files (emptied first)")
	f.StringVar(&o.group, "group", "thon-1", "village to announce to (thon-1 or thon-2), or \"all\"")
	f.StringVar(&o.speaker, "speaker", "auto", "play box thon1-a through the sound card: auto, yes or no")
	f.StringVar(&o.agent, "agent", "", "path of the loa-agent binary (default: next to loa, then PATH)")
	f.StringVar(&o.http, "http", "127.0.0.1:8080", "address of the controller's API and web console (another free port if taken)")
	f.BoolVar(&o.keep, "keep", false, "keep the commune running after the announcement, for the web console, until Ctrl+C")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	agentBin, err := findAgent(o.agent)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("empty demo folder: %w", err)
	}
	logFile, err := createLog(dir, "controller.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	cfg := controller.Defaults()
	cfg.Site, cfg.Data, cfg.HTTP, cfg.MQTT = "demo", filepath.Join(dir, "controller"), freeOr(o.http), "127.0.0.1:0"
	ctrl, err := controller.Open(ctx, cfg, slog.New(slog.NewTextHandler(logFile, nil)))
	if err != nil {
		return err
	}
	defer ctrl.Close(context.Background())
	if loc, err := time.LoadLocation(cfg.Timezone); err == nil {
		displayZone = loc
	}
	server := "http://" + ctrl.HTTPAddr()
	c := api.NewClient(server, ctrl.AdminToken())
	fmt.Fprintf(out, "Controller: API %s, MQTT %s, data %s\n", server, ctrl.BrokerAddr(), cfg.Data)

	speaker := o.speaker == "yes" || (o.speaker == "auto" && haveSoundCard())
	var agents []*exec.Cmd
	defer func() { stopAgents(agents) }()
	for i, b := range demoBoxes {
		res, err := c.AddDevice(ctx, api.AddDeviceRequest{ID: b.id, Name: b.name, Groups: []string{b.group}, Lat: &b.lat, Lon: &b.lon})
		if err != nil {
			return fmt.Errorf("add box %s: %w", b.id, err)
		}
		boxDir := filepath.Join(dir, b.id)
		output := "wav:" + filepath.Join(boxDir, "played")
		if i == 0 && speaker {
			output = "alsa"
		}
		// The config `device add` made, as a technician copies it to the box
		// (it holds the controller's public key); flags set the demo's paths.
		if err := os.MkdirAll(boxDir, 0o755); err != nil {
			return err
		}
		boxConfig := filepath.Join(boxDir, "agent.yaml")
		if err := os.WriteFile(boxConfig, []byte(res.AgentConfig), 0o600); err != nil {
			return err
		}
		cmd, err := startAgent(agentBin, boxDir, output, []string{
			"--config", boxConfig, "--broker", "tcp://" + ctrl.BrokerAddr(), "--server", server,
			"--cache", filepath.Join(boxDir, "cache"),
		})
		if err != nil {
			return err
		}
		agents = append(agents, cmd)
		fmt.Fprintf(out, "Box %-8s in %s, output %s\n", b.id, b.group, output)
	}
	if err := waitOnline(ctx, c, len(demoBoxes), 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(out, "All boxes are online.")

	media, err := c.AddMedia(ctx, "tiem-vac-xin.mp3", bytes.NewReader(demoAnnouncement))
	if err != nil {
		return fmt.Errorf("upload the demo announcement: %w", err)
	}
	fmt.Fprintf(out, "Uploaded the announcement (%s, %.1f s, %s): %s\n", media.Codec, float64(media.DurationMS)/1000, loudnessNote(media), media.ID)
	req := api.AnnounceRequest{Media: media.ID, Targets: store.Targets{Groups: []string{o.group}}, Text: "Tiêm vắc xin cho trẻ em dưới 5 tuổi"}
	if o.group == "all" {
		req.Targets = store.Targets{All: true}
	}
	sent := time.Now()
	a, err := c.Announce(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Announcement %s to %s (%d boxes), now. Answers:\n", a.ID, a.Targets.String(), len(a.Devices))
	final, werr := waitFor(ctx, c, a, 2*time.Minute, out)
	if first := lastStart(final.Deliveries); !first.IsZero() {
		fmt.Fprintf(out, "Time from announce to every box playing: %d ms (a \"now\" announcement starts on the next whole second at least 1 s ahead, so that every box starts it together)\n", first.Sub(sent).Milliseconds())
	}
	fmt.Fprintln(out, "\nReport (loa report):")
	rows, err := c.Report(ctx, "", "")
	if err != nil {
		return err
	}
	var table [][]string
	for _, r := range rows {
		table = append(table, []string{r.Device, r.Status, when(r.StartedAt), when(r.FinishedAt), orDash(reasonWords(r))})
	}
	if err := tableOut(out, table); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWhat each box played is in %s/<box>/played/*.wav; logs are in %s/*.log.\n", dir, dir)
	if werr != nil || !o.keep {
		return werr
	}
	tok, err := c.AddToken(ctx, api.AddTokenRequest{Name: "demo-operator", Role: "operator"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWeb console: %s/ (in Vietnamese; English at the top right)\nSign in with this operator token:\n  %s\n"+
		"(the admin token is in %s). The commune keeps running; Ctrl+C stops it.\n",
		server, tok.Secret, filepath.Join(cfg.Data, "admin.token"))
	<-ctx.Done()
	fmt.Fprintln(out, "Stopping the commune.")
	return nil
}

// freeOr is addr if it is free to listen on, else a free port on loopback:
// a second demo, or a busy 8080, still runs.
func freeOr(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	ln.Close()
	return addr
}

func tableOut(w io.Writer, rows [][]string) error {
	return table(w, []string{"BOX", "STATUS", "STARTED", "FINISHED", "REASON"}, rows)
}

// lastStart is when the last box started playing (zero if one never did).
func lastStart(ds []store.Delivery) time.Time {
	var last time.Time
	for _, d := range ds {
		if d.StartedAt.IsZero() {
			return time.Time{}
		}
		if d.StartedAt.After(last) {
			last = d.StartedAt
		}
	}
	return last
}

func findAgent(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "loa-agent")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("loa-agent"); err == nil {
		return p, nil
	}
	return "", errors.New("loa-agent not found next to loa or on PATH: build it with `make build` (it needs libasound2-dev), or pass --agent PATH")
}

func createLog(dir, name string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(dir, name))
}

func startAgent(bin, boxDir, output string, args []string) (*exec.Cmd, error) {
	logFile, err := createLog(filepath.Dir(boxDir), filepath.Base(boxDir)+".log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(args, "--output", output)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logFile.Close() // the child has its own descriptor
	return cmd, nil
}

// stopAgents asks every agent to stop and waits, killing those that hang.
func stopAgents(cmds []*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cmds {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
}

func waitOnline(ctx context.Context, c *api.Client, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		online := 0
		for _, s := range st {
			if s.Online {
				online++
			}
		}
		if online >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d boxes came online in %s: see the box logs in the demo folder", online, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// haveSoundCard reports whether ALSA lists a card (or PulseAudio is set up).
func haveSoundCard() bool {
	if os.Getenv("PULSE_SERVER") != "" {
		return true
	}
	b, err := os.ReadFile("/proc/asound/cards")
	return err == nil && !strings.Contains(string(b), "no soundcards") && len(strings.TrimSpace(string(b))) > 0
}
