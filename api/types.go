package api

import (
	"time"

	"github.com/loa-commune/loa/store"
)

// AddDeviceRequest registers a box.
type AddDeviceRequest struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Volume *int     `json:"volume,omitempty"`
	// Lat and Lon place the box on the console's map (WGS 84 degrees):
	// both or neither.
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
}

// AddDeviceResponse carries the box's secret once, and a ready agent config.
type AddDeviceResponse struct {
	Device      store.Device `json:"device"`
	Token       string       `json:"token"`
	AgentConfig string       `json:"agent_config"`
}

// VolumeRequest sets a box's volume.
type VolumeRequest struct {
	Volume int `json:"volume"`
}

// LocationRequest places a box on the map (WGS 84 degrees); both null (or
// absent) takes it off.
type LocationRequest struct {
	Lat *float64 `json:"lat"`
	Lon *float64 `json:"lon"`
}

// MembersRequest adds or removes boxes from a group.
type MembersRequest struct {
	Devices []string `json:"devices"`
}

// MediaInfo is a stored media file as the API shows it.
type MediaInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Codec      string    `json:"codec"`
	Size       int64     `json:"size"`
	DurationMS int64     `json:"duration_ms"`
	CreatedAt  time.Time `json:"created_at"`
	Existed    bool      `json:"existed,omitempty"`
	// LoudnessLUFS and TruePeakDBTP are the original's, as uploaded;
	// absent for media not yet measured.
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDBTP *float64 `json:"true_peak_dbtp,omitempty"`
	// Play is the file boxes download (loudness-normalised Opus); absent
	// while it is being made for media from before normalisation.
	Play *PlayFile `json:"play,omitempty"`
}

// PlayFile is the rendition of a media file that boxes download.
type PlayFile struct {
	ID           string   `json:"id"`
	Codec        string   `json:"codec"`
	Size         int64    `json:"size"`
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
}

// AnnounceRequest creates an announcement (At empty = now) or, with Cron, a
// schedule.
type AnnounceRequest struct {
	Media    string        `json:"media"`
	Targets  store.Targets `json:"targets"`
	At       string        `json:"at,omitempty"`
	Cron     string        `json:"cron,omitempty"`
	Name     string        `json:"name,omitempty"`
	Priority string        `json:"priority,omitempty"`
	Repeat   int           `json:"repeat,omitempty"`
	GapSec   int           `json:"gap_sec,omitempty"`
	// Text is spoken (text to speech on the controller) when Media is empty,
	// and is kept with the items for the report either way.
	Text string `json:"text,omitempty"`
	// Tone is the alert tone boxes play before an emergency (siren, flood,
	// storm, fire, other); an emergency may be a tone alone.
	Tone string `json:"tone,omitempty"`
	// Exercise marks a drill: a spoken "this is an exercise" goes first and
	// the report marks it.
	Exercise bool `json:"exercise,omitempty"`
	// Relay makes a schedule relay this radio stream (http or https) for
	// ForSec seconds at every occurrence, instead of playing media.
	Relay  string `json:"relay,omitempty"`
	ForSec int    `json:"for_sec,omitempty"`
}

// CancelRequest cancels one emergency (ID) or every active one.
type CancelRequest struct {
	ID string `json:"id,omitempty"`
}

// CancelResponse lists what was cancelled and the all-clear, if one plays.
type CancelResponse struct {
	Cancelled []string `json:"cancelled"`
	AllClear  string   `json:"all_clear,omitempty"`
}

// Announcement is an announcement or schedule with its targeted boxes and
// what they reported. Only GET of one announcement and of the active
// emergencies carry Deliveries; the answer to creating one names its boxes
// (each is pending then), and lists of schedules leave them out.
type Announcement struct {
	ID         string           `json:"id"`
	Kind       string           `json:"kind"`
	Name       string           `json:"name,omitempty"`
	Cron       string           `json:"cron,omitempty"`
	Start      time.Time        `json:"start,omitzero"`
	Next       time.Time        `json:"next,omitzero"`
	Created    time.Time        `json:"created,omitzero"`
	Targets    store.Targets    `json:"targets"`
	Media      string           `json:"media"`
	Priority   string           `json:"priority"`
	Repeat     int              `json:"repeat"`
	Tone       string           `json:"tone,omitempty"`
	Text       string           `json:"text,omitempty"`
	Exercise   bool             `json:"exercise"`
	Source     string           `json:"source"`
	Paused     bool             `json:"paused"`
	Cancelled  bool             `json:"cancelled"`
	Devices    []string         `json:"devices"`
	Deliveries []store.Delivery `json:"deliveries,omitempty"`
}

// ErrorResponse is every error's body.
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// AddTokenRequest makes a staff API token.
type AddTokenRequest struct {
	Name string `json:"name"`
	// Role is admin, operator, viewer or trigger.
	Role string `json:"role"`
	// Expires is how long the token works, as a Go duration ("720h");
	// empty: until it is revoked.
	Expires string `json:"expires,omitempty"`
}

// Token statuses.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// TokenInfo is a staff API token as the API shows it; never its secret.
type TokenInfo struct {
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Status     string    `json:"status"` // active, expired or revoked
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// AddTokenResponse carries the new token's secret, shown this once.
type AddTokenResponse struct {
	Token  TokenInfo `json:"token"`
	Secret string    `json:"secret"`
}
