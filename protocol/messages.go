package protocol

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Limits on what a box accepts from the wire.
const (
	MaxPlanItems = 2000
	MaxRepeat    = 100
	MaxGroups    = 64
)

// Media names audio stored on the controller by its SHA-256.
type Media struct {
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	DurationMS int64  `json:"duration_ms"`
}

// Validate checks the hash looks like one and the numbers are sane.
func (m Media) Validate() error {
	if err := ValidSHA256(m.SHA256); err != nil {
		return err
	}
	if m.Size <= 0 || m.DurationMS <= 0 {
		return fmt.Errorf("media %s: size and duration must be positive", m.SHA256)
	}
	return nil
}

// ValidSHA256 reports whether s is 64 lower-case hex digits.
func ValidSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("media id %q is not a SHA-256 (64 hex digits)", s)
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("media id %q is not a SHA-256 (64 lower-case hex digits)", s)
		}
	}
	return nil
}

// What a box does with an item that a higher one interrupted.
const (
	OnPreemptRestart = "restart"
	OnPreemptResume  = "resume"
	OnPreemptDrop    = "drop"
)

// Alert tones a box synthesizes itself before an item (PlanItem.Tone), so
// an alert sounds even when no media can be fetched. Each kind of danger
// has its own tone that villagers learn to recognise.
const (
	ToneSiren = "siren"
	ToneFlood = "flood"
	ToneStorm = "storm"
	ToneFire  = "fire"
	ToneOther = "other"
)

// ValidTone reports whether t is empty or a known tone.
func ValidTone(t string) bool {
	switch t {
	case "", ToneSiren, ToneFlood, ToneStorm, ToneFire, ToneOther:
		return true
	}
	return false
}

// Item status: live items are real broadcasts, test items are exercises.
const (
	StatusLive = "live"
	StatusTest = "test"
)

// PlanItem is one thing a box must play: when, until when it may still
// start, how urgent, and what.
type PlanItem struct {
	ID           string    `json:"id"`
	Announcement string    `json:"announcement"`
	Start        time.Time `json:"start"`
	Expires      time.Time `json:"expires"`
	Priority     Priority  `json:"priority"`
	Media        Media     `json:"media"`            // zero for a tone-only item
	Repeat       int       `json:"repeat"`           // times to play, at least 1
	GapMS        int64     `json:"gap_ms,omitempty"` // silence between repeats
	Volume       *int      `json:"volume,omitempty"` // overrides the box volume
	Chime        bool      `json:"chime,omitempty"`  // play a chime before
	Tone         string    `json:"tone,omitempty"`   // synthesized tone before (siren, ...)
	OnPreempt    string    `json:"on_preempt,omitempty"`
	Text         string    `json:"text,omitempty"`
	Status       string    `json:"status"`
	// Stream, when set, makes the item a live session: it plays the
	// session's stream instead of media, from the live point at which the
	// box joins until the session ends (Stream.Ends) or the item expires.
	Stream *StreamRef `json:"stream,omitempty"`
}

// Validate checks an item a box received.
func (it PlanItem) Validate() error {
	if err := ValidItemID(it.ID); err != nil {
		return err
	}
	if it.Start.IsZero() || it.Expires.IsZero() {
		return fmt.Errorf("item %s: start and expires are required", it.ID)
	}
	if it.Expires.Before(it.Start) {
		return fmt.Errorf("item %s: expires before it starts", it.ID)
	}
	if it.Priority < Background || it.Priority > Emergency {
		return fmt.Errorf("item %s: invalid priority", it.ID)
	}
	if !ValidTone(it.Tone) {
		return fmt.Errorf("item %s: unknown tone %q", it.ID, it.Tone)
	}
	if it.Stream != nil {
		if err := it.Stream.Validate(); err != nil {
			return fmt.Errorf("item %s: %w", it.ID, err)
		}
		if it.Media != (Media{}) || it.Tone != "" || it.Chime || it.Repeat != 1 {
			return fmt.Errorf("item %s: a live session has no media, tone, chime or repeat", it.ID)
		}
	}
	// A tone-only item (an alert with nothing to say yet) has no media.
	if it.Stream == nil && (it.Tone == "" || it.Media != (Media{})) {
		if err := it.Media.Validate(); err != nil {
			return fmt.Errorf("item %s: %w", it.ID, err)
		}
	}
	if it.Repeat < 1 || it.Repeat > MaxRepeat {
		return fmt.Errorf("item %s: repeat %d is not within 1..%d", it.ID, it.Repeat, MaxRepeat)
	}
	if it.GapMS < 0 || it.GapMS > int64(time.Hour/time.Millisecond) {
		return fmt.Errorf("item %s: gap out of range", it.ID)
	}
	if it.Volume != nil && (*it.Volume < 0 || *it.Volume > 100) {
		return fmt.Errorf("item %s: volume %d is not within 0..100", it.ID, *it.Volume)
	}
	switch it.OnPreempt {
	case "", OnPreemptRestart, OnPreemptResume, OnPreemptDrop:
	default:
		return fmt.Errorf("item %s: unknown on_preempt %q", it.ID, it.OnPreempt)
	}
	switch it.Status {
	case StatusLive, StatusTest:
	default:
		return fmt.Errorf("item %s: unknown status %q", it.ID, it.Status)
	}
	return nil
}

