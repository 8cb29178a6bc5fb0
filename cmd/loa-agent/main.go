// Command loa-agent runs on each loudspeaker box: it follows the plans the
// controller publishes, keeps their media in a local cache, plays each item
// on time and reports what it did. See the device package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	// The box reads quiet hours in the site's time zone; a Raspberry Pi
	// image may have no zone database, so the agent carries its own.
	_ "time/tzdata"

	"github.com/loa-commune/loa/audio"
	// The controller sends media as Ogg Opus; libopus decodes it.
	_ "github.com/loa-commune/loa/audio/opus"
	"github.com/loa-commune/loa/audio/otosink"
	"github.com/loa-commune/loa/device"
	"github.com/loa-commune/loa/internal/lograte"
	"github.com/loa-commune/loa/internal/sdnotify"
	"github.com/loa-commune/loa/selfupdate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	self, _ := selfupdate.Executable() // before a package upgrade replaces it
	err := run(ctx, os.Args[1:], os.Stderr)
	var exit exitStatus
	switch {
	case err == nil:
	case errors.As(err, &exit) && int(exit) != selfupdate.ExitRestart:
		stop()
		os.Exit(int(exit))
	case errors.Is(err, device.ErrRestart), errors.As(err, &exit):
		// A new build is installed (by this process, or by the build it
		// supervised, which exited ExitRestart), or the sound card must be
		// opened by a new process: start again through the
		// launcher, which runs it on trial (systemd or a supervisor
		// restarts on ExitRestart; otherwise the launcher is exec'd).
		stop()
		code, err := selfupdate.Restart(self, os.Args, os.Environ())
		if err != nil {
			fmt.Fprintln(os.Stderr, "loa-agent:", err)
		}
		os.Exit(code)
	default:
		fmt.Fprintln(os.Stderr, "loa-agent:", err)
		stop()
		os.Exit(1)
	}
}

// exitStatus is the status to exit with, from a build the launcher
// supervised.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// launch lets selfupdate decide which agent build runs (see
// selfupdate.Launcher): Decision.Run is true when this process goes on as
// the agent; otherwise it supervised a trial build and Code is that build's
// exit status. It may also exec a newer build and not return.
func launch(ctx context.Context, cfg device.Config, args []string, logger *slog.Logger) selfupdate.Decision {
	self, err := selfupdate.Executable()
	if err != nil {
		logger.Error("agent updates: cannot find this program", "err", err)
		return selfupdate.Decision{Run: true}
	}
	l := &selfupdate.Launcher{
		Dir:          filepath.Join(cfg.Cache, "agent"),
		Version:      device.Version,
		Path:         self,
		Args:         append([]string{self}, args...),
		Env:          os.Environ(),
		TrialTimeout: cfg.UpdateTrial,
		Log:          logger,
	}
	return l.Launch(ctx)
}

// run parses args, loads the config and runs the agent until ctx is done;
// `loa-agent enroll` fetches the config first (enroll.go).
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "enroll" {
		return runEnroll(ctx, args[1:], os.Stdout, stderr)
	}
	fs := flag.NewFlagSet("loa-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loa-agent --config FILE | --id ID --site SITE --broker tcp://HOST:1883 --server http://HOST:8080 --token SECRET [flags]")
		fmt.Fprintln(stderr, "Flags override the config file.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "agent config file (YAML), as written by `loa device add ID --write-config FILE`")
	var (
		id       = fs.String("id", "", "device id")
		site     = fs.String("site", "", "site (commune) id")
		brokers  urlList
		server   = fs.String("server", "", "controller URL for media downloads, http://HOST:8080")
		token    = fs.String("token", "", "device secret (MQTT and HTTP password)")
		cache    = fs.String("cache", "", "folder for state and the media cache (default "+device.DefaultCacheDir+")")
		output   = fs.String("output", "", "sound output: alsa, alsa:DEVICE, wav:DIR or null (default "+device.DefaultOutput+")")
		logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")
		ctlKey   = fs.String("controller-key", "", "the controller's public key, ed25519:… (`loa device add` writes it into the config file)")
		skew     = fs.Duration("clock-skew", 0, "run the agent's clock this far off the system clock (e.g. 200ms, -1h): to try time sync")
	)
	fs.Var(&brokers, "broker", "MQTT broker URL, tcp://HOST:1883; repeat it, or separate URLs with commas, for the nodes of a cluster (tried in order)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: every setting is a flag (see --help)", fs.Arg(0))
	}
	if *configPath == "" && fs.NFlag() == 0 {
		return errors.New("no configuration: pass --config FILE (written by `loa device add ID --write-config FILE`), or --id, --site, --broker, --server and --token")
	}

	cfg := device.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = device.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "id":
			cfg.ID = *id
		case "site":
			cfg.Site = *site
		case "broker": // replaces broker: and brokers: of the file
			cfg.Broker, cfg.Brokers = strings.Join(brokers, ","), nil
		case "server":
			cfg.Server = *server
		case "token":
			cfg.Token = *token
		case "cache":
			cfg.Cache = *cache
		case "output":
			cfg.Output = *output
		case "controller-key":
			cfg.ControllerKeys = []string{*ctlKey}
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	// journald and the SD card get a line that repeats 5 times a minute,
	// then a summary.
	logs := lograte.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), lograte.Options{})
	defer logs.Close()
	logger := slog.New(logs)
	// Before anything is opened: a newer build or one on trial may run
	// instead of this one.
	if d := launch(ctx, cfg, args, logger); !d.Run {
		return exitStatus(d.Code)
	}

	sink, err := openSink(cfg)
	if err != nil {
		return err
	}
	defer sink.Close()
	var clock device.Clock = device.SystemClock{}
	if *skew != 0 {
		clock = device.SkewedClock{Skew: *skew}
	}
	loopClock := device.NewLoopClock(clock)
	agent, err := device.New(cfg, sink, logger, loopClock)
	if err != nil {
		return err
	}
	go notifySystemd(ctx, loopClock, logger)
	return agent.Run(ctx)
}

