package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/backup"
	"github.com/loa-commune/loa/store"
)

// newBackup is `loa backup`: one backup of the data folder now, beside the
// controller's own every few minutes (backup.dir in its config).
func newBackup(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "backup --to DIR",
		Short: "Copy the controller's data (database, keys, media) to DIR now",
		Long: "Copies a consistent snapshot of the database, the signing keys and admin token, and the media,\n" +
			"agent builds and recordings to DIR (a USB disk or NAS folder), with a manifest written last.\n" +
			"It works while the controller runs. The controller does the same by itself every few minutes\n" +
			"when its config sets backup.dir. Put it back on a new PC with `loa restore`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usageErr(fmt.Errorf("give the folder to back up to with --to DIR"))
			}
			st, err := store.Open(cmd.Context(), filepath.Join(g.data, backup.DatabaseFile))
			if err != nil {
				return err
			}
			defer st.Close()
			m, err := backup.New(g.data, backup.Options{Dir: to}, st, slog.New(slog.DiscardHandler)).Once(cmd.Context(), true)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Backed up %s to %s: database %d kB, %d media, %d builds, %d recordings, %d keys.\n",
				g.data, to, m.Database.Size>>10, m.Files["media"], m.Files["builds"], m.Files["recordings"], len(m.Secrets))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the folder to back up to (a USB disk, a NAS share)")
	return cmd
}

// newRestore is `loa restore`: a backup onto a new PC.
func newRestore(g *globals) *cobra.Command {
	var from string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore --from DIR [--data DIR]",
		Short: "Put a backup into a new data folder, checking every file, so a new PC carries on",
		Long: "Checks every file of the backup in --from against its manifest, copies it into the data folder\n" +
			"(--data, which must have no database unless --force), and checks the database. Then start\n" +
			"`loa serve` with the same config (the same public addresses): boxes reconnect by themselves,\n" +
			"with the same keys, ids and tokens.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usageErr(fmt.Errorf("give the backup folder with --from DIR"))
			}
			sum, err := backup.Restore(cmd.Context(), from, g.data, force)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), sum)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Restored the backup of %s into %s in %s: %d boxes, %d recordings in the library, %d media files.\n",
				when(sum.MadeAt), g.data, sum.Took.Round(1e6), sum.Devices, sum.Media, sum.Files["media"])
			if sum.Config != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "The old controller's config is %s: copy it to /etc/loa/loa.yaml (or give it with --config).\n", sum.Config)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Start the controller with it: loa serve --data %s, with the same config as before.\n", g.data)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup folder (backup.dir of the old controller, or loa backup --to)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the database the data folder already has")
	return cmd
}
