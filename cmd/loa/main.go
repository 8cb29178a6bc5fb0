// Command loa is Loa's controller (`loa serve`), its demo (`loa demo`) and the
// staff CLI that talks to the controller's HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // the site's zone must load on a box without tzdata
)

// Exit codes the CLI contract promises.
const (
	exitError   = 1 // anything went wrong
	exitUsage   = 2 // the command line is wrong
	exitFailed  = 3 // --wait: some box did not play it
	exitTimeout = 4 // --wait: not every box answered in time
)

// exitError carries a specific exit code.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loa:", err)
		var ce *codedError
		if errors.As(err, &ce) {
			os.Exit(ce.code)
		}
		os.Exit(exitError)
	}
}

func run(ctx context.Context, args []string) error {
	root := newRoot()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
