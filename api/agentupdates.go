package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/rollout"
	"github.com/loa-commune/loa/store"
)

// Rollouts is what the API needs of the rollout engine (rollout.Engine).
type Rollouts interface {
	Start(ctx context.Context, r store.Rollout) error
	Status(ctx context.Context) (rollout.Status, error)
	SetState(ctx context.Context, state, reason string) (store.Rollout, error)
}

// RolloutRequest starts a rollout of published builds.
type RolloutRequest struct {
	Version string        `json:"version"`
	Builds  []string      `json:"builds"` // sha256 of each architecture's build
	Targets store.Targets `json:"targets"`
	Percent int           `json:"percent,omitempty"` // per step; 0: 100
}

// RolloutStateRequest pauses, resumes or aborts the rollout under way.
type RolloutStateRequest struct {
	State  string `json:"state"` // paused, active or aborted
	Reason string `json:"reason,omitempty"`
}

// elfArch is the Debian architecture of an ELF build, or an error saying
// why it is not a loa-agent for a box.
func elfArch(f *elf.File) (string, error) {
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", errors.New("it is not a program")
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_ARM: // 32-bit ARM boxes run Raspberry Pi OS, armhf
		return "armhf", nil
	}
	return "", fmt.Errorf("it is a program for %s, which no box runs", f.Machine)
}

// finder is a writer that notes whether want went through it, also across
// two writes.
type finder struct {
	want  []byte
	tail  []byte // the last len(want)-1 bytes written
	found bool
}

func (f *finder) Write(p []byte) (int, error) {
	if !f.found && len(f.want) > 0 {
		joined := append(f.tail, p...)
		f.found = bytes.Contains(joined, f.want)
		f.tail = append(f.tail[:0], joined[max(0, len(joined)-len(f.want)+1):]...)
	}
	return len(p), nil
}

// addBuild answers POST /v1/agent/builds?version=V: a loa-agent binary,
// checked (an ELF program for a box's architecture that carries the version
// string it is published as), stored as <builds>/<sha256>.
func (s *Server) addBuild(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Rollouts == nil || s.opts.BuildsDir == "" {
		return errors.New("this controller does not publish agent builds")
	}
	version := r.URL.Query().Get("version")
	if _, err := protocol.ParseVersion(version); err != nil {
		return fail(http.StatusBadRequest, messages.BuildBadVersion, version)
	}
	if err := os.MkdirAll(s.opts.BuildsDir, 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.opts.BuildsDir, ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	seen := &finder{want: []byte(strings.TrimPrefix(version, "v"))} // make's VERSION has no v
	n, err := io.Copy(io.MultiWriter(tmp, h, seen), http.MaxBytesReader(w, r.Body, protocol.MaxBuildSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(http.StatusRequestEntityTooLarge, messages.BuildNotAgent, fmt.Sprintf("it is larger than %d MB", protocol.MaxBuildSize>>20))
		}
		return fmt.Errorf("receive build: %w", err)
	}
	ef, err := elf.NewFile(tmp)
	if err != nil {
		return fail(http.StatusBadRequest, messages.BuildNotAgent, "it is not a Linux program (ELF)")
	}
	arch, err := elfArch(ef)
	if err != nil {
		return fail(http.StatusBadRequest, messages.BuildNotAgent, err.Error())
	}
	if !seen.found {
		return fail(http.StatusBadRequest, messages.BuildVersionMissing, version, strings.TrimPrefix(version, "v"))
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	sha := hex.EncodeToString(h.Sum(nil))
	b := store.AgentBuild{SHA256: sha, Version: version, Arch: arch, Size: n, CreatedBy: actor(r.Context(), "admin"), CreatedAt: s.opts.Now().UTC()}
	if err := os.Rename(tmp.Name(), filepath.Join(s.opts.BuildsDir, sha)); err != nil {
		return err
	}
	if err := s.store.AddAgentBuild(r.Context(), b); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fail(http.StatusConflict, messages.BuildNotAgent, err.Error())
		}
		return err
	}
	return writeJSON(w, http.StatusCreated, b)
}

