package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/brokerconf"
	"github.com/loa-commune/loa/controller"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

func newBroker(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "broker", Short: "Make an external MQTT broker admit only the controller and the registered boxes"}
	var req brokerRequest
	var file, site string
	config := &cobra.Command{
		Use:   "config --out DIR",
		Short: "Write an external broker's password and ACL files from the registered boxes",
		Long: "Writes mosquitto's password file (loa.passwd), ACL file (loa.acl) and the mosquitto.conf lines that load\n" +
			"them (loa.conf) into DIR, from the controller's database (--data) and config (--config, for site and\n" +
			"broker_username/broker_password). Run it on the controller's machine, copy DIR to the broker's machine\n" +
			"(--broker-dir) and reload mosquitto. Run it again, and reload, after adding or removing boxes or changing\n" +
			"groups: each box may read only its own groups' plans (unless --any-group).\n" +
			"Boxes registered before Loa kept a broker password hash are left out and named on stderr.\n" +
			"With --format nats: the site's NATS account (loa-account.conf: the controller and one user per box, each\n" +
			"with the same rules as NATS subject permissions, MQTT connections only) and loa-nats.conf, which includes\n" +
			"it, for every node of the cluster; reload the nodes after. NATS needs bcrypt hashes, which `loa device add`\n" +
			"does not store: pass each new box's config with --box-config FILE once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.format != "mosquitto" && req.format != "nats" {
				return usageErr(errors.New(messages.T(messages.BrokerFormat, req.format)))
			}
			if req.format != "nats" && len(req.boxConfigs) > 0 {
				return usageErr(errors.New("--box-config is for --format nats: mosquitto's hashes are stored at `loa device add`"))
			}
			if req.out == "" {
				return usageErr(errors.New("say where to write the files: --out DIR"))
			}
			cfg := controller.Defaults()
			if file != "" {
				if err := cfg.LoadFile(file); err != nil {
					return err
				}
			}
			cfg.LoadEnv()
			if cmd.Flags().Changed("site") {
				cfg.Site = site
			}
			if cmd.Flags().Changed("data") || os.Getenv("LOA_DATA") != "" || file == "" {
				cfg.Data = g.data
			}
			req.site, req.data, req.user, req.password = cfg.Site, cfg.Data, cfg.BrokerUsername, cfg.BrokerPassword
			write := writeBrokerConfig
			if req.format == "nats" {
				write = writeNATSConfig
			}
			res, err := write(cmd.Context(), req, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return res.print(cmd.OutOrStdout())
		},
	}
	f := config.Flags()
	f.StringVar(&req.format, "format", "mosquitto", "broker whose files to write: mosquitto, or nats (an account per site, for a NATS cluster with MQTT)")
	f.StringArrayVar(&req.boxConfigs, "box-config", nil, "with --format nats: a box's config as `loa device add --write-config` wrote it, to store a NATS (bcrypt) hash of its token (repeat for each new box)")
	f.StringVar(&req.out, "out", "", "folder to write the files to (created if missing)")
	f.StringVar(&req.brokerDir, "broker-dir", "", "the folder the files will be in on the broker's machine (default: --out)")
	f.BoolVar(&req.anyGroup, "any-group", false, "let every box read every group's plan, so group changes need no new files")
	f.StringVar(&file, "config", "", "the controller's YAML config (site, broker_username, broker_password)")
	f.StringVar(&site, "site", "", "site id, as `loa serve` has it (default from --config, LOA_SITE or commune)")
	cmd.AddCommand(config, newBrokerMerge(g))
	return cmd
}

// brokerRequest is what `loa broker config` was asked for.
type brokerRequest struct {
	format, out, brokerDir string
	anyGroup               bool
	boxConfigs             []string // agent configs whose tokens get a NATS hash
	site, data             string
	user, password         string // the controller's broker credentials
}

// begin checks that the controller's broker password was given and returns
// the absolute output folder and the controller's username (as the
// controller connects).
func (req brokerRequest) begin() (out, user string, err error) {
	if req.password == "" {
		return "", "", errors.New(messages.T(messages.BrokerNoPassword, auth.NewToken()))
	}
	if out, err = filepath.Abs(req.out); err != nil {
		return "", "", err
	}
	user = req.user
	if user == "" {
		user = auth.ControllerUser
	}
	return out, user, nil
}

