package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/enrol"
)

// DefaultConfigPath is where the Debian package's service reads the config.
const DefaultConfigPath = "/etc/loa/agent.yaml"

// serviceUser owns the config the packaged service reads.
const serviceUser = "loa"

// runEnroll is `loa-agent enroll URL CODE`: fetch this box's config with a
// one-time code, write it (mode 0600) and start the service.
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("loa-agent enroll", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: loa-agent enroll https://CONTROLLER:8443 CODE [--config FILE] [--no-start] [--force]")
		fmt.Fprintln(stderr, "The code comes from `loa device add ID --enroll` (or `loa device enroll ID`) on the controller.")
		fset.PrintDefaults()
	}
	path := fset.String("config", DefaultConfigPath, "where to write the config")
	noStart := fset.Bool("no-start", false, "only write the config; do not (re)start the loa-agent service")
	force := fset.Bool("force", false, "replace an existing config (the box was enrolled before)")
	if err := fset.Parse(reorderFlags(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fset.NArg() < 2 {
		fset.Usage()
		return errors.New("give the controller's address and the code: loa-agent enroll https://CONTROLLER:8443 CODE")
	}
	// The code may be typed in groups with spaces: take every word after the URL.
	code, err := enrol.ParseCode(strings.Join(fset.Args()[1:], ""))
	if err != nil {
		return err
	}
	if old, err := device.LoadConfig(*path); err == nil && !*force {
		return fmt.Errorf("%s already holds the config of box %s: to enrol this box again, add --force", *path, old.ID)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) && !*force {
		return fmt.Errorf("%s exists but cannot be read (%v): to replace it, add --force", *path, err)
	}
	config, _, err := enrol.Fetch(ctx, fset.Arg(0), code)
	if err != nil {
		return err
	}
	cfg, err := writeConfig(*path, config)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Enrolled as box %s of %s; its config is in %s (readable by the agent only).\n", cfg.ID, cfg.Site, *path)
	if *noStart {
		fmt.Fprintf(stdout, "Start the agent with: loa-agent --config %s\n", *path)
		return nil
	}
	return startService(ctx, stdout, *path)
}

// reorderFlags puts flags before the positional arguments, so that
// `enroll URL CODE --no-start` works as well as `enroll --no-start URL CODE`.
func reorderFlags(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-config" || a == "--config") && i+1 < len(args): // takes a value
			flags = append(flags, a, args[i+1])
			i++
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

// writeConfig checks config and writes it to path atomically, mode 0600,
// owned by the service's user when there is one.
func writeConfig(path string, config []byte) (device.Config, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return device.Config{}, fmt.Errorf("cannot make %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".agent-*.yaml")
	if err != nil {
		return device.Config{}, fmt.Errorf("cannot write the config into %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return device.Config{}, err
	}
	if _, err := tmp.Write(config); err != nil {
		tmp.Close()
		return device.Config{}, fmt.Errorf("cannot write the config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return device.Config{}, fmt.Errorf("cannot write the config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return device.Config{}, fmt.Errorf("cannot write the config: %w", err)
	}
	cfg, err := device.LoadConfig(tmp.Name())
	if err != nil {
		return device.Config{}, fmt.Errorf("the controller sent a config this agent cannot use: %w", err)
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup(serviceUser); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(tmp.Name(), uid, gid); err != nil {
				return device.Config{}, err
			}
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return device.Config{}, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return cfg, nil
}

// startService enables and restarts the loa-agent service when systemd
// runs this machine; otherwise it says how to start the agent.
func startService(ctx context.Context, stdout io.Writer, path string) error {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		fmt.Fprintf(stdout, "systemd is not running here: start the agent with: loa-agent --config %s\n", path)
		return nil
	}
	for _, args := range [][]string{{"enable", "loa-agent"}, {"restart", "loa-agent"}} {
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("the config is written, but `systemctl %s` failed: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	fmt.Fprintln(stdout, "The loa-agent service is started; `loa status` on the controller shows the box within a minute.")
	return nil
}
