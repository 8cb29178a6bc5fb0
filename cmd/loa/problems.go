package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// problemWords says one of a box's problems in plain words, in the user's
// language.
func problemWords(p protocol.Problem) string {
	s := messages.Problem(os.Getenv("LOA_LANG"), p)
	if !p.Since.IsZero() {
		s += " (" + messages.T(messages.ProblemSince, when(p.Since)) + ")"
	}
	return s
}

// reasonWords says why a box gave its answer, in the user's language
// where the box sent codes for it.
func reasonWords(d store.Delivery) string {
	return messages.Reason(os.Getenv("LOA_LANG"), d.Why, d.Reason)
}

// problemCodes is the short PROBLEMS column: the codes, errors first.
func problemCodes(ps []protocol.Problem) string {
	codes := make([]string, len(ps))
	for i, p := range ps {
		codes[i] = p.Code
	}
	return orDash(strings.Join(codes, ","))
}

// printProblems lists, under the status table, each box's problems in
// plain words.
func printProblems(w io.Writer, devices []store.DeviceStatus) {
	first := true
	for _, d := range devices {
		for _, p := range d.Problems {
			if first {
				fmt.Fprintln(w)
				fmt.Fprintln(w, messages.T(messages.StatusProblems))
				first = false
			}
			fmt.Fprintf(w, "  %s: %s\n", d.ID, problemWords(p))
		}
	}
	if !first {
		fmt.Fprintln(w)
	}
}
