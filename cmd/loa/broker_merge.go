package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/brokerconf"
	"github.com/loa-commune/loa/messages"
)

// newBrokerMerge is `loa broker merge`: one broker for several sites.
func newBrokerMerge(g *globals) *cobra.Command {
	var format, out, brokerDir string
	cmd := &cobra.Command{
		Use:   "merge --out DIR SITE-DIR...",
		Short: "Join the broker files of several sites (communes) into those of one shared broker",
		Long: "A province runs one broker, or one cluster, for many communes, each with its own controller and topic\n" +
			"root loa/<site>. Each controller writes its site's files with `loa broker config` (a folder per site);\n" +
			"this joins those folders into the files of the one broker: for mosquitto one password file and one ACL,\n" +
			"for NATS one account per site and the accounts block that includes them. Each site's rules name only\n" +
			"its own topics, so sites cannot see or address each other's boxes. A username may be in one site only:\n" +
			"give boxes ids unique across the sites (the commune's code first) and each controller its own\n" +
			"broker_username. Run it again, and reload the broker, whenever a site's files change.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			if out == "" {
				return usageErr(errors.New("say where to write the files: --out DIR"))
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			res := brokerResult{Dir: abs, Format: format, ControllerUser: fmt.Sprintf("one per site, %d sites", len(dirs)), Missing: []string{}}
			switch format {
			case "mosquitto":
				if brokerDir == "" {
					brokerDir = abs
				}
				files, err := brokerconf.MergeMosquitto(dirs, brokerDir)
				if err != nil {
					return err
				}
				if res.Changed, err = files.Write(abs); err != nil {
					return err
				}
				res.Files = []string{brokerconf.PasswdFile, brokerconf.ACLFile, brokerconf.ConfFile}
				res.Boxes, res.Conf = nonNil(files.Boxes), string(files.Conf)
			case "nats":
				acc, err := brokerconf.MergeNATS(dirs)
				if err != nil {
					return err
				}
				if res.Changed, err = acc.Write(abs); err != nil {
					return err
				}
				for name := range acc.Files {
					res.Files = append(res.Files, name)
				}
				slices.Sort(res.Files)
				res.Files = append(res.Files, brokerconf.NATSConfFile)
				res.Boxes, res.Conf = nonNil(acc.Boxes), string(acc.Conf)
			default:
				return usageErr(errors.New(messages.T(messages.BrokerFormat, format)))
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return res.print(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "mosquitto", "broker whose files to merge: mosquitto or nats")
	f.StringVar(&out, "out", "", "folder to write the merged files to (created if missing)")
	f.StringVar(&brokerDir, "broker-dir", "", "with mosquitto: the folder the files will be in on the broker's machine (default: --out)")
	return cmd
}