// ValidItemID accepts the ids the controller makes: a name as ValidName
// allows, up to 128 characters.
func ValidItemID(s string) error {
	if len(s) > 128 {
		return fmt.Errorf("item id longer than 128 characters")
	}
	if len(s) > 64 { // ValidName caps at 64; check the characters on the rest
		if err := ValidName(s[:64]); err != nil {
			return err
		}
		return ValidName(s[64:])
	}
	return ValidName(s)
}

// Plan is the full list of items for one target (all, a group or a device)
// over the horizon. A newer plan replaces the older one for that target.
type Plan struct {
	Target    string     `json:"target"` // "all", "group/<g>" or "device/<id>"
	Generated time.Time  `json:"generated"`
	Items     []PlanItem `json:"items"`
	// Rules are the target's recurring rules (schedules), which a box
	// expands itself past the items' horizon while it hears nothing newer,
	// up to RulesUntil. Boxes from before the field ignore both.
	Rules      []PlanRule `json:"rules,omitempty"`
	RulesUntil time.Time  `json:"rules_until,omitzero"`
}

// Validate checks every item.
func (p *Plan) Validate() error {
	if p.Target == "" {
		return errors.New("plan has no target")
	}
	if len(p.Items) > MaxPlanItems {
		return fmt.Errorf("plan has %d items, more than %d", len(p.Items), MaxPlanItems)
	}
	seen := make(map[string]bool, len(p.Items))
	for _, it := range p.Items {
		if err := it.Validate(); err != nil {
			return err
		}
		if seen[it.ID] {
			return fmt.Errorf("item %s appears twice", it.ID)
		}
		seen[it.ID] = true
	}
	return validateRules(p.Rules)
}

// DeviceConfig is what the controller tells one box about itself.
type DeviceConfig struct {
	Name            string   `json:"name,omitempty"`
	Groups          []string `json:"groups"`
	Volume          int      `json:"volume"`
	EmergencyVolume int      `json:"emergency_volume"`
	MediaURL        string   `json:"media_url,omitempty"` // base URL for GET /v1/media/<sha256>
	HeartbeatSec    int      `json:"heartbeat_sec,omitempty"`
	QuietHours      string   `json:"quiet_hours,omitempty"` // "22:00-05:00" in the site's zone
	Timezone        string   `json:"timezone,omitempty"`
	// ControllerKeys are the public keys (FormatPublicKey) the box must
	// trust from now on; during a key rotation, the old and the new one.
	// Empty: keep the keys it has.
	ControllerKeys []string `json:"controller_keys,omitempty"`
	// AnswerSpreadMS spreads the box's answers: it sends them after a
	// random wait of up to this long, so that thousands of boxes answering
	// the same broadcast do not all answer in the same instant, while the
	// broker is still handing the broadcast out. 0: at once.
	AnswerSpreadMS int `json:"answer_spread_ms,omitempty"`
	// Update is a new agent build for this box (see UpdateOffer); nil when
	// none is offered.
	Update *UpdateOffer `json:"update,omitempty"`
}

// MaxAnswerSpreadMS bounds DeviceConfig.AnswerSpreadMS: answers may wait,
// but the report must not lag by more than a minute.
const MaxAnswerSpreadMS = 60_000

