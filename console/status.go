package console

import (
	"net/http"
	"net/url"
	"slices"
	"sort"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// statusStates are the status page's state filter values ("" is all).
var statusStates = []string{"", "online", "offline", "playing", "problem"}

// statusData is the status page: the boxes that pass the filters.
type statusData struct {
	Boxes                  []boxRow
	Villages, States       []string
	Village, State         string
	Online, Total, Playing int
	Map                    *boxMap
}

// boxRow is a box as the page shows it.
type boxRow struct {
	store.DeviceStatus
	ProblemWords []string
}

func (c *Console) statusPage(q *request) error {
	d, err := c.statusData(q)
	if err != nil {
		return err
	}
	v := q.view("console.status.title")
	v.Data = d
	v.Events = "/events?view=status&village=" + url.QueryEscape(d.Village) + "&state=" + url.QueryEscape(d.State)
	c.render(q.w, http.StatusOK, "status", v)
	return nil
}

// statusData reads the boxes through the API and applies the page's
// filters (village, state).
func (c *Console) statusData(q *request) (*statusData, error) {
	ctx := q.r.Context()
	all, err := q.api.Status(ctx)
	if err != nil {
		return nil, err
	}
	d := &statusData{States: statusStates, Village: q.r.FormValue("village"), State: q.r.FormValue("state")}
	if !slices.Contains(statusStates, d.State) {
		d.State = ""
	}
	villages := map[string]bool{}
	for _, b := range all {
		for _, g := range b.Groups {
			villages[g] = true
		}
		if b.Online {
			d.Online++
			if b.Playing != nil {
				d.Playing++
			}
		}
		if !d.shows(b) {
			continue
		}
		row := boxRow{DeviceStatus: b}
		for _, p := range b.Problems {
			row.ProblemWords = append(row.ProblemWords, messages.Problem(q.lang, p))
		}
		d.Boxes = append(d.Boxes, row)
	}
	d.Total = len(all)
	for v := range villages {
		d.Villages = append(d.Villages, v)
	}
	sort.Strings(d.Villages)
	d.Map = c.boxMap(d.Boxes)
	return d, nil
}

// shows says whether box b passes the filters.
func (d *statusData) shows(b store.DeviceStatus) bool {
	if d.Village != "" && !slices.Contains(b.Groups, d.Village) {
		return false
	}
	switch d.State {
	case "online":
		return b.Online
	case "offline":
		return !b.Online
	case "playing":
		return b.Online && b.Playing != nil
	case "problem":
		return len(b.Problems) > 0
	}
	return true
}
