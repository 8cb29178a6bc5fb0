package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
	"github.com/loa-commune/loa/timesource"
)

// defaultLimit is how many rows a table shows unless --limit says otherwise.
const defaultLimit = 50

const pagingHelp = "\n\nA table shows one page (--limit, 50 by default) and ends with the counts and how to get the next page\n" +
	"(--after, the last row's key: pages follow the key, so boxes added or removed meanwhile shift nothing).\n" +
	"-o json without --limit or --after prints every matching row as an array, fetched a page at a time;\n" +
	"with either it prints one page: {rows, total, offset, counts, next}."

// pageFlags are the paging flags status and report share.
type pageFlags struct {
	limit int
	after string
}

func (p *pageFlags) add(fs *pflag.FlagSet) {
	fs.IntVar(&p.limit, "limit", defaultLimit, fmt.Sprintf("rows per page, 1 to %d", store.MaxPageSize))
	fs.StringVar(&p.after, "after", "", "start after this key: the one the page before printed as next")
}

// paged reports whether one page was asked for, rather than every row.
func (p *pageFlags) paged(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("limit") || cmd.Flags().Changed("after")
}

func (p *pageFlags) check() error {
	if p.limit < 1 || p.limit > store.MaxPageSize {
		return usageErr(messages.New(messages.BadLimit, store.MaxPageSize, strconv.Itoa(p.limit)))
	}
	return nil
}

// footer says which rows a table showed and how to get the next ones.
func footer(w io.Writer, offset, shown, total int, next string) {
	if total == 0 {
		fmt.Fprintln(w, messages.T(messages.PageEmpty))
		return
	}
	line := messages.T(messages.PageShowing, min(offset+1, total), offset+shown, total)
	if next != "" {
		line += "; " + messages.T(messages.PageNext, next)
	}
	fmt.Fprintln(w, line)
}