// Validate checks the config's ranges and names.
func (c *DeviceConfig) Validate() error {
	if c.Volume < 0 || c.Volume > 100 || c.EmergencyVolume < 0 || c.EmergencyVolume > 100 {
		return errors.New("volume is not within 0..100")
	}
	if len(c.Groups) > MaxGroups {
		return fmt.Errorf("more than %d groups", MaxGroups)
	}
	if len(c.ControllerKeys) > maxSignatures {
		return fmt.Errorf("more than %d controller keys", maxSignatures)
	}
	for _, k := range c.ControllerKeys {
		if _, err := ParsePublicKey(k); err != nil {
			return err
		}
	}
	for _, g := range c.Groups {
		if err := ValidName(g); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	if c.HeartbeatSec < 0 {
		return errors.New("negative heartbeat")
	}
	if c.AnswerSpreadMS < 0 || c.AnswerSpreadMS > MaxAnswerSpreadMS {
		return fmt.Errorf("answer spread %d ms is not within 0..%d", c.AnswerSpreadMS, MaxAnswerSpreadMS)
	}
	if c.Update != nil {
		if err := c.Update.Validate(); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	return nil
}

// Box states as reported in State.State and shown by `loa status`.
const (
	StateIdle           = "idle"
	StatePlaying        = "playing"
	StateOffline        = "offline"
	StateWaitingForTime = "waiting-for-time"
	StateError          = "error"
)

// State is a box's retained heartbeat. The MQTT will publishes
// {online:false, state:offline}.
type State struct {
	Online       bool     `json:"online"`
	State        string   `json:"state"`
	Playing      string   `json:"playing,omitempty"` // item id
	Volume       int      `json:"volume"`
	UptimeSec    int64    `json:"uptime_sec"`
	Version      string   `json:"version,omitempty"`
	CacheBytes   int64    `json:"cache_bytes"`
	TemperatureC *float64 `json:"temperature_c,omitempty"`
	// ClockOffsetMS is the controller's clock minus the box's, in
	// milliseconds, as the box's time sync measured it; nil until synced.
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"`
	// Error is the error-level problems in one line ("soundcard: …"), for
	// controllers from before Problems.
	Error string `json:"error,omitempty"`
	// Problems is what is wrong with the box now, or went wrong lately (a
	// clock jump), one per code. Controllers that do not know the field
	// ignore it.
	Problems []Problem `json:"problems,omitempty"`
	// Arch is the box's architecture in Debian's words (amd64, arm64,
	// armhf), for the builds an update offers.
	Arch string `json:"arch,omitempty"`
	// Update is how the box's last offered update went; nil if none.
	Update *UpdateStatus `json:"update,omitempty"`
	// TimeSource is where the box's time comes from: controller, rtc,
	// nitz, gps, system, saved (a lower bound only: timed items wait) or
	// none. Empty from boxes from before it.
	TimeSource string    `json:"time_source,omitempty"`
	At         time.Time `json:"at"`
}

// Validate checks the state name and the problems' sizes.
func (s *State) Validate() error {
	switch s.State {
	case StateIdle, StatePlaying, StateOffline, StateWaitingForTime, StateError:
	default:
		return fmt.Errorf("unknown state %q", s.State)
	}
	if len(s.Problems) > MaxProblems {
		return fmt.Errorf("%d problems, more than %d", len(s.Problems), MaxProblems)
	}
	for i := range s.Problems {
		if err := s.Problems[i].Validate(); err != nil {
			return fmt.Errorf("problem %d: %w", i+1, err)
		}
	}
	if len(s.Arch) > 16 || len(s.Version) > 64 || len(s.TimeSource) > 16 {
		return errors.New("arch, version or time source too long")
	}
	if u := s.Update; u != nil && (len(u.Rollout) > 64 || len(u.Version) > 64 || len(u.Status) > 16 || len(u.Detail) > MaxProblemDetail) {
		return errors.New("update status too long")
	}
	return nil
}

// Problem codes: what can be wrong with a box. They are stable: the
// controller stores them and `loa status` words them in the user's language.
const (
	// ProblemSoundCard: the sound card cannot be opened (absent, wrong
	// device name, busy) or stopped working. Subject is the output
	// ("alsa:hw:1"), Detail the error. Items due meanwhile fail.
	ProblemSoundCard = "soundcard"
	// ProblemOutput: the last item failed on the output mid-play. Detail
	// is the error.
	ProblemOutput = "output"
	// ProblemDiskFull: the memory card has no room for media, the plan or
	// answers. Value is the free space and Limit what was needed, in MB
	// (Limit 0 when not known); Subject the folder.
	ProblemDiskFull = "disk-full"
	// ProblemCacheWrite: the cache cannot be written (permission denied,
	// read-only file system). Subject is the folder, Detail the error.
	ProblemCacheWrite = "cache-write"
	// ProblemHot: the processor is hotter than the box's threshold. Value
	// is the temperature and Limit the threshold, in °C.
	ProblemHot = "hot"
	// ProblemClockJump: the box's clock jumped (set by hand, NTP after a
	// long outage, a failing clock), or the controller's time as the box
	// measures it moved. Value is the jump in seconds (negative:
	// backwards); Since when it happened. Shown for a while after.
	ProblemClockJump = "clock-jump"
	// ProblemTimeUnknown: the box does not know the time (no answer from
	// the controller, no RTC, modem or GPS time; at most a saved time that
	// is only a lower bound), so it plays no timed item; emergencies that
	// arrive still sound. Subject is the time source (saved or none),
	// Detail why.
	ProblemTimeUnknown = "time-unknown"
)

// Problem levels: an error stops the box doing its work (it shows state
// error while idle); a warning does not.
const (
	LevelError   = "error"
	LevelWarning = "warning"
)

// Bounds of State.Problems, so a box cannot make the controller store much.
const (
	MaxProblems      = 16
	MaxProblemCode   = 32
	MaxProblemDetail = 1024
)

// Problem is one thing wrong with a box, in its heartbeat.
type Problem struct {
	Code  string `json:"code"`
	Level string `json:"level"`
	// Subject is what the problem is about: the output, a folder.
	Subject string `json:"subject,omitempty"`
	// Detail is the error as the box saw it (English, technical).
	Detail string `json:"detail,omitempty"`
	// Value and Limit are the problem's figures (see each code).
	Value float64 `json:"value,omitempty"`
	Limit float64 `json:"limit,omitempty"`
	// Since is when the box first saw it (box's clock, corrected).
	Since time.Time `json:"since"`
}

// Validate checks the code's form, the level and the sizes. Unknown codes
// are accepted: a newer box may know more.
func (p *Problem) Validate() error {
	if err := validCode("problem", p.Code); err != nil {
		return err
	}
	if p.Level != LevelError && p.Level != LevelWarning {
		return fmt.Errorf("problem %s: unknown level %q", p.Code, p.Level)
	}
	if len(p.Subject) > MaxProblemDetail || len(p.Detail) > MaxProblemDetail {
		return fmt.Errorf("problem %s: subject or detail longer than %d bytes", p.Code, MaxProblemDetail)
	}
	if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) || math.IsNaN(p.Limit) || math.IsInf(p.Limit, 0) {
		return fmt.Errorf("problem %s: figures must be finite", p.Code)
	}
	return nil
}

// validCode checks the form of a problem's or a reason's code (what is one
// of them).
func validCode(what, code string) error {
	if code == "" || len(code) > MaxProblemCode {
		return fmt.Errorf("%s code must be 1 to %d characters", what, MaxProblemCode)
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%s code %q: only a-z, 0-9 and -", what, code)
		}
	}
	return nil
}

