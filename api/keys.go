package api

import (
	"github.com/loa-commune/loa/protocol"
	"net/http"
	"time"

	"github.com/loa-commune/loa/messages"
)

// KeyManager is the controller's signing keys (signing.Keys) as the API
// sees them.
type KeyManager interface {
	Trusted() []string
	Current() *protocol.Signer
	Rotating() bool
	RotationStarted() time.Time
	StartRotation() error
	FinishRotation() error
}

// KeysInfo answers GET /v1/keys and the rotation calls.
type KeysInfo struct {
	// Trusted are the public keys boxes are told to trust (two while
	// rotating: the current and the next).
	Trusted         []string   `json:"trusted"`
	Rotating        bool       `json:"rotating"`
	RotationStarted *time.Time `json:"rotation_started,omitempty"`
	// Waiting are the boxes not heard from since the rotation started:
	// they may not have the next key yet.
	Waiting []string `json:"waiting,omitempty"`
}

// FinishKeysRequest is the body of POST /v1/keys/finish.
type FinishKeysRequest struct {
	// Force finishes even though some boxes were not heard from since the
	// rotation started (they will have to be provisioned again).
	Force bool `json:"force,omitempty"`
}

func (s *Server) keysInfo(r *http.Request) (KeysInfo, error) {
	if s.opts.Keys == nil {
		return KeysInfo{}, fail(http.StatusNotFound, messages.NotFound, "signing keys")
	}
	info := KeysInfo{Trusted: s.opts.Keys.Trusted(), Rotating: s.opts.Keys.Rotating()}
	if !info.Rotating {
		return info, nil
	}
	since := s.opts.Keys.RotationStarted()
	info.RotationStarted = &since
	st, err := s.store.Status(r.Context())
	if err != nil {
		return info, err
	}
	for _, d := range st {
		if d.LastSeen.Before(since) {
			info.Waiting = append(info.Waiting, d.ID)
		}
	}
	return info, nil
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) error {
	info, err := s.keysInfo(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// rotateKeys starts a key rotation: a next key signs alongside the current
// one, and every box's config lists both, so boxes learn the next key
// from a message the current key signed.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Keys == nil {
		return fail(http.StatusNotFound, messages.NotFound, "signing keys")
	}
	if err := s.opts.Keys.StartRotation(); err != nil {
		return err
	}
	return s.keysChanged(w, r)
}

// finishKeys makes the next key the only one, once every box had the
// chance to learn it (or when forced).
func (s *Server) finishKeys(w http.ResponseWriter, r *http.Request) error {
	var req FinishKeysRequest
	if r.ContentLength != 0 {
		if err := readJSON(r, &req); err != nil {
			return err
		}
	}
	info, err := s.keysInfo(r)
	if err != nil {
		return err
	}
	if !info.Rotating {
		return fail(http.StatusConflict, messages.NoKeyRotation)
	}
	if len(info.Waiting) > 0 && !req.Force {
		return fail(http.StatusConflict, messages.KeyBoxesWaiting, len(info.Waiting), info.Waiting)
	}
	if err := s.opts.Keys.FinishRotation(); err != nil {
		return err
	}
	return s.keysChanged(w, r)
}

// keysChanged republishes every config (listing the keys to trust) and
// every plan, signed with the keys now in use: a retained plan signed only
// by a dropped key would be refused by a box that connects later. It
// answers with the new state.
func (s *Server) keysChanged(w http.ResponseWriter, r *http.Request) error {
	if err := s.bc.RepublishAll(r.Context()); err != nil {
		return err
	}
	info, err := s.keysInfo(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}
