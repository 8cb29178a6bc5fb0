package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/capture"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// targetFlags say which boxes a session plays on.
type targetFlags struct {
	all     bool
	groups  []string
	devices []string
}

func (f *targetFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.all, "all", false, "every box of the commune")
	fl.StringSliceVar(&f.groups, "group", nil, "the boxes of this group (village); repeat for several")
	fl.StringSliceVar(&f.devices, "device", nil, "this box; repeat for several")
}

func (f *targetFlags) targets() (store.Targets, error) {
	t := store.Targets{All: f.all, Groups: f.groups, Devices: f.devices}
	if !t.All && len(t.Groups) == 0 && len(t.Devices) == 0 {
		return t, usageErr(errors.New(messages.T(messages.NoTarget)))
	}
	return t, nil
}

func newLive(g *globals) *cobra.Command {
	var tf targetFlags
	var priority, source, file, name string
	var length time.Duration
	var yes bool
	var bitrate int
	cmd := &cobra.Command{
		Use:   "live (--all | --group G... | --device ID...) [--source DEVICE | --file PATH | -]",
		Short: "Speak live on the loudspeakers from this computer's microphone",
		Long: "Speak live: what this computer's microphone hears (or a file, or standard input with -) plays on\n" +
			"every targeted box, all in step, until you press Ctrl-C or --for runs out. It shows the input level\n" +
			"and how many boxes are playing, and warns when the input is silent or too loud. A live session\n" +
			"interrupts normal announcements (priority \"priority\"); emergencies interrupt it.\n" +
			"It asks you to type the target to confirm unless --yes is given.",
		Args: cobra.MaximumNArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			targets, err := tf.targets()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if args[0] != "-" || file != "" {
					return usageErr(errors.New("the only argument `loa live` takes is - (sound on standard input)"))
				}
				file = "-"
			}
			if file == "-" && !yes {
				return usageErr(errors.New("with sound on standard input, confirm with --yes (the question would read the sound)"))
			}
			if !yes {
				if err := confirmWith(cmd.InOrStdin(), cmd.ErrOrStderr(), messages.ConfirmLive, targets.String()); err != nil {
					return err
				}
			}
			capCtx, kill := context.WithCancel(context.Background()) // Ctrl-C stops it gently, below
			defer kill()
			cp, err := capture.Start(capCtx, capture.Options{Source: source, File: file, Stdin: cmd.InOrStdin(), BitrateKbps: bitrate})
			if err != nil {
				return errors.New(messages.T(messages.NoCapture, err))
			}
			label := source
			switch {
			case file == "-":
				label = "standard input"
			case file != "":
				label = "file " + file
			case label == "":
				label = "microphone"
			}
			info, err := c.StartSession(ctx, api.SessionRequest{Kind: "live", Targets: targets, Priority: priority,
				ForSec: int(length / time.Second), Source: label, Name: name})
			if err != nil {
				cp.Stop()
				go io.Copy(io.Discard, cp.Audio())
				_ = cp.Wait()
				return err
			}
			return runLive(ctx, c, cmd, g.output, cp, info, length)
		}),
	}
	tf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&priority, "priority", "priority", "normal, priority or emergency")
	f.StringVar(&source, "source", "", "the microphone: a PulseAudio source (pactl list short sources), or alsa:DEVICE")
	f.StringVar(&file, "file", "", "send this recording live instead, at its own pace")
	f.StringVar(&name, "name", "", "a name for the session, shown in the report")
	f.DurationVar(&length, "for", 0, "stop after this long (like 10m); default: until Ctrl-C")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.IntVar(&bitrate, "bitrate", 24, "kbit/s of the sound sent to the boxes")
	return cmd
}

// runLive feeds the capture to the session until Ctrl-C, --for or the end
// of the input, showing the level and the boxes, and reports how it ended.
func runLive(ctx context.Context, c *api.Client, cmd *cobra.Command, output string, cp *capture.Capture, info api.SessionInfo, length time.Duration) error {
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	// Ctrl-C (ctx) or --for: ffmpeg finishes the stream, the upload ends,
	// the controller ends the session: boxes stop after the play-out delay.
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopNow := func() { stopOnce.Do(func() { close(stop); cp.Stop() }) }
	go func() {
		var limit <-chan time.Time
		if length > 0 {
			limit = time.After(length)
		}
		select {
		case <-ctx.Done():
		case <-limit:
		case <-stop:
		}
		stopNow()
	}()
	var wg sync.WaitGroup
	meter := newLiveMeter(errw, isTerminal(errw))
	wg.Go(func() { meter.run(cp.Levels()) })
	pollCtx, stopPoll := context.WithCancel(context.Background())
	wg.Go(func() { meter.follow(pollCtx, c, info.ID) })

	feedCtx, cancelFeed := context.WithCancel(context.Background())
	defer cancelFeed()
	type fed struct {
		x   api.SessionInfo
		err error
	}
	result := make(chan fed, 1)
	go func() {
		x, err := c.FeedSession(feedCtx, info.ID, cp.Audio())
		result <- fed{x, err}
	}()
	// The boxes learn of the session first; the speaker is told to begin
	// when what the microphone hears is played.
	var r fed
	select {
	case r = <-result:
	case at := <-speakAt(pollCtx, c, info.ID):
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		if output != "json" {
			fmt.Fprintln(out, messages.T(messages.LiveOnAir, len(info.Devices), info.ID))
		}
		r = <-result
	}
	final, ferr := r.x, r.err
	stopNow()
	go io.Copy(io.Discard, cp.Audio()) // whatever ffmpeg still writes
	werr := cp.Wait()
	stopPoll()
	wg.Wait()
	meter.done()
	if ferr != nil {
		return ferr
	}
	if werr != nil && final.EndReason == "" {
		fmt.Fprintln(errw, werr)
	}
	if output == "json" {
		return printJSON(out, final)
	}
	fmt.Fprintln(out, messages.T(messages.LiveEnded, final.ID, final.EndReason))
	printSessionRows(out, final)
	return nil
}