// EventType is what happened to a plan item on a box.
type EventType string

// Answer-back events, in the order they usually happen.
const (
	EventReceived  EventType = "received"
	EventReady     EventType = "ready"
	EventPlaying   EventType = "playing"
	EventPlayed    EventType = "played"
	EventFailed    EventType = "failed"
	EventMissed    EventType = "missed"
	EventPreempted EventType = "preempted"
	EventExpired   EventType = "expired"
	EventCancelled EventType = "cancelled"
	// EventRejected is about no item: the box refused a message on one of
	// its topics as not from the controller (unsigned, badly signed,
	// replayed). Reason says which and why.
	EventRejected EventType = "rejected"
)

// Final reports whether no further event is expected for the item after e.
func (e EventType) Final() bool {
	switch e {
	case EventPlayed, EventFailed, EventMissed, EventExpired, EventCancelled:
		return true
	}
	return false
}

func (e EventType) valid() bool {
	switch e {
	case EventReceived, EventReady, EventPlaying, EventPlayed, EventFailed, EventMissed,
		EventPreempted, EventExpired, EventCancelled, EventRejected:
		return true
	}
	return false
}

// Event is one answer-back from a box about one item.
type Event struct {
	Item         string    `json:"item"`
	Announcement string    `json:"announcement,omitempty"`
	Type         EventType `json:"type"`
	At           time.Time `json:"at"`
	Reason       string    `json:"reason,omitempty"`
	// Why is Reason as codes, for the controller to translate.
	Why []Why `json:"why,omitempty"`
	// Started is when the item first began to play, sent again with the
	// final answer: answers resent after a broken link may arrive out of
	// order, and the report keeps the start even if "playing" came late.
	Started time.Time `json:"started,omitzero"`
	// MissedMS is, on the final answer of a live session's item, how much
	// of the session the box did not sound while the item was on its output
	// (late or lost packets); HeardMS how much it did.
	MissedMS int64 `json:"missed_ms,omitempty"`
	HeardMS  int64 `json:"heard_ms,omitempty"`
}

