package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// what and where an announcement or schedule plays, as flags.
type contentFlags struct {
	media   string
	file    string
	text    string
	all     bool
	groups  []string
	devices []string
}

func (f *contentFlags) register(cmd *cobra.Command, withDevices bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.media, "media", "", "id of an uploaded audio file (see `loa media list`)")
	fl.StringVar(&f.file, "file", "", "an audio file to upload and play")
	fl.StringVar(&f.text, "text", "", "text the controller speaks (Vietnamese voice); kept in the report")
	fl.BoolVar(&f.all, "all", false, "play on every box of the commune")
	fl.StringSliceVar(&f.groups, "group", nil, "play on the boxes of this group (village); repeat for several")
	if withDevices {
		fl.StringSliceVar(&f.devices, "device", nil, "play on this box; repeat for several")
	}
}

// request checks the flags and uploads --file, returning the request.
// toneOnly allows no media at all (an emergency that is only a siren).
func (f *contentFlags) request(ctx context.Context, c *api.Client, toneOnly bool) (api.AnnounceRequest, error) {
	req := api.AnnounceRequest{Targets: store.Targets{All: f.all, Groups: f.groups, Devices: f.devices}, Text: f.text}
	switch {
	case f.media != "" && f.file != "":
		return req, usageErr(errors.New("give either --media or --file, not both"))
	case f.media == "" && f.file == "" && f.text == "" && !toneOnly:
		return req, usageErr(errors.New(messages.T(messages.NoMedia)))
	case !f.all && len(f.groups) == 0 && len(f.devices) == 0:
		return req, usageErr(errors.New(messages.T(messages.NoTarget)))
	}
	req.Media = f.media
	if f.file != "" {
		m, err := uploadFile(ctx, c, f.file, "")
		if err != nil {
			return req, err
		}
		req.Media = m.ID
	}
	return req, nil
}

func newAnnounce(g *globals) *cobra.Command {
	var cf contentFlags
	var at, priority string
	var repeat int
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "announce (--media ID | --file PATH) (--all | --group G... | --device ID...)",
		Short: "Play an announcement now or at a time",
		Long: "Play an announcement now or at a time (in the site's time zone).\n\n" +
			"With --wait it shows each box's answer and exits 0 when all played it, 3 when some did not, 4 on timeout.",
		Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			req, err := cf.request(ctx, c, false)
			if err != nil {
				return err
			}
			req.At, req.Priority, req.Repeat = at, priority, repeat
			a, err := c.Announce(ctx, req)
			if err != nil {
				return err
			}
			return g.sent(ctx, c, cmd, a, wait, timeout,
				fmt.Sprintf("Announcement %s will play at %s on %d box(es): %s\n", a.ID, when(a.Start), len(a.Devices), strings.Join(a.Devices, ", ")),
				fmt.Sprintf("Announcement %s starts at %s on %d box(es); waiting for their answers...\n", a.ID, when(a.Start), len(a.Devices)))
		}),
	}
	cf.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&at, "at", "", "when to play, in the site's zone: \"2026-12-01 06:00\" or \"06:00\" (default: now)")
	f.StringVar(&priority, "priority", "normal", "normal, priority or emergency")
	f.IntVar(&repeat, "repeat", 1, "how many times to play it")
	f.BoolVar(&wait, "wait", false, "wait until every box has answered, showing progress")
	f.DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (default: until the item expires plus its length)")
	return cmd
}

// sent reports a new announcement or emergency: the summary, or with wait
// the boxes' answers as they come (then, with -o json, the final state).
func (g *globals) sent(ctx context.Context, c *api.Client, cmd *cobra.Command, a api.Announcement, wait bool, timeout time.Duration, summary, waiting string) error {
	out := cmd.OutOrStdout()
	switch {
	case !wait && g.output == "json":
		return printJSON(out, a)
	case !wait:
		fmt.Fprint(out, summary)
		return nil
	}
	progress := out
	if g.output == "json" {
		progress = cmd.ErrOrStderr()
	} else {
		fmt.Fprint(out, waiting)
	}
	final, werr := waitFor(ctx, c, a, timeout, progress)
	if g.output == "json" {
		if err := printJSON(out, final); err != nil {
			return err
		}
	}
	return werr
}

