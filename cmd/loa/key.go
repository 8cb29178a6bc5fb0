package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
)

func newKey(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Show or rotate the key boxes use to check that plans come from this controller",
		Long: "The controller signs every plan and config with its key (controller.key in its data folder);\n" +
			"boxes obey only what it signed. To change the key without visiting every box:\n" +
			"  loa key rotate   a new key signs alongside the old one, and every box is told to trust both\n" +
			"  loa key finish   once every box was online since: the new key becomes the only one",
	}
	show := func(cmd *cobra.Command, info api.KeysInfo) error {
		if g.output == "json" {
			return printJSON(cmd.OutOrStdout(), info)
		}
		printKeys(cmd.OutOrStdout(), info)
		return nil
	}
	var force bool
	finish := &cobra.Command{
		Use: "finish [--force]", Short: "End a rotation: the new key becomes the only one", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			info, err := c.FinishKeys(ctx, force)
			if err != nil {
				return err
			}
			return show(cmd, info)
		}),
	}
	finish.Flags().BoolVar(&force, "force", false, "finish even if some boxes were not online since the rotation started (they must be provisioned again)")
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Show the keys boxes trust and any rotation under way", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			info, err := c.Keys(ctx)
			if err != nil {
				return err
			}
			return show(cmd, info)
		}),
	}, &cobra.Command{
		Use: "rotate", Short: "Start a rotation: a new key signs alongside the current one", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			info, err := c.RotateKeys(ctx)
			if err != nil {
				return err
			}
			return show(cmd, info)
		}),
	}, finish)
	return cmd
}

func printKeys(w io.Writer, info api.KeysInfo) {
	fmt.Fprintf(w, "Boxes trust: %s\n", strings.Join(info.Trusted, ", "))
	if !info.Rotating {
		fmt.Fprintln(w, "No rotation under way.")
		return
	}
	fmt.Fprintf(w, "Rotation started %s.\n", when(*info.RotationStarted))
	if len(info.Waiting) > 0 {
		fmt.Fprintf(w, "Not heard from since (may not know the new key): %s\n", strings.Join(info.Waiting, ", "))
	} else {
		fmt.Fprintln(w, "Every box was online since: finish with `loa key finish`.")
	}
}