// getBuild serves a build to a box (HTTP Basic) or a viewer, with Range.
func (s *Server) getBuild(w http.ResponseWriter, r *http.Request) error {
	if err := s.boxOrViewer(w, r); err != nil {
		return err
	}
	sha := r.PathValue("sha")
	if protocol.ValidSHA256(sha) != nil {
		return fail(http.StatusNotFound, messages.UnknownBuild, sha)
	}
	if _, err := s.store.AgentBuild(r.Context(), sha); err != nil {
		return notFound(err, messages.UnknownBuild, sha)
	}
	f, err := os.Open(filepath.Join(s.opts.BuildsDir, sha))
	if err != nil {
		return fmt.Errorf("open build %s: %w", sha, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sha+`"`)
	http.ServeContent(w, r, "", time.Time{}, f) // handles Range
	return nil
}

// startRollout answers POST /v1/agent/rollouts.
func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Rollouts == nil {
		return errors.New("this controller does not roll out agent builds")
	}
	var req RolloutRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if _, err := protocol.ParseVersion(req.Version); err != nil {
		return fail(http.StatusBadRequest, messages.BuildBadVersion, req.Version)
	}
	if req.Percent == 0 {
		req.Percent = 100
	}
	if req.Percent < 1 || req.Percent > 100 {
		return fail(http.StatusBadRequest, messages.RolloutPercent, req.Percent)
	}
	arches := map[string]bool{}
	for _, sha := range req.Builds {
		b, err := s.store.AgentBuild(r.Context(), sha)
		if err != nil {
			return notFound(err, messages.UnknownBuild, sha)
		}
		if b.Version != req.Version || arches[b.Arch] {
			return fail(http.StatusBadRequest, messages.RolloutBuilds, req.Version)
		}
		arches[b.Arch] = true
	}
	if len(arches) == 0 {
		return fail(http.StatusBadRequest, messages.RolloutBuilds, req.Version)
	}
	if err := s.checkTargets(r.Context(), req.Targets); err != nil {
		return err
	}
	if n, err := s.boxesBehind(r.Context(), req.Targets, req.Version); err != nil {
		return err
	} else if n == 0 {
		return fail(http.StatusConflict, messages.RolloutNothingToDo, req.Version)
	}
	ro := store.Rollout{ID: fmt.Sprintf("r-%d", s.opts.Now().UnixMilli()), Version: req.Version, Builds: req.Builds,
		Targets: req.Targets, Percent: req.Percent, CreatedBy: actor(r.Context(), "admin")}
	if err := s.opts.Rollouts.Start(r.Context(), ro); err != nil {
		if errors.Is(err, store.ErrInUse) {
			return fail(http.StatusConflict, messages.RolloutUnderWay, err.Error())
		}
		return err
	}
	s.audit(r.Context(), ro.CreatedBy, store.AuditRolloutStart, "", req.Targets,
		fmt.Sprintf("rollout %s of %s, %d %% a step", ro.ID, ro.Version, ro.Percent))
	st, err := s.opts.Rollouts.Status(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, st)
}

// boxesBehind counts the target boxes that do not run version or newer (a
// box that never said its version counts).
func (s *Server) boxesBehind(ctx context.Context, t store.Targets, version string) (int, error) {
	want, err := protocol.ParseVersion(version)
	if err != nil {
		return 0, err
	}
	ids, err := s.store.TargetDevices(ctx, t)
	if err != nil {
		return 0, err
	}
	all, err := s.store.Status(ctx)
	if err != nil {
		return 0, err
	}
	runs := map[string]string{}
	for _, d := range all {
		runs[d.ID] = d.Version
	}
	n := 0
	for _, id := range ids {
		if v, err := protocol.ParseVersion(runs[id]); err != nil || v.Compare(want) < 0 {
			n++
		}
	}
	return n, nil
}

// rolloutStatus answers GET /v1/agent/rollout: the rollout under way, or
// the latest one.
func (s *Server) rolloutStatus(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Rollouts == nil {
		return errors.New("this controller does not roll out agent builds")
	}
	st, err := s.opts.Rollouts.Status(r.Context())
	if err != nil {
		return notFound(err, messages.NoRollout)
	}
	return writeJSON(w, http.StatusOK, st)
}

// setRolloutState answers POST /v1/agent/rollout/state.
func (s *Server) setRolloutState(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Rollouts == nil {
		return errors.New("this controller does not roll out agent builds")
	}
	var req RolloutStateRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	switch req.State {
	case store.RolloutPaused, store.RolloutActive, store.RolloutAborted:
	default:
		return fail(http.StatusBadRequest, messages.BadRequest, "state must be paused, active or aborted")
	}
	ro, err := s.opts.Rollouts.SetState(r.Context(), req.State, req.Reason)
	if err != nil {
		return notFound(err, messages.NoRollout)
	}
	s.audit(r.Context(), actor(r.Context(), "admin"), store.AuditRolloutState, "", ro.Targets,
		fmt.Sprintf("rollout %s of %s is now %s %s", ro.ID, ro.Version, req.State, req.Reason))
	st, err := s.opts.Rollouts.Status(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// AddBuild publishes an agent build.
func (c *Client) AddBuild(ctx context.Context, version string, r io.Reader) (store.AgentBuild, error) {
	var out store.AgentBuild
	return out, c.do(ctx, http.MethodPost, "/v1/agent/builds?version="+url.QueryEscape(version), r, "application/octet-stream", &out)
}

// StartRollout starts a rollout.
func (c *Client) StartRollout(ctx context.Context, req RolloutRequest) (rollout.Status, error) {
	var out rollout.Status
	return out, c.doJSON(ctx, http.MethodPost, "/v1/agent/rollouts", req, &out)
}

// Rollout reads the rollout under way, or the latest.
func (c *Client) Rollout(ctx context.Context) (rollout.Status, error) {
	var out rollout.Status
	return out, c.doJSON(ctx, http.MethodGet, "/v1/agent/rollout", nil, &out)
}

// SetRolloutState pauses, resumes or aborts the rollout under way.
func (c *Client) SetRolloutState(ctx context.Context, state, reason string) (rollout.Status, error) {
	var out rollout.Status
	return out, c.doJSON(ctx, http.MethodPost, "/v1/agent/rollout/state", RolloutStateRequest{State: state, Reason: reason}, &out)
}
