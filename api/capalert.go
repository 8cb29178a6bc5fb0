package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	capxml "github.com/loa-commune/loa/cap"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// CAPResponse says what a CAP alert did.
type CAPResponse struct {
	Decision  capxml.Decision `json:"decision"`
	Emergency *Announcement   `json:"emergency,omitempty"`
	Cancelled []string        `json:"cancelled"`
}

// capRepeat is how often a CAP alert's message plays: warnings are
// repeated, as loudspeaker operators do by hand.
const capRepeat = 3

// capAlert takes an OASIS CAP 1.2 alert and starts, replaces or cancels the
// emergency it means. Bad XML changes nothing.
func (s *Server) capAlert(w http.ResponseWriter, r *http.Request) error {
	a, err := capxml.Parse(r.Body)
	switch {
	case errors.Is(err, capxml.ErrTooLarge):
		return fail(http.StatusRequestEntityTooLarge, messages.BadCAP, err.Error())
	case err != nil:
		return fail(http.StatusBadRequest, messages.BadCAP, err.Error())
	}
	d, err := capxml.Decide(a, s.opts.CAP, s.opts.Now())
	switch {
	case errors.Is(err, capxml.ErrExpired):
		return fail(http.StatusUnprocessableEntity, messages.CAPExpired, err.Error())
	case err != nil:
		return fail(http.StatusBadRequest, messages.BadCAP, err.Error())
	}
	for _, warn := range d.Warnings {
		s.log.Warn("CAP alert", "key", d.Key, "warning", warn)
	}
	res, status, err := s.applyCAP(r.Context(), d)
	if err != nil {
		return err
	}
	return writeJSON(w, status, res)
}

func (s *Server) applyCAP(ctx context.Context, d capxml.Decision) (CAPResponse, int, error) {
	res := CAPResponse{Decision: d, Cancelled: []string{}}
	actor := "cap:" + d.Sender
	details := fmt.Sprintf("identifier=%s msgType=%s status=%s event=%q severity=%s urgency=%s action=%s",
		d.Identifier, d.MsgType, d.Status, d.Event, d.Severity, d.Urgency, d.Action)
	if d.Action == capxml.Ignore {
		s.audit(ctx, actor, store.AuditCAP, "", store.Targets{}, details+" ignored: "+d.Reason)
		if d.Reason == capxml.ReasonNoArea {
			return res, 0, fail(http.StatusUnprocessableEntity, messages.CAPNoArea, d.Reason)
		}
		return res, http.StatusOK, nil
	}
	if d.Action == capxml.Update || d.Action == capxml.Cancel {
		for _, key := range d.Replaces {
			c, err := s.CancelEmergenciesFrom(ctx, capSource(key), actor, "CAP "+string(d.MsgType)+" "+d.Identifier)
			if err != nil {
				return res, 0, err
			}
			res.Cancelled = append(res.Cancelled, c.Cancelled...)
		}
	}
	if d.Action == capxml.Cancel {
		s.audit(ctx, actor, store.AuditCAP, "", store.Targets{}, details)
		return res, http.StatusOK, nil
	}
	// Start or Update: the same alert posted twice starts nothing new.
	active, err := s.activeEmergencies(ctx)
	if err != nil {
		return res, 0, err
	}
	for _, e := range active {
		if e.Source == capSource(d.Key) {
			a, err := s.summary(ctx, e) // as when it started: boxes, not report rows
			res.Emergency = &a
			return res, http.StatusOK, err
		}
	}
	req := AnnounceRequest{Targets: store.Targets{All: d.All, Groups: d.Groups}, Text: d.Text, Tone: d.Tone,
		Exercise: d.Exercise, Repeat: capRepeat}
	if d.Audio != nil {
		if id, err := s.capAudio(ctx, d); err != nil {
			s.log.Warn("CAP audio not used; speaking the text instead", "key", d.Key, "err", err)
		} else {
			req.Media = id
		}
	}
	rule, err := s.emergencyRule(ctx, req, capSource(d.Key))
	if err != nil {
		return res, 0, err
	}
	rule.Name = d.Key
	if !d.Expires.IsZero() {
		rule.Validity = max(d.Expires.Sub(rule.Start), time.Minute)
	}
	a, err := s.storeRule(ctx, rule)
	if err != nil {
		return res, 0, err
	}
	s.audit(ctx, actor, store.AuditCAP, a.ID, rule.Targets, details)
	res.Emergency = &a
	return res, http.StatusCreated, nil
}

// capSource names emergencies a CAP alert started; the key is
// "sender,identifier".
func capSource(key string) string { return "cap:" + key }

// capAudio stores the alert's audio: embedded, or fetched (bounded, with
// a timeout, checked against the alert's digest).
func (s *Server) capAudio(ctx context.Context, d capxml.Decision) (string, error) {
	data := d.Audio.Data
	if data == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.Audio.URI, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("fetch %s: %s", d.Audio.URI, resp.Status)
		}
		limit := s.opts.CAP.MaxResourceBytes
		if limit <= 0 {
			limit = capxml.DefaultConfig().MaxResourceBytes
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1)); err != nil {
			return "", err
		}
		if int64(len(data)) > limit {
			return "", fmt.Errorf("fetch %s: over %d bytes", d.Audio.URI, limit)
		}
		if err := d.Audio.VerifyDigest(data); err != nil {
			return "", err
		}
	}
	id, _, err := s.storeMedia(ctx, bytes.NewReader(data), "cap: "+messages.Short(d.Audio.Desc))
	return id, err
}
