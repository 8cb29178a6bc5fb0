// Command trialbuild stands in for a new agent build in the selfupdate
// tests. Its arguments are the store's folder and a file to write what it
// saw into; LOA_TEST_TRIAL says how it behaves:
//
//   - confirm: confirms its trial, then runs until SIGTERM and exits 7;
//   - hang: runs until SIGTERM (exits 0) without confirming;
//   - exit1: exits 1 at once.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/loa-commune/loa/selfupdate"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	dir, record := os.Args[1], os.Args[2]
	seen := fmt.Sprintf("args=%s\n%s=%s\n%s=%s\nWATCHDOG_PID=%s\n", strings.Join(os.Args[1:], " "),
		selfupdate.EnvLauncher, os.Getenv(selfupdate.EnvLauncher),
		selfupdate.EnvTrial, os.Getenv(selfupdate.EnvTrial), os.Getenv("WATCHDOG_PID"))
	if err := os.WriteFile(record, []byte(seen), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch os.Getenv("LOA_TEST_TRIAL") {
	case "confirm":
		s, err := selfupdate.Open(dir)
		if err == nil {
			err = s.Confirm(os.Getenv(selfupdate.EnvTrial))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "confirm:", err)
			os.Exit(2)
		}
		<-sigs
		os.Exit(7)
	case "hang":
		<-sigs
		os.Exit(0)
	default:
		os.Exit(1)
	}
}
