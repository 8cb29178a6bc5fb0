package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// problemWords says one of a box's problems in plain words, in the user's
// language.
func problemWords(p protocol.Problem) string {
	var s string
	switch p.Code {
	case protocol.ProblemSoundCard:
		s = messages.T(messages.ProblemSoundCard, orDash(p.Subject), orDash(p.Detail))
	case protocol.ProblemOutput:
		s = messages.T(messages.ProblemOutput, orDash(p.Detail))
	case protocol.ProblemDiskFull:
		if p.Limit > 0 {
			s = messages.T(messages.ProblemDiskFullNeed, int64(p.Value), int64(p.Limit))
		} else {
			s = messages.T(messages.ProblemDiskFull, int64(p.Value))
		}
	case protocol.ProblemCacheWrite:
		s = messages.T(messages.ProblemCacheWrite, orDash(p.Subject), orDash(p.Detail))
	case protocol.ProblemHot:
		s = messages.T(messages.ProblemHot, p.Value, p.Limit)
	case protocol.ProblemClockJump:
		d := time.Duration(math.Abs(p.Value) * float64(time.Second)).Round(time.Second).String()
		if p.Value < 0 {
			s = messages.T(messages.ProblemClockBack, d)
		} else {
			s = messages.T(messages.ProblemClockAhead, d)
		}
	default: // a newer box's problem: its own words
		s = messages.T(messages.ProblemOther, p.Code, cmpOr(p.Detail, p.Subject, p.Level))
	}
	if !p.Since.IsZero() {
		s += " (" + messages.T(messages.ProblemSince, when(p.Since)) + ")"
	}
	return s
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

func cmpOr(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
