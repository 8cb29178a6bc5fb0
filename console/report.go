package console

import (
	"encoding/csv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

const (
	// reportPageSize is the rows one page of the report shows.
	reportPageSize = 100
	// maxBoxChoices: with more boxes than this, the box field offers no
	// list to choose from (it would be too long for a phone).
	maxBoxChoices = 2000
)

// reportFilter is what the report shows: deliveries due in a span of days,
// of the boxes now in a village, of one box, with one status.
type reportFilter struct {
	dateSpan
	Village, Box, Status string
	After                string // the API's cursor of the page shown
}

// readReportFilter reads the filters of the report's form and links.
func readReportFilter(q *request, loc *time.Location, now time.Time) (reportFilter, string) {
	span, problem := readSpan(q, loc, now, 7)
	f := reportFilter{dateSpan: span, Village: strings.TrimSpace(q.r.FormValue("village")),
		Box: strings.TrimSpace(q.r.FormValue("box")), Status: q.r.FormValue("status"), After: q.r.FormValue("after")}
	if f.Status != "" && !slices.Contains(store.ReportStatuses, f.Status) {
		f.Status = ""
	}
	return f, problem
}

// values are the filters as a link's query; after is the page's cursor.
func (f reportFilter) values(after string) url.Values {
	v := url.Values{"since": {f.Since}, "until": {f.Until}}
	for k, x := range map[string]string{"village": f.Village, "box": f.Box, "status": f.Status, "after": after} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// apiQuery is the filter as the API takes it.
func (f reportFilter) apiQuery(limit int) api.ReportQuery {
	return api.ReportQuery{Since: f.apiSince(), Until: f.apiUntil(), Group: f.Village, Device: f.Box, Status: f.Status, After: f.After, Limit: limit}
}

// reportData is the report page, or one box's.
type reportData struct {
	Filter   reportFilter
	Action   string // where the filter form goes
	Villages []string
	Boxes    []string // the box field's choices; none when too many
	Statuses []string
	Rows     []reportRow
	// From and To number the rows shown of Total; Total < 0: not counted.
	From, To, Total int
	Counts          []reportCount
	Announcements   []announcementCount
	First, Next     string // links to the first and the next page
	CSV             string
	// Box is the box of a box's report, as it is now.
	Box *boxRow
}

// reportRow is one delivery with the villages its box is in now.
type reportRow struct {
	store.Delivery
	Villages string
	Said     string // the text, cut short for the table
	Reason   string // in the page's language
}

// reportCount is how many rows have a status, linking to them.
type reportCount struct {
	Status  string
	N       int
	URL     string
	Current bool
}

// announcementCount sums up one announcement's rows.
type announcementCount struct {
	ID, Text, Counts string
	Total            int
}

// reportBase reads what every report page needs: the filters, the
// villages and the boxes.
type reportBase struct {
	lang    string
	loc     *time.Location
	filter  reportFilter
	problem string
	devices map[string]store.Device
	d       *reportData
}

func (c *Console) reportBase(q *request, action string) (*reportBase, error) {
	ctx := q.r.Context()
	loc := siteZone(q)
	f, problem := readReportFilter(q, loc, c.opts.Now())
	groups, err := q.api.Groups(ctx)
	if err != nil {
		return nil, err
	}
	devices, err := q.api.Devices(ctx)
	if err != nil {
		return nil, err
	}
	b := &reportBase{lang: q.lang, loc: loc, filter: f, problem: problem, devices: map[string]store.Device{}}
	d := &reportData{Filter: f, Action: action, Statuses: store.ReportStatuses, Total: -1}
	for _, g := range groups {
		d.Villages = append(d.Villages, g.Name)
	}
	for _, x := range devices {
		b.devices[x.ID] = x
	}
	if len(devices) <= maxBoxChoices {
		for _, x := range devices {
			d.Boxes = append(d.Boxes, x.ID)
		}
		slices.Sort(d.Boxes)
	}
	d.CSV = "/report.csv?" + f.values("").Encode()
	b.d = d
	return b, nil
}

func (b *reportBase) row(r store.Delivery) reportRow {
	return reportRow{Delivery: r, Villages: strings.Join(b.devices[r.Device].Groups, ", "), Said: messages.Short(r.Text),
		Reason: messages.Reason(b.lang, r.Why, r.Reason)}
}

// reportPage shows the report a page at a time, with counts by status and
// by announcement over every row the filters select.
func (c *Console) reportPage(q *request) error {
	b, err := c.reportBase(q, "/report")
	if err != nil {
		return err
	}
	v := q.view("console.report.title")
	v.Error = b.problem
	if _, ok := b.devices[b.filter.Box]; b.filter.Box != "" && !ok {
		v.Error = messages.In(q.lang, messages.ConsoleUnknownBox, b.filter.Box)
	} else if err := c.fillReportPage(q, b); err != nil {
		return c.reportProblem(q, v, b, err)
	}
	v.Data = b.d
	c.render(q.w, http.StatusOK, "report", v)
	return nil
}

// boxReportPage is one box's report: its state now and its rows.
func (c *Console) boxReportPage(q *request) error {
	id := q.r.PathValue("id")
	b, err := c.reportBase(q, "/report/box/"+url.PathEscape(id))
	if err != nil {
		return err
	}
	if _, ok := b.devices[id]; !ok {
		c.fail(q.w, q.r, q.lang, http.StatusNotFound, messages.In(q.lang, messages.ConsoleUnknownBox, id))
		return nil
	}
	b.filter.Box = id
	b.d.Filter.Box = id
	b.d.CSV = "/report.csv?" + b.filter.values("").Encode()
	v := q.view("console.report.box_title")
	v.Error = b.problem
	page, err := q.api.StatusPage(q.r.Context(), api.StatusQuery{IDPrefix: id, Limit: 50})
	if err != nil {
		return err
	}
	for _, s := range page.Devices {
		if s.ID == id {
			row := boxRow{DeviceStatus: s}
			for _, p := range s.Problems {
				row.ProblemWords = append(row.ProblemWords, messages.Problem(q.lang, p))
			}
			b.d.Box = &row
		}
	}
	if err := c.fillReportPage(q, b); err != nil {
		return c.reportProblem(q, v, b, err)
	}
	v.Data = b.d
	c.render(q.w, http.StatusOK, "report", v)
	return nil
}

// reportProblem shows an API refusal of the filters (an unknown village)
// above the form, so the person can change them.
func (c *Console) reportProblem(q *request, v *view, b *reportBase, err error) error {
	status, msg, ok := formProblem(err)
	if !ok {
		return err
	}
	v.Error = msg
	v.Data = b.d
	c.render(q.w, status, "report", v)
	return nil
}

// fillReportPage reads one page of the report, or of one box's (the API
// filters and counts); its links stay on the page they are on.
func (c *Console) fillReportPage(q *request, b *reportBase) error {
	f, d := b.filter, b.d
	var page store.ReportPage
	err := retryLimited(q.r.Context(), func() (err error) {
		page, err = q.api.ReportPage(q.r.Context(), f.apiQuery(reportPageSize))
		return err
	})
	if err != nil {
		return err
	}
	for _, r := range page.Rows {
		d.Rows = append(d.Rows, b.row(r))
	}
	d.Total, d.From, d.To = page.Total, page.Offset+1, page.Offset+len(page.Rows)
	d.Counts = b.counts(page.Counts)
	for _, a := range page.Announcements {
		d.Announcements = append(d.Announcements, announcementCount{ID: a.Announcement, Text: messages.Short(a.Text),
			Total: a.Total, Counts: countWords(q.lang, a.Counts)})
	}
	if page.Next != "" {
		d.Next = d.Action + "?" + f.values(page.Next).Encode()
	}
	if f.After != "" {
		d.First = d.Action + "?" + f.values("").Encode()
	}
	return nil
}

// counts are the statuses with rows, in the report's order, each linking
// to its rows.
func (b *reportBase) counts(by map[string]int) []reportCount {
	var out []reportCount
	for _, s := range store.ReportStatuses {
		if by[s] == 0 {
			continue
		}
		f := b.filter
		f.Status = s
		out = append(out, reportCount{Status: s, N: by[s], URL: b.d.Action + "?" + f.values("").Encode(), Current: b.filter.Status == s})
	}
	return out
}

// countWords writes counts by status as "played 3 · failed 1".
func countWords(lang string, by map[string]int) string {
	var parts []string
	for _, s := range store.ReportStatuses {
		if by[s] > 0 {
			word := messages.In(lang, messages.Key("console.status."+s))
			parts = append(parts, word+" "+strconv.Itoa(by[s]))
		}
	}
	return strings.Join(parts, " · ")
}

// reportCSVHeader names the CSV's columns (as `loa report -o csv`, with the
// due time and the box's villages).
var reportCSVHeader = []string{"item", "announcement", "device", "groups", "status", "scheduled_at", "started_at",
	"finished_at", "reason", "exercise", "text", "heard_ms", "missed_ms"}

// reportCSV writes every row the filters select as CSV, times in the
// commune's zone (RFC 3339).
func (c *Console) reportCSV(q *request) error {
	b, err := c.reportBase(q, "/report")
	if err != nil {
		return err
	}
	if b.problem != "" {
		c.fail(q.w, q.r, q.lang, http.StatusBadRequest, b.problem)
		return nil
	}
	f, ctx := b.filter, q.r.Context()
	name := "loa-report-" + f.Since + "_" + f.Until
	// Read the first page before answering: a refused filter is an error
	// page, not a CSV that stops.
	if f.Box != "" {
		if _, ok := b.devices[f.Box]; !ok {
			c.fail(q.w, q.r, q.lang, http.StatusNotFound, messages.In(q.lang, messages.ConsoleUnknownBox, f.Box))
			return nil
		}
		name += "-" + f.Box
	}
	var first store.ReportPage
	rq := f.apiQuery(store.MaxPageSize)
	rq.After = ""
	if err := retryLimited(ctx, func() (err error) { first, err = q.api.ReportPage(ctx, rq); return err }); err != nil {
		return err
	}

	h := q.w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	// A byte-order mark first: Excel, which the office opens it with, reads
	// the file as UTF-8 then, and the Vietnamese shows right.
	io.WriteString(q.w, "\ufeff")
	w := csv.NewWriter(q.w)
	w.Write(reportCSVHeader)
	write := func(r store.Delivery) {
		ex := ""
		if r.Exercise {
			ex = "exercise"
		}
		w.Write([]string{r.Item, r.Announcement, r.Device, strings.Join(b.devices[r.Device].Groups, ","), r.Status,
			csvTime(r.ScheduledAt, b.loc), csvTime(r.StartedAt, b.loc), csvTime(r.FinishedAt, b.loc), r.Reason, ex, r.Text,
			strconv.FormatInt(r.HeardMS, 10), strconv.FormatInt(r.MissedMS, 10)})
	}
	page := first
	for {
		for _, r := range page.Rows {
			write(r)
		}
		w.Flush()
		if page.Next == "" || w.Error() != nil {
			break
		}
		rq := f.apiQuery(store.MaxPageSize)
		rq.After = page.Next
		if err := retryLimited(ctx, func() (err error) { page, err = q.api.ReportPage(ctx, rq); return err }); err != nil {
			// The answer has begun: break it off, so the browser says the
			// download failed rather than keep a file that looks whole.
			c.log.Error("console: report CSV broken off", "err", err, "token", q.sess.name)
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// csvTime writes t in loc as RFC 3339; "" for no time.
func csvTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(time.RFC3339)
}
