package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
)

func newAlert(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "alert", Short: "Take alerts from warning services"}
	capCmd := &cobra.Command{
		Use:   "cap FILE",
		Short: "Send an OASIS CAP 1.2 alert (XML); it starts, updates or cancels an emergency as the config maps it",
		Args:  cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open %s: %w", args[0], err)
			}
			defer f.Close()
			res, err := c.PostCAP(ctx, f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				return printJSON(out, res)
			}
			d := res.Decision
			fmt.Fprintf(out, "CAP %s %s from %s: %s\n", d.MsgType, d.Identifier, d.Sender, d.Action)
			if d.Reason != "" {
				fmt.Fprintf(out, "  %s\n", d.Reason)
			}
			if len(res.Cancelled) > 0 {
				fmt.Fprintf(out, "  cancelled %s\n", strings.Join(res.Cancelled, ", "))
			}
			if e := res.Emergency; e != nil {
				fmt.Fprintf(out, "  emergency %s (tone %s) on %d box(es): %s\n", e.ID, e.Tone, len(e.Devices), strings.Join(e.Devices, ", "))
			}
			return nil
		}),
	}
	cmd.AddCommand(capCmd)
	return cmd
}