// waitFor polls the announcement until every targeted box reported a final
// status, printing each change.
func waitFor(ctx context.Context, c *api.Client, a api.Announcement, timeout time.Duration, w io.Writer) (api.Announcement, error) {
	if timeout <= 0 {
		timeout = time.Until(a.Start) + 20*time.Minute
	}
	deadline := time.Now().Add(timeout)
	seen := map[string]string{}
	for {
		cur, err := c.Announcement(ctx, a.ID)
		if err != nil {
			return a, err
		}
		a = cur
		done, failed := 0, 0
		for _, d := range cur.Deliveries {
			if seen[d.Device] != d.Status {
				seen[d.Device] = d.Status
				if d.Status != store.StatusPending {
					fmt.Fprintf(w, "  %s  %-10s %s %s\n", time.Now().In(displayZone).Format("15:04:05"), d.Device, d.Status, reasonWords(d))
				}
			}
			if protocol.EventType(d.Status).Final() {
				done++
				if d.Status != string(protocol.EventPlayed) {
					failed++
				}
			}
		}
		total := len(cur.Devices)
		switch {
		case done >= total && failed > 0:
			return a, &codedError{code: exitFailed, err: errors.New(messages.T(messages.WaitFailed, failed, total))}
		case done >= total:
			fmt.Fprintf(w, "All %d box(es) played it.\n", total)
			return a, nil
		case time.Now().After(deadline):
			return a, &codedError{code: exitTimeout, err: errors.New(messages.T(messages.WaitTimeout, timeout.Round(time.Second), done, total))}
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func newSchedule(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Short: "Repeat announcements on a cron rule (e.g. the 6:00 bulletin)"}
	var cf contentFlags
	var spec, name, priority, relay string
	var repeat int
	var length time.Duration
	add := &cobra.Command{
		Use:   "add --cron \"0 6 * * *\" (--media ID | --file PATH | --relay URL --for 30m) (--all | --group G...)",
		Short: "Add a schedule; the cron rule is read in the site's time zone",
		Long: "Add a schedule; the cron rule is read in the site's time zone. With --relay the controller relays\n" +
			"the radio stream at URL for --for at every occurrence (e.g. the provincial news at 6:00).",
		Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			if spec == "" {
				return usageErr(errors.New("give the rule with --cron, e.g. --cron \"0 6 * * *\" for 6:00 every day"))
			}
			if relay != "" && length <= 0 {
				return usageErr(errors.New("say how long to relay at each occurrence with --for, e.g. --for 30m"))
			}
			req, err := cf.request(ctx, c, relay != "")
			if err != nil {
				return err
			}
			req.Cron, req.Name, req.Priority, req.Repeat = spec, name, priority, repeat
			req.Relay, req.ForSec = relay, int(length/time.Second)
			a, err := c.AddSchedule(ctx, req)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), a)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Schedule %s (%s) added; next at %s.\n", a.ID, a.Cron, when(a.Next))
			return nil
		}),
	}
	cf.register(add, true)
	add.Flags().StringVar(&spec, "cron", "", "cron rule: minute hour day month weekday, or @daily, @hourly...")
	add.Flags().StringVar(&name, "name", "", "a name for the schedule")
	add.Flags().StringVar(&priority, "priority", "normal", "normal, priority or emergency")
	add.Flags().IntVar(&repeat, "repeat", 1, "how many times to play it each time")
	add.Flags().StringVar(&relay, "relay", "", "relay this radio stream (Icecast/SHOUTcast MP3 or AAC, or HLS) instead of a file")
	add.Flags().DurationVar(&length, "for", 0, "with --relay: how long to relay at each occurrence (like 30m)")

	list := &cobra.Command{
		Use: "list", Short: "List the schedules", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			ss, err := c.Schedules(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			rows := [][]string{}
			for _, s := range ss {
				state := "active"
				if s.Paused {
					state = "paused"
				}
				rows = append(rows, []string{s.ID, orDash(s.Name), s.Cron, s.Targets.String(), state, when(s.Next)})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "NAME", "CRON", "TARGETS", "STATE", "NEXT"}, rows)
		}),
	}
	simple := func(use, short, done string, fn func(ctx context.Context, c *api.Client, id string) error) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
				if err := fn(ctx, c, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Schedule %s %s.\n", args[0], done)
				return nil
			}),
		}
	}
	rm := simple("rm", "Delete a schedule", "removed", func(ctx context.Context, c *api.Client, id string) error { return c.RemoveSchedule(ctx, id) })
	pause := simple("pause", "Pause a schedule", "paused", func(ctx context.Context, c *api.Client, id string) error {
		_, err := c.PauseSchedule(ctx, id, true)
		return err
	})
	resume := simple("resume", "Resume a paused schedule", "resumed", func(ctx context.Context, c *api.Client, id string) error {
		_, err := c.PauseSchedule(ctx, id, false)
		return err
	})
	cmd.AddCommand(add, list, rm, pause, resume)
	return cmd
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func printAudit(ctx context.Context, c *api.Client, output, since, until string, w io.Writer) error {
	entries, err := c.Audit(ctx, since, until)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(w, entries)
	}
	rows := [][]string{}
	for _, e := range entries {
		rows = append(rows, []string{when(e.At), e.Actor, e.Action, e.Rule, orDash(e.Targets), orDash(e.Details)})
	}
	return table(w, []string{"AT", "WHO", "ACTION", "RULE", "TARGETS", "DETAILS"}, rows)
}
