package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
)

func newEmergency(g *globals) *cobra.Command {
	var cf contentFlags
	var tone string
	var repeat, gapSec int
	var yes, exercise, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "emergency (--media ID | --file PATH | --text \"...\" | --tone siren) (--all | --group G...)",
		Short: "Sound an emergency alert now on every box of the targets, before anything else",
		Long: "Sound an emergency alert now: every targeted box stops what it plays, sounds the alert tone at the\n" +
			"emergency volume, then the message, repeated as asked. It asks you to type the target to confirm\n" +
			"unless --yes is given. Stop it with `loa emergency cancel`.",
		Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			req, err := cf.request(ctx, c, true)
			if err != nil {
				return err
			}
			req.Tone, req.Repeat, req.GapSec, req.Exercise = tone, repeat, gapSec, exercise
			if !yes {
				if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), req.Targets.String()); err != nil {
					return err
				}
			}
			a, err := c.StartEmergency(ctx, req)
			if err != nil {
				return err
			}
			return g.sent(ctx, c, cmd, a, wait, timeout,
				fmt.Sprintf("Emergency %s is sounding on %d box(es): %s\nCancel it with: loa emergency cancel %s\n",
					a.ID, len(a.Devices), strings.Join(a.Devices, ", "), a.ID),
				fmt.Sprintf("Emergency %s sent to %d box(es); their answers:\n", a.ID, len(a.Devices)))
		}),
	}
	cf.register(cmd, false)
	f := cmd.Flags()
	f.StringVar(&tone, "tone", "siren", "alert tone before the message: siren, flood, storm, fire or other")
	f.IntVar(&repeat, "repeat", 3, "how many times to sound the tone and message")
	f.IntVar(&gapSec, "gap", 5, "seconds of silence between repeats")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&exercise, "exercise", false, "a drill: say \"this is an exercise\" first and mark it in the report")
	f.BoolVar(&wait, "wait", false, "wait until every box has answered, showing progress")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "with --wait, give up after this long")

	cancel := &cobra.Command{
		Use:   "cancel [ID]",
		Short: "Stop an emergency everywhere (all active ones without ID); plays the all-clear if configured",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			res, err := c.CancelEmergency(ctx, id)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Cancelled %s.\n", strings.Join(res.Cancelled, ", "))
			if res.AllClear != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "The all-clear plays now (%s).\n", res.AllClear)
			}
			return nil
		}),
	}
	list := &cobra.Command{
		Use: "list", Short: "List the active emergencies", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			es, err := c.Emergencies(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), es)
			}
			rows := [][]string{}
			for _, e := range es {
				kind := "live"
				if e.Exercise {
					kind = "exercise"
				}
				rows = append(rows, []string{e.ID, when(e.Start), e.Targets.String(), e.Tone, kind, e.Source, orDash(messages.Short(e.Text))})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "STARTED", "TARGETS", "TONE", "KIND", "SOURCE", "TEXT"}, rows)
		}),
	}
	cmd.AddCommand(cancel, list)
	return cmd
}

// confirm asks the operator to type the target, so a slip of the finger does
// not wake a whole commune.
func confirm(in io.Reader, out io.Writer, target string) error {
	return confirmWith(in, out, messages.ConfirmEmergency, target)
}

// confirmWith asks question (which names the target twice) and checks the
// answer is the target.
func confirmWith(in io.Reader, out io.Writer, question messages.Key, target string) error {
	fmt.Fprint(out, messages.T(question, target, target))
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != target {
		fmt.Fprintln(out)
		return errors.New(messages.T(messages.NotConfirmed))
	}
	return nil
}
