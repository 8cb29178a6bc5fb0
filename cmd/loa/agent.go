package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/store"
)

func newAgent(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Update the loudspeaker boxes' software over the air"}
	var version string
	var percent int
	var tf targetFlags
	publish := &cobra.Command{
		Use:   "publish FILE... --version v1.4.0 [--all | --group G... | --device ID...] [--percent N]",
		Short: "Publish loa-agent builds (one per architecture) and roll them out to the boxes",
		Long: "Publish loa-agent builds and roll them out: the boxes get the build of their architecture in\n" +
			"their signed config, check it, run it on trial and keep it once it reaches the controller; a box\n" +
			"whose new build does not reach the controller goes back to its previous build by itself. With --percent N the rollout\n" +
			"offers the build to N % of the boxes at a time, and goes on only when all of them are healthy;\n" +
			"a rollback pauses it. Without targets: every box.",
		Args: cobra.MinimumNArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			t := store.Targets{All: tf.all, Groups: tf.groups, Devices: tf.devices}
			if !t.All && len(t.Groups) == 0 && len(t.Devices) == 0 {
				t.All = true
			}
			req := api.RolloutRequest{Version: version, Targets: t, Percent: percent}
			for _, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				b, err := c.AddBuild(ctx, version, f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				fmt.Fprintf(os.Stderr, "Published %s: %s build of %s (%d bytes, sha256 %s…)\n", path, b.Arch, b.Version, b.Size, b.SHA256[:12])
				req.Builds = append(req.Builds, b.SHA256)
			}
			st, err := c.StartRollout(ctx, req)
			if err != nil {
				return err
			}
			return printRollout(cmd, g, st)
		}),
	}
	publish.Flags().StringVar(&version, "version", "", "the builds' version, vMAJOR.MINOR.PATCH (boxes install only a newer one)")
	publish.Flags().IntVar(&percent, "percent", 100, "offer the build to this share of the boxes at a time (1-100)")
	_ = publish.MarkFlagRequired("version")
	tf.register(publish)

	var reason string
	ro := &cobra.Command{Use: "rollout", Short: "Follow, pause, resume or abort the rollout under way"}
	status := &cobra.Command{
		Use: "status", Short: "Show the rollout under way (or the latest) box by box", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			st, err := c.Rollout(ctx)
			if err != nil {
				return err
			}
			return printRollout(cmd, g, st)
		}),
	}
	ro.AddCommand(status)
	for _, s := range []struct{ use, short, state string }{
		{"pause", "Offer the build to no more boxes (boxes already offered go on)", store.RolloutPaused},
		{"resume", "Go on with a paused rollout", store.RolloutActive},
		{"abort", "End the rollout: boxes not yet updated are not offered the build any more", store.RolloutAborted},
	} {
		sub := &cobra.Command{
			Use: s.use, Short: s.short, Args: cobra.NoArgs,
			RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
				st, err := c.SetRolloutState(ctx, s.state, reason)
				if err != nil {
					return err
				}
				return printRollout(cmd, g, st)
			}),
		}
		sub.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
		ro.AddCommand(sub)
	}
	cmd.AddCommand(publish, ro)
	return cmd
}

// printRollout shows a rollout: one line for it, then a row per box.
func printRollout(cmd *cobra.Command, g *globals, st rollout.Status) error {
	w := cmd.OutOrStdout()
	if g.output == "json" {
		return printJSON(w, st)
	}
	fmt.Fprintf(w, "Rollout %s of %s: %s, step %d (%d %% a step), target boxes: %d", st.ID, st.Version, st.State, st.Step, st.Percent, len(st.Boxes))
	if st.Reason != "" {
		fmt.Fprintf(w, " — %s", st.Reason)
	}
	fmt.Fprintln(w)
	rows := [][]string{}
	for _, b := range st.Boxes {
		step := "-"
		if b.Step > 0 {
			step = strconv.Itoa(b.Step)
		}
		rows = append(rows, []string{b.Device, strconv.FormatBool(b.Online), orDash(b.Arch), orDash(b.Version), step, b.Status, orDash(b.Detail)})
	}
	return table(w, []string{"BOX", "ONLINE", "ARCH", "RUNS", "STEP", "UPDATE", "DETAIL"}, rows)
}