// notifySystemd tells systemd (Type=notify) the agent is ready at its loop's
// first turn, then pings the watchdog while the loop keeps turning (at least
// once a second), and says it is stopping when ctx ends. Without systemd it
// does nothing.
func notifySystemd(ctx context.Context, loop *device.LoopClock, logger *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-loop.Started():
	}
	if err := sdnotify.Ready(); err != nil {
		logger.Warn("systemd notify", "err", err)
	}
	if err := sdnotify.Watchdog(ctx, func() bool { return loop.TurnedWithin(10 * time.Second) }); err != nil {
		logger.Error("systemd watchdog", "err", err)
		return
	}
	<-ctx.Done()
	_ = sdnotify.Stopping()
}

// urlList is a flag that may be repeated and takes comma-separated values.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(s string) error {
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			*l = append(*l, u)
		}
	}
	return nil
}

// openSink makes the sound output the config names.
func openSink(cfg device.Config) (audio.Sink, error) {
	out, err := device.ParseOutput(cfg.Output)
	if err != nil {
		return nil, err
	}
	switch out.Kind {
	case device.OutputWAV:
		s, err := audio.NewWAVSink(out.Arg, audio.DefaultFormat, true)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", cfg.Output, err)
		}
		return s, nil
	case device.OutputNull:
		return audio.NewNullSink(audio.DefaultFormat, true), nil
	}
	if out.Arg != "" {
		if err := useALSADevice(out.Arg, cfg.Cache); err != nil {
			return nil, err
		}
	}
	// A card that does not open now is no reason to stop: the box runs,
	// says so in its state (`loa status`) and plays once the card answers.
	s := otosink.NewLazy(audio.DefaultFormat)
	if err := s.Ready(); errors.Is(err, otosink.ErrNoCgo) {
		return nil, fmt.Errorf("open sound card: %w (use --output null or --output wav:DIR to run without one)", err)
	}
	return s, nil
}

// systemALSAConfig is alsa-lib's main configuration file on Debian.
const systemALSAConfig = "/usr/share/alsa/alsa.conf"

// useALSADevice makes dev ALSA's default PCM for this process: oto only
// opens "default", so a small config file that redefines it is appended to
// ALSA's configuration path.
func useALSADevice(dev, dir string) error {
	for _, r := range dev {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":,_-.=", r)) {
			return fmt.Errorf("--output alsa:%s: the ALSA device name may only use letters, digits and : , _ - . =", dev)
		}
	}
	if p := os.Getenv("ALSA_CONFIG_PATH"); p != "" {
		return fmt.Errorf("--output alsa:%s: ALSA_CONFIG_PATH is set (%s); choose the device there and use --output alsa", dev, p)
	}
	if _, err := os.Stat(systemALSAConfig); err != nil {
		return fmt.Errorf("--output alsa:%s: %w (is ALSA installed?)", dev, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--output alsa:%s: %w", dev, err)
	}
	conf := filepath.Join(dir, "alsa-device.conf")
	body := fmt.Sprintf("# Written by loa-agent for --output alsa:%s\npcm.!default {\n\ttype plug\n\tslave.pcm \"%s\"\n}\n", dev, dev)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return fmt.Errorf("--output alsa:%s: %w", dev, err)
	}
	return os.Setenv("ALSA_CONFIG_PATH", systemALSAConfig+":"+conf)
}