// speakAt delivers when the speaker's sound starts to be played, once the
// controller says (the session is on air).
func speakAt(ctx context.Context, c *api.Client, id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		for {
			if x, err := c.Session(ctx, id); err == nil && !x.SpeakAt.IsZero() {
				ch <- x.SpeakAt
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return ch
}

// printSessionRows sums up what each box did with a session.
func printSessionRows(w io.Writer, x api.SessionInfo) {
	rows := [][]string{}
	for _, d := range x.Rows {
		rows = append(rows, []string{d.Device, d.Status, when(d.StartedAt), when(d.FinishedAt), seconds(d.HeardMS), seconds(d.MissedMS), orDash(reasonWords(d))})
	}
	if len(rows) > 0 {
		_ = table(w, []string{"BOX", "STATUS", "STARTED", "ENDED", "HEARD", "MISSED", "REASON"}, rows)
	}
}

func seconds(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", float64(ms)/1000)
}

// liveMeter shows the input level and the boxes playing, on one line that
// redraws on a terminal, and as plain lines on a log.
type liveMeter struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	level   capture.Level
	boxes   string
	monitor capture.Monitor
	drawn   time.Time
}

func newLiveMeter(w io.Writer, tty bool) *liveMeter { return &liveMeter{w: w, tty: tty, boxes: "…"} }

func (m *liveMeter) run(levels <-chan capture.Level) {
	for l := range levels {
		now := time.Now()
		m.mu.Lock()
		m.level = l
		switch m.monitor.Observe(l, now) {
		case capture.Silent:
			m.say(messages.T(messages.LiveSilent))
		case capture.Clipping:
			m.say(messages.T(messages.LiveClipping))
		}
		if m.tty && now.Sub(m.drawn) >= 200*time.Millisecond {
			m.draw()
			m.drawn = now
		}
		m.mu.Unlock()
	}
}

// follow polls the session for the boxes' answers.
func (m *liveMeter) follow(ctx context.Context, c *api.Client, id string) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if x, err := c.Session(ctx, id); err == nil {
			playing := 0
			for _, d := range x.Rows {
				if d.Status == string(protocol.EventPlaying) {
					playing++
				}
			}
			boxes := fmt.Sprintf("playing on %d of %d box(es)", playing, len(x.Devices))
			m.mu.Lock()
			if boxes != m.boxes {
				m.boxes = boxes
				if !m.tty {
					fmt.Fprintln(m.w, boxes)
				}
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// say prints a warning on its own line (m.mu held).
func (m *liveMeter) say(s string) {
	if m.tty {
		fmt.Fprint(m.w, "\r\033[K")
	}
	fmt.Fprintln(m.w, s)
	if m.tty {
		m.draw()
	}
}

// draw redraws the meter line (m.mu held): a bar from -60 to 0 dBFS.
func (m *liveMeter) draw() {
	const width = 30
	n := int(math.Round((m.level.Peak + 60) / 60 * width))
	n = max(0, min(width, n))
	fmt.Fprintf(m.w, "\r\033[K[%s%s] %4.0f dBFS  %s", strings.Repeat("#", n), strings.Repeat(".", width-n), math.Max(m.level.Peak, -99), m.boxes)
}

func (m *liveMeter) done() {
	if m.tty {
		fmt.Fprintln(m.w)
	}
}

// isTerminal reports whether w is a terminal (the meter redraws in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newRelay(g *globals) *cobra.Command {
	var tf targetFlags
	var priority, name string
	var length time.Duration
	cmd := &cobra.Command{
		Use:   "relay URL (--all | --group G... | --device ID...) [--for 30m]",
		Short: "Relay a radio stream (Icecast/SHOUTcast MP3 or AAC, or HLS) on the loudspeakers",
		Long: "Relay a radio programme: the controller reads the stream and every targeted box plays it in step,\n" +
			"until --for runs out or `loa relay stop ID`. If the station drops out the controller tries again for\n" +
			"a while, then ends the relay and says so in the report. To relay every day, see\n" +
			"`loa schedule add --relay`.",
		Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			targets, err := tf.targets()
			if err != nil {
				return err
			}
			info, err := c.StartSession(ctx, api.SessionRequest{Kind: "relay", URL: args[0], Targets: targets,
				Priority: priority, ForSec: int(length / time.Second), Name: name})
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintln(cmd.OutOrStdout(), messages.T(messages.RelayOnAir, args[0], len(info.Devices), info.ID, when(info.Until), info.ID))
			return nil
		}),
	}
	tf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&priority, "priority", "normal", "normal, priority or emergency")
	f.StringVar(&name, "name", "", "a name for the relay, shown in the report")
	f.DurationVar(&length, "for", 0, "stop after this long (like 30m); default: the longest a session may last")
	stop := &cobra.Command{
		Use: "stop ID", Short: "Stop a relay or a live session now", Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			x, err := c.StopSession(ctx, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), x)
			}
			fmt.Fprintln(cmd.OutOrStdout(), messages.T(messages.LiveEnded, x.ID, x.EndReason))
			return nil
		}),
	}
	cmd.AddCommand(stop)
	return cmd
}
