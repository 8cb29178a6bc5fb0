package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
)

// globals are the flags every staff command shares.
type globals struct {
	server string
	token  string
	data   string
	output string
	ca     string // pki.go
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "loa",
		Short:         "Loa runs the loudspeakers of a commune",
		Long:          "Loa schedules announcements for the loudspeakers of a commune and reports what every box played.\nStart the controller with `loa serve`, or try everything on one machine with `loa demo`.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("LOA_SERVER", "http://127.0.0.1:8080"), "controller URL (env LOA_SERVER)")
	pf.StringVar(&g.token, "token", os.Getenv("LOA_TOKEN"), "API token (env LOA_TOKEN); by default the admin token read from DATA/admin.token")
	pf.StringVar(&g.data, "data", envOr("LOA_DATA", "loa-data"), "the controller's data folder (env LOA_DATA)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json (report also csv)")
	pf.StringVar(&g.ca, "ca", os.Getenv("LOA_CA"), "CA certificate that signed an https:// controller's (env LOA_CA); by default DATA/ca.crt if there is one")
	root.AddCommand(newServe(g), newDemo(), newDevice(g), newGroup(g), newMedia(g), newAnnounce(g),
		newSchedule(g), newEmergency(g), newAlert(g), newBench(g), newStatus(g), newReport(g), newToken(g), newKey(g))
	root.AddCommand(newBroker(g), newLive(g), newRelay(g), newAgent(g))
	root.AddCommand(newPKI(g), newBackup(g), newRestore(g))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func usageErr(err error) error { return &codedError{code: exitUsage, err: err} }

// client builds the API client, finding the admin token when none is given.
func (g *globals) client() (*api.Client, error) {
	switch g.output {
	case "table", "json", "csv":
	default:
		return nil, usageErr(fmt.Errorf("unknown output %q: use -o table or -o json", g.output))
	}
	tok := strings.TrimSpace(g.token)
	if tok == "" {
		b, err := os.ReadFile(filepath.Join(g.data, auth.AdminTokenFile))
		if err != nil {
			return nil, errors.New(messages.T(messages.NoToken))
		}
		tok = strings.TrimSpace(string(b))
	}
	c := api.NewClient(g.serverURL(), tok)
	if err := g.useTLS(c); err != nil {
		return nil, err
	}
	return c, nil
}

// staff wraps a command body that needs the API client.
func (g *globals) staff(fn func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		if site, err := c.Site(cmd.Context()); err == nil {
			if loc, err := time.LoadLocation(site.Timezone); err == nil {
				displayZone = loc
			}
		}
		return g.explainTLS(fn(cmd.Context(), c, cmd, args))
	}
}
