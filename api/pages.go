package api

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

// GET /v1/status and GET /v1/report page and filter (issue 6: 10,000 boxes).
//
// With `limit` or `after` the answer is one page: an object with the rows,
// the total, the counts and the cursor of the next page (store.StatusPage,
// store.ReportPage). Without them it is the array older clients read, bounded
// to the first store.MaxPageSize rows of what the filters select; the
// X-Total-Count header says how many there are and a Link header (rel="next")
// where the rest starts. Filters work either way.

// statusStates lists the states for messages.
var statusStates = strings.Join(store.StatusStates, ", ")

// pageParams reads limit and after; paged is whether either was given.
func pageParams(q url.Values) (limit int, after string, paged bool, err error) {
	after = q.Get("after")
	paged = q.Has("limit") || q.Has("after")
	if v := q.Get("limit"); q.Has("limit") {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > store.MaxPageSize {
			return 0, "", false, fail(http.StatusBadRequest, messages.BadLimit, store.MaxPageSize, v)
		}
	}
	return limit, after, paged, nil
}

// validGroup checks a group filter's name; "" is no filter.
func validGroup(g string) error {
	if g == "" {
		return nil
	}
	if err := protocol.ValidName(g); err != nil {
		return fail(http.StatusBadRequest, messages.BadName, "group: "+err.Error())
	}
	return nil
}

// unknownGroup turns the store's ErrNotFound for a group filter into 404.
func unknownGroup(err error, group string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, messages.UnknownGroup, group, group)
	}
	return err
}

// nextLink sets the headers a bounded array answer carries.
func nextLink(w http.ResponseWriter, r *http.Request, total int, next string) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if next == "" {
		return
	}
	q := r.URL.Query()
	q.Set("after", next)
	q.Set("limit", strconv.Itoa(store.MaxPageSize))
	w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, after, paged, err := pageParams(q)
	if err != nil {
		return err
	}
	sq := store.StatusQuery{Group: q.Get("group"), State: q.Get("state"), IDPrefix: q.Get("id_prefix"), After: after, Limit: limit}
	if err := validGroup(sq.Group); err != nil {
		return err
	}
	if sq.State != "" && !slices.Contains(store.StatusStates, sq.State) {
		return fail(http.StatusBadRequest, messages.BadState, sq.State, statusStates)
	}
	if sq.IDPrefix != "" {
		if err := protocol.ValidName(sq.IDPrefix); err != nil {
			return fail(http.StatusBadRequest, messages.BadName, "id_prefix: "+err.Error())
		}
	}
	if after != "" && protocol.ValidName(after) != nil {
		return fail(http.StatusBadRequest, messages.BadCursor, after)
	}
	if s.opts.StaleAfter > 0 {
		sq.StaleBefore = s.opts.Now().Add(-s.opts.StaleAfter)
	}
	page, err := s.store.StatusPage(r.Context(), sq)
	if err != nil {
		return unknownGroup(err, sq.Group)
	}
	if paged {
		return writeJSON(w, http.StatusOK, page)
	}
	nextLink(w, r, page.Total, page.Next)
	return writeJSON(w, http.StatusOK, page.Devices)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	since, until, err := s.span(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, after, paged, err := pageParams(q)
	if err != nil {
		return err
	}
	rq := store.ReportQuery{Since: since, Until: until, Group: q.Get("group"), Device: q.Get("device"), Status: q.Get("status"),
		Announcement: q.Get("announcement"), After: after, Limit: limit}
	if err := validGroup(rq.Group); err != nil {
		return err
	}
	if rq.Device != "" {
		if _, err := s.store.Device(r.Context(), rq.Device); err != nil {
			return notFound(err, messages.UnknownDevice, rq.Device, rq.Device)
		}
	}
	if rq.Status != "" && !slices.Contains(store.ReportStatuses, rq.Status) {
		return fail(http.StatusBadRequest, messages.BadReportStatus, rq.Status, strings.Join(store.ReportStatuses, ", "))
	}
	page, err := s.store.ReportPage(r.Context(), rq)
	switch {
	case errors.Is(err, store.ErrBadCursor):
		return fail(http.StatusBadRequest, messages.BadCursor, after)
	case err != nil:
		return unknownGroup(err, rq.Group)
	}
	if paged {
		return writeJSON(w, http.StatusOK, page)
	}
	nextLink(w, r, page.Total, page.Next)
	return writeJSON(w, http.StatusOK, page.Rows)
}