// brokerResult is what it wrote.
type brokerResult struct {
	Dir            string   `json:"dir"`
	Files          []string `json:"files"`
	Changed        bool     `json:"changed"`
	ControllerUser string   `json:"controller_user"`
	Boxes          []string `json:"boxes"`
	Missing        []string `json:"missing"`
	Conf           string   `json:"conf"`
	Format         string   `json:"format"`
}

// writeBrokerConfig reads the boxes and their broker hashes from the
// controller's database and writes the broker's files. Warnings go to warn.
func writeBrokerConfig(ctx context.Context, req brokerRequest, warn io.Writer) (brokerResult, error) {
	out, user, err := req.begin()
	if err != nil {
		return brokerResult{}, err
	}
	dir := req.brokerDir
	if dir == "" {
		dir = out
	}
	prev, err := os.ReadFile(filepath.Join(out, brokerconf.PasswdFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return brokerResult{}, fmt.Errorf("read the old password file: %w", err)
	}
	ctrlHash, err := brokerconf.HashFor(prev, user, req.password)
	if err != nil {
		return brokerResult{}, fmt.Errorf("controller broker password: %w", err)
	}
	db := filepath.Join(req.data, "loa.db")
	devices, found, err := brokerDevices(ctx, db)
	if err != nil {
		return brokerResult{}, err
	}
	if !found {
		// A wrong --data must not shut every box out at the next reload.
		if n := len(brokerconf.ParsePasswd(prev)) - 1; n > 0 {
			return brokerResult{}, errors.New(messages.T(messages.BrokerWrongData, db, filepath.Join(out, brokerconf.PasswdFile), n))
		}
		fmt.Fprintln(warn, messages.T(messages.BrokerNoDatabase, db))
	}
	files, err := brokerconf.Mosquitto(brokerconf.Options{
		Site: req.site, ControllerUser: user, ControllerHash: ctrlHash, Devices: devices, AnyGroup: req.anyGroup, Dir: dir,
	})
	if err != nil {
		return brokerResult{}, fmt.Errorf("broker files: %w", err)
	}
	if len(files.Missing) > 0 {
		fmt.Fprintln(warn, messages.T(messages.BrokerLeftOut, strings.Join(files.Missing, ", ")))
	}
	changed, err := files.Write(out)
	if err != nil {
		return brokerResult{}, err
	}
	return brokerResult{
		Dir: out, Files: []string{brokerconf.PasswdFile, brokerconf.ACLFile, brokerconf.ConfFile}, Changed: changed,
		ControllerUser: user, Boxes: nonNil(files.Boxes), Missing: nonNil(files.Missing), Conf: string(files.Conf),
		Format: "mosquitto",
	}, nil
}

// brokerDevices lists the registered boxes with their groups and broker
// hashes. A missing database (the controller never ran) has none and found
// is false; the database is not created here, so a wrong --data does not
// leave one behind.
func brokerDevices(ctx context.Context, path string) (devices []brokerconf.Device, found bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		return nil, true, err
	}
	defer st.Close()
	ds, err := st.Devices(ctx)
	if err != nil {
		return nil, true, err
	}
	hashes, err := st.BrokerHashes(ctx)
	if err != nil {
		return nil, true, err
	}
	for _, d := range ds {
		devices = append(devices, brokerconf.Device{ID: d.ID, Groups: d.Groups, Hash: hashes[d.ID]})
	}
	return devices, true, nil
}

func (r brokerResult) print(w io.Writer) error {
	if r.Format == "nats" {
		return r.printNATS(w)
	}
	if r.Changed {
		fmt.Fprintf(w, "Wrote %s in %s: the controller (%s) and %d boxes.\n", strings.Join(r.Files, ", "), r.Dir, r.ControllerUser, len(r.Boxes))
	} else {
		fmt.Fprintf(w, "Nothing changed in %s (the controller and %d boxes): no reload needed.\n", r.Dir, len(r.Boxes))
	}
	fmt.Fprintf(w, "Add these lines to mosquitto.conf, or copy %s into /etc/mosquitto/conf.d/:\n\n", brokerconf.ConfFile)
	for line := range strings.SplitSeq(strings.TrimSpace(r.Conf), "\n") {
		if !strings.HasPrefix(line, "#") {
			fmt.Fprintln(w, "  "+line)
		}
	}
	_, err := fmt.Fprintln(w, "\nThen reload mosquitto (systemctl reload mosquitto, or kill -HUP its pid). Do this again after\n"+
		"adding or removing boxes or changing groups.")
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