// Validate checks the item id and the event type.
func (e *Event) Validate() error {
	if e.Type == EventRejected {
		if e.Item != "" || e.Reason == "" {
			return errors.New("a rejection names no item and says why")
		}
	} else if err := ValidItemID(e.Item); err != nil {
		return err
	}
	if e.MissedMS < 0 || e.HeardMS < 0 {
		return errors.New("negative missed or heard time")
	}
	if err := validWhy(e.Why); err != nil {
		return err
	}
	if !e.Type.valid() {
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	if e.At.IsZero() {
		return errors.New("event has no time")
	}
	return nil
}

// TimeRequest asks the controller for its clock; Sent is the box's clock.
type TimeRequest struct {
	ID   uint64    `json:"id"`
	Sent time.Time `json:"sent"`
}

// Validate is a no-op kept so Decode treats every body alike.
func (r *TimeRequest) Validate() error { return nil }

// TimeResponse echoes the request with the controller's receive time.
type TimeResponse struct {
	ID       uint64    `json:"id"`
	Sent     time.Time `json:"sent"`     // the box's send time, echoed
	Received time.Time `json:"received"` // the controller's clock
}

// Validate is a no-op kept so Decode treats every body alike.
func (r *TimeResponse) Validate() error { return nil }

// MaxBatchEvents bounds the events in one EventBatch: a box sends what
// queued up while it was busy or offline in batches of at most this many.
const MaxBatchEvents = 64

// EventBatch is several answer-back events in one message, oldest first. A
// box sends one when events queue up together (an emergency's "received"
// and "playing", or what waited while it was offline): one MQTT message,
// one acknowledgement and one broker route instead of one per event, which
// matters for thousands of boxes answering the same emergency at once.
type EventBatch struct {
	Events []Event `json:"events"`
}

// Validate checks the batch's size and every event in it.
func (b *EventBatch) Validate() error {
	if len(b.Events) == 0 || len(b.Events) > MaxBatchEvents {
		return fmt.Errorf("a batch holds 1 to %d events, not %d", MaxBatchEvents, len(b.Events))
	}
	for i := range b.Events {
		if err := b.Events[i].Validate(); err != nil {
			return fmt.Errorf("event %d: %w", i+1, err)
		}
	}
	return nil
}

// DecodeEvents decodes a message from a box's events topic: one event
// (KindEvent) or a batch (KindEvents). Either is checked whole; a batch with
// one bad event is refused entirely.
func DecodeEvents(data []byte, site string) ([]Event, error) {
	e, err := decodeEnvelope(data, site, KindEvent, KindEvents)
	if err != nil {
		return nil, err
	}
	if e.Kind == KindEvent {
		var ev Event
		if err := decodeBody(e, KindEvent, &ev); err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	}
	var b EventBatch
	if err := decodeBody(e, KindEvents, &b); err != nil {
		return nil, err
	}
	return b.Events, nil
}