// countList writes counts as "idle 9000, playing 500", known keys first in
// their order, then any other.
func countList(counts map[string]int, order []string) string {
	var parts []string
	for _, k := range order {
		if n, ok := counts[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	var rest []string
	for k := range counts {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// jsonArray writes the items each yields as one JSON array, as they come.
func jsonArray(w io.Writer, each func(emit func(any) error) error) error {
	first := true
	emit := func(v any) error {
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		sep := ",\n  "
		if first {
			sep, first = "[\n  ", false
		}
		_, err = fmt.Fprintf(w, "%s%s", sep, b)
		return err
	}
	if err := each(emit); err != nil {
		return err
	}
	if first {
		_, err := fmt.Fprintln(w, "[]")
		return err
	}
	_, err := fmt.Fprint(w, "\n]\n")
	return err
}

func newStatus(g *globals) *cobra.Command {
	var q api.StatusQuery
	var pf pageFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the boxes: online, state, what they play, volume, last seen, problems",
		Long: "Show the boxes: online, state, what they play, volume, last seen, by id, and what is wrong with\n" +
			"any of them (sound card, memory card, temperature, clock) in plain words. TIME is where each box's\n" +
			"time comes from: controller, rtc, nitz (the modem), gps, system (NTP), saved (only a lower bound:\n" +
			"timed items wait) or none; boxes not on the controller's time are listed in plain words.\n" +
			"Filter with --group, --state (" + strings.Join(store.StatusStates, ", ") + "; online is every state but offline)\n" +
			"and --id-prefix." + pagingHelp,
		Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			if err := pf.check(); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			q.After = pf.after
			if g.output == "json" && !pf.paged(cmd) {
				return jsonArray(w, func(emit func(any) error) error {
					return c.EachStatusPage(ctx, q, func(p store.StatusPage) error {
						for _, d := range p.Devices {
							if err := emit(d); err != nil {
								return err
							}
						}
						return nil
					})
				})
			}
			q.Limit = pf.limit
			page, err := c.StatusPage(ctx, q)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(w, page)
			}
			rows := [][]string{}
			for _, s := range page.Devices {
				playing := "-"
				if s.Playing != nil {
					playing = *s.Playing
				}
				rows = append(rows, []string{s.ID, orDash(strings.Join(s.Groups, ",")), strconv.FormatBool(s.Online), s.State, playing, strconv.Itoa(s.Volume), orDash(s.Version), orDash(s.TimeSource), when(s.LastSeen), problemCodes(s.Problems)})
			}
			if len(rows) > 0 {
				if err := table(w, []string{"BOX", "GROUPS", "ONLINE", "STATE", "PLAYING", "VOLUME", "VERSION", "TIME", "LAST SEEN", "PROBLEMS"}, rows); err != nil {
					return err
				}
			}
			printProblems(w, page.Devices)
			printTimeSources(w, page.Devices)
			fmt.Fprintln(w, messages.T(messages.StatusCounts, countList(page.Counts, store.StatusStates[1:])))
			footer(w, page.Offset, len(page.Devices), page.Total, page.Next)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&q.Group, "group", "", "only the boxes in this group")
	f.StringVar(&q.State, "state", "", "only the boxes in this state: "+strings.Join(store.StatusStates, ", "))
	f.StringVar(&q.IDPrefix, "id-prefix", "", "only the boxes whose id starts with this")
	pf.add(f)
	return cmd
}

func newReport(g *globals) *cobra.Command {
	var q api.ReportQuery
	var pf pageFlags
	var audit, sessions bool
	cmd := &cobra.Command{
		Use:   "report",
		Short: "What every box did with every item: played, failed, missed...",
		Long: "What every box did with every item: played, failed, missed..., oldest first.\n" +
			"Filter with --since/--until (when the item was due), --group (boxes now in it), --status\n" +
			"(" + strings.Join(store.ReportStatuses, ", ") + ") and --announcement.\n" +
			"A table also sums up each announcement on the page over all its rows within the filters." + pagingHelp +
			"\n-o csv, like -o json, prints every matching row unless --limit or --after is given.",
		Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if audit {
				return printAudit(ctx, c, g.output, q.Since, q.Until, w)
			}
			if sessions {
				return printSessions(ctx, c, g.output, q.Since, q.Until, w)
			}
			if err := pf.check(); err != nil {
				return err
			}
			q.After = pf.after
			header := []string{"ITEM", "ANNOUNCEMENT", "DEVICE", "STATUS", "STARTED_AT", "FINISHED_AT", "REASON", "EXERCISE", "TEXT"}
			csvRow := func(r store.Delivery) []string {
				ex := ""
				if r.Exercise {
					ex = "exercise"
				}
				return []string{r.Item, r.Announcement, r.Device, r.Status, rfc(r.StartedAt), rfc(r.FinishedAt), r.Reason, ex, r.Text,
					strconv.FormatInt(r.HeardMS, 10), strconv.FormatInt(r.MissedMS, 10)}
			}
			csvHeader := make([]string, len(header), len(header)+2)
			for i := range header {
				csvHeader[i] = strings.ToLower(header[i])
			}
			csvHeader = append(csvHeader, "heard_ms", "missed_ms") // of a live session
			if !pf.paged(cmd) && (g.output == "json" || g.output == "csv") {
				if g.output == "json" {
					return jsonArray(w, func(emit func(any) error) error {
						return c.EachReportPage(ctx, q, func(p store.ReportPage) error {
							for _, r := range p.Rows {
								if err := emit(r); err != nil {
									return err
								}
							}
							return nil
						})
					})
				}
				var out [][]string
				if err := c.EachReportPage(ctx, q, func(p store.ReportPage) error {
					for _, r := range p.Rows {
						out = append(out, csvRow(r))
					}
					return nil
				}); err != nil {
					return err
				}
				return csvOut(w, csvHeader, out)
			}
			q.Limit = pf.limit
			page, err := c.ReportPage(ctx, q)
			if err != nil {
				return err
			}
			switch g.output {
			case "json":
				return printJSON(w, page)
			case "csv":
				var out [][]string
				for _, r := range page.Rows {
					out = append(out, csvRow(r))
				}
				return csvOut(w, csvHeader, out)
			}
			var out [][]string
			for _, r := range page.Rows {
				ex := ""
				if r.Exercise {
					ex = "exercise"
				}
				out = append(out, []string{r.Item, r.Announcement, r.Device, r.Status, when(r.StartedAt), when(r.FinishedAt), orDash(reasonWords(r)), orDash(ex), orDash(messages.Short(r.Text))})
			}
			if len(out) > 0 {
				if err := table(w, header, out); err != nil {
					return err
				}
			}
			if len(page.Announcements) > 0 {
				fmt.Fprintln(w)
				fmt.Fprintln(w, messages.T(messages.ReportPerRule))
				var sums [][]string
				for _, a := range page.Announcements {
					sums = append(sums, []string{a.Announcement, strconv.Itoa(a.Total), countList(a.Counts, store.ReportStatuses), orDash(messages.Short(a.Text))})
				}
				if err := table(w, []string{"ANNOUNCEMENT", "ROWS", "BY STATUS", "TEXT"}, sums); err != nil {
					return err
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, messages.T(messages.ReportCounts, countList(page.Counts, store.ReportStatuses)))
			footer(w, page.Offset, len(page.Rows), page.Total, page.Next)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&q.Since, "since", "", "only items scheduled from this time (site zone: \"2026-12-01 06:00\", \"06:00\" today)")
	f.StringVar(&q.Until, "until", "", "only items scheduled before this time")
	f.StringVar(&q.Group, "group", "", "only the boxes now in this group")
	f.StringVar(&q.Device, "device", "", "only this box (its id)")
	f.StringVar(&q.Status, "status", "", "only rows with this status: "+strings.Join(store.ReportStatuses, ", "))
	f.StringVar(&q.Announcement, "announcement", "", "only this announcement or schedule (its id)")
	f.BoolVar(&audit, "audit", false, "show the audit log instead: who started and cancelled emergencies, and what triggered them")
	f.BoolVar(&sessions, "sessions", false, "list the live sessions and relays instead: who started them, from what, how they ended, and their recordings")
	pf.add(f)
	return cmd
}

// printSessions lists the live sessions and relays, newest first.
func printSessions(ctx context.Context, c *api.Client, output, since, until string, w io.Writer) error {
	list, err := c.Sessions(ctx, since, until)
	if err != nil {
		return err
	}
	if output == "json" {
		return printJSON(w, list)
	}
	header := []string{"SESSION", "KIND", "SOURCE", "BY", "TARGETS", "STARTED", "ENDED", "HOW IT ENDED", "RECORDING"}
	var rows [][]string
	for _, x := range list {
		rec := x.Recording
		if len(rec) > 12 {
			rec = rec[:12]
		}
		rows = append(rows, []string{x.ID, x.Kind, messages.Short(x.Source), x.StartedBy, x.Targets.String(), when(x.StartedAt), when(x.EndedAt), orDash(x.EndReason), orDash(rec)})
	}
	if output == "csv" {
		for i := range header {
			header[i] = strings.ToLower(header[i])
		}
		return csvOut(w, header, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, messages.T(messages.PageEmpty))
		return nil
	}
	return table(w, header, rows)
}

// printTimeSources lists, under the status table, the boxes whose time does
// not come from the controller, in plain words: the ones that keep time by
// themselves and the ones that do not know it.
func printTimeSources(w io.Writer, devices []store.DeviceStatus) {
	first := true
	for _, d := range devices {
		if d.TimeSource == "" || d.TimeSource == timesource.Controller {
			continue
		}
		if first {
			fmt.Fprintln(w, messages.T(messages.StatusTimeSources))
			first = false
		}
		fmt.Fprintf(w, "  %s: %s\n", d.ID, messages.TimeSource(os.Getenv("LOA_LANG"), d.TimeSource))
	}
	if !first {
		fmt.Fprintln(w)
	}
}
