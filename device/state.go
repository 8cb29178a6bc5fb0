package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/internal/atomicfile"
	"github.com/loa-commune/loa/protocol"
)

// stateFileVersion is the layout version of state.json.
const stateFileVersion = 1

// seqBlock is how many sequence numbers are reserved in state.json at a time,
// so heartbeats need not write to the SD card while sequence numbers still
// never repeat after a restart.
const seqBlock = 1000

// savedState is the layout of <cache>/state.json: everything the box needs
// to keep playing its plan after a power cut with no network.
type savedState struct {
	Version int `json:"version"`
	// PCMFormat is the format the files in pcm/ were decoded to; when the
	// output changes they are decoded again.
	PCMFormat audio.Format `json:"pcm_format"`
	// SeqReserved is the first envelope sequence number not yet handed out
	// by an earlier run; a new run starts there.
	SeqReserved uint64 `json:"seq_reserved"`
	// Config is the last device config from the controller.
	Config *heldConfig `json:"config,omitempty"`
	// Plans holds the latest plan per target: "all", "group/<g>", "device/<id>".
	Plans map[string]*heldPlan `json:"plans"`
	// Items holds the local status of every item in the merged plan, and of
	// finished items that left it (kept a while so that they never play twice).
	Items map[string]*itemRecord `json:"items"`
	// ProvisionedKeys are the controller keys of the config file when the
	// held config was accepted: if the file names others, the box was
	// provisioned again and trusts the file (see trustedKeys).
	ProvisionedKeys []string `json:"provisioned_keys,omitempty"`
}

// heldConfig is a device config with the envelope fields that order it.
type heldConfig struct {
	Issued time.Time             `json:"issued"`
	Seq    uint64                `json:"seq"`
	Config protocol.DeviceConfig `json:"config"`
}

// heldPlan is a plan with the envelope fields that order it.
type heldPlan struct {
	Issued time.Time     `json:"issued"`
	Seq    uint64        `json:"seq"`
	Plan   protocol.Plan `json:"plan"`
}

// newer reports whether a plan generated at g with envelope seq s replaces h.
func (h *heldPlan) olderThan(g time.Time, seq uint64) bool {
	if h == nil {
		return true
	}
	if !g.Equal(h.Plan.Generated) {
		return g.After(h.Plan.Generated)
	}
	return seq > h.Seq
}

// olderThan reports whether a config issued at t with seq s replaces h.
func (h *heldConfig) olderThan(t time.Time, seq uint64) bool {
	if h == nil {
		return true
	}
	if !t.Equal(h.Issued) {
		return t.After(h.Issued)
	}
	return seq > h.Seq
}

// itemRecord is the local status of one plan item.
type itemRecord struct {
	// Status is the last event raised for the item.
	Status protocol.EventType `json:"status"`
	Reason string             `json:"reason,omitempty"`
	// Arrival orders items of equal priority and start: first come, first played.
	Arrival uint64    `json:"arrival"`
	Updated time.Time `json:"updated"`
	// Started is set once playback began, so a restart does not call an
	// interrupted item expired.
	Started bool `json:"started,omitempty"`
	// StartedAt is when it first began, repeated in its final answer.
	StartedAt time.Time `json:"started_at,omitzero"`
	// Until is set on finished items that left the plan: the record is
	// dropped after it.
	Until time.Time `json:"until,omitempty"`
	// Runs counts the times playback began (a preempted item plays again).
	Runs int `json:"runs,omitempty"`
	// Resume is the frame of its program (in pcm_format) a preempted item
	// continues from when its on_preempt rule is resume.
	Resume int64 `json:"resume,omitempty"`
	// A live session's item: how much of the session its plays sounded
	// from frames (HeardMS) and concealed or silent for want of them
	// (MissedMS), over every run; how long it was off the output between
	// runs (preempted, or the box restarting); and where its last run
	// stopped (controller time).
	HeardMS     int64     `json:"heard_ms,omitempty"`
	MissedMS    int64     `json:"missed_ms,omitempty"`
	OffMS       int64     `json:"off_ms,omitempty"`
	StreamUntil time.Time `json:"stream_until,omitzero"`
}

// loadState reads path. A missing file is an empty state; a corrupt one is
// moved aside to path+".bad" and reported, and the agent starts empty.
func loadState(path string) (*savedState, error) {
	st := &savedState{Version: stateFileVersion}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil || st.Version != stateFileVersion {
		if err == nil {
			err = fmt.Errorf("layout version %d, want %d", st.Version, stateFileVersion)
		}
		bad := path + ".bad"
		if rerr := os.Rename(path, bad); rerr != nil {
			return &savedState{Version: stateFileVersion}, fmt.Errorf("state %s unreadable (%v), and moving it aside failed: %w", path, err, rerr)
		}
		return &savedState{Version: stateFileVersion}, fmt.Errorf("state %s unreadable, moved to %s, starting empty: %w", path, bad, err)
	}
	return st, nil
}

// save writes st to path atomically: temp file, fsync, rename, fsync folder.
func (st *savedState) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return atomicfile.Write(path, data, 0o600)
}
