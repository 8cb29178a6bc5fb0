package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loa-commune/loa/api"
)

// fragment is a part of a page to redraw: the element id and its new HTML.
type fragment struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// fragmenter draws a live page's changing parts for q; done says the page
// has nothing more to follow (every box answered).
type fragmenter func(q *request, v *view) (parts []fragment, done bool, err error)

// liveViews are the pages that follow changes, by their view= name. Every
// page follows the emergency banner.
func (c *Console) liveViews() map[string]fragmenter {
	return map[string]fragmenter{
		"status":       c.statusFragments,
		"announcement": c.announcementFragments, // announce.go
	}
}

// events streams a page's changes (server-sent events): every Every it
// redraws the page's parts through the API and sends those that changed,
// as "swap" events that console.js applies. It ends when the person goes,
// signs out or loses their token, or the followed page is done.
func (c *Console) events(q *request) error {
	draw := c.liveViews()[q.r.FormValue("view")]
	rc := http.NewResponseController(q.w)
	h := q.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	q.w.WriteHeader(http.StatusOK)
	fmt.Fprintf(q.w, "retry: 3000\n\n")
	rc.Flush()

	sent := map[string]string{}
	ctx := q.r.Context()
	tick := time.NewTicker(c.opts.Every)
	defer tick.Stop()
	keepAlive := time.Now()
	for {
		if !c.sessions.alive(q.sess.id) {
			fmt.Fprintf(q.w, "event: signed-out\ndata: {}\n\n")
			rc.Flush()
			return nil
		}
		parts, done, err := c.liveParts(q, draw)
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			c.sessions.remove(q.sess.id)
			continue // says signed-out
		}
		if err != nil {
			c.log.Warn("console: live update", "view", q.r.FormValue("view"), "err", err)
		}
		wrote := false
		for _, p := range parts {
			if sent[p.ID] == p.HTML {
				continue
			}
			sent[p.ID] = p.HTML
			b, _ := json.Marshal(p)
			fmt.Fprintf(q.w, "event: swap\ndata: %s\n\n", b)
			wrote = true
		}
		if done {
			fmt.Fprintf(q.w, "event: done\ndata: {}\n\n")
			rc.Flush()
			return nil
		}
		if !wrote && time.Since(keepAlive) > 20*time.Second {
			fmt.Fprintf(q.w, ": keep-alive\n\n") // proxies close idle streams
			wrote = true
		}
		if wrote {
			keepAlive = time.Now()
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// liveParts draws the banner and, if the page has one, its own parts.
func (c *Console) liveParts(q *request, draw fragmenter) ([]fragment, bool, error) {
	v := q.view("")
	var b bytes.Buffer
	if err := c.pages.execute(&b, "status", "banner", v); err != nil {
		return nil, false, err
	}
	parts := []fragment{{ID: "banner", HTML: b.String()}}
	if draw == nil {
		return parts, false, nil
	}
	more, done, err := draw(q, v)
	return append(parts, more...), done, err
}

func (c *Console) statusFragments(q *request, v *view) ([]fragment, bool, error) {
	d, err := c.statusData(q)
	if err != nil {
		return nil, false, err
	}
	v.Data = d
	var b bytes.Buffer
	if err := c.pages.execute(&b, "status", "boxes", v); err != nil {
		return nil, false, err
	}
	return []fragment{{ID: "boxes", HTML: b.String()}}, false, nil
}
