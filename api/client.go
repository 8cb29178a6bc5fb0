package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/store"
)

// Client calls the controller's API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client for the controller at base (http://host:8080).
func NewClient(base, token string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 5 * time.Minute}}
}

// APIError is an error the controller answered.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

// ErrUnreachable wraps failures to reach the controller at all.
var ErrUnreachable = errors.New("controller unreachable")

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	return c.doWith(c.http, ctx, method, path, body, contentType, out)
}

// doWith is do through hc.
func (c *Client) doWith(hc *http.Client, ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if lang := os.Getenv("LOA_LANG"); lang != "" {
		// The controller's refusals then come in the user's language too.
		req.Header.Set("Accept-Language", lang)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s", ErrUnreachable, messages.T(messages.ServerUnreachable, c.base))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("the controller answered %s", resp.Status)
		}
		return &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the controller's answer: %w", err)
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// Devices lists the boxes.
func (c *Client) Devices(ctx context.Context) ([]store.Device, error) {
	var out []store.Device
	return out, c.doJSON(ctx, http.MethodGet, "/v1/devices", nil, &out)
}

// AddDevice registers a box and returns its credentials.
func (c *Client) AddDevice(ctx context.Context, req AddDeviceRequest) (AddDeviceResponse, error) {
	var out AddDeviceResponse
	return out, c.doJSON(ctx, http.MethodPost, "/v1/devices", req, &out)
}

// RemoveDevice removes a box.
func (c *Client) RemoveDevice(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(id), nil, nil)
}

// SetVolume sets a box's volume.
func (c *Client) SetVolume(ctx context.Context, id string, volume int) (store.Device, error) {
	var out store.Device
	return out, c.doJSON(ctx, http.MethodPut, "/v1/devices/"+url.PathEscape(id)+"/volume", VolumeRequest{Volume: volume}, &out)
}

// SetLocation places a box on the map (WGS 84 degrees), or takes it off
// when lat and lon are both nil.
func (c *Client) SetLocation(ctx context.Context, id string, lat, lon *float64) (store.Device, error) {
	var out store.Device
	return out, c.doJSON(ctx, http.MethodPut, "/v1/devices/"+url.PathEscape(id)+"/location", LocationRequest{Lat: lat, Lon: lon}, &out)
}

// Groups lists the groups.
func (c *Client) Groups(ctx context.Context) ([]store.Group, error) {
	var out []store.Group
	return out, c.doJSON(ctx, http.MethodGet, "/v1/groups", nil, &out)
}

// AddToGroup puts boxes in a group.
func (c *Client) AddToGroup(ctx context.Context, group string, ids []string) (store.Group, error) {
	var out store.Group
	return out, c.doJSON(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/members", MembersRequest{Devices: ids}, &out)
}

// RemoveFromGroup takes boxes out of a group.
func (c *Client) RemoveFromGroup(ctx context.Context, group string, ids []string) (store.Group, error) {
	var out store.Group
	return out, c.doJSON(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(group)+"/remove", MembersRequest{Devices: ids}, &out)
}

// AddMedia uploads an audio file.
func (c *Client) AddMedia(ctx context.Context, name string, r io.Reader) (MediaInfo, error) {
	var out MediaInfo
	return out, c.do(ctx, http.MethodPost, "/v1/media?name="+url.QueryEscape(name), r, "application/octet-stream", &out)
}

// Media lists the stored media.
func (c *Client) Media(ctx context.Context) ([]MediaInfo, error) {
	var out []MediaInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/media", nil, &out)
}

// RemoveMedia deletes a media file.
func (c *Client) RemoveMedia(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/media/"+url.PathEscape(id), nil, nil)
}

// Announce creates an announcement.
func (c *Client) Announce(ctx context.Context, req AnnounceRequest) (Announcement, error) {
	var out Announcement
	return out, c.doJSON(ctx, http.MethodPost, "/v1/announcements", req, &out)
}

// Announcement reads an announcement or schedule with its deliveries.
func (c *Client) Announcement(ctx context.Context, id string) (Announcement, error) {
	var out Announcement
	return out, c.doJSON(ctx, http.MethodGet, "/v1/announcements/"+url.PathEscape(id), nil, &out)
}

// CancelAnnouncement cancels an announcement.
func (c *Client) CancelAnnouncement(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/announcements/"+url.PathEscape(id), nil, nil)
}

// Schedules lists the schedules.
func (c *Client) Schedules(ctx context.Context) ([]Announcement, error) {
	var out []Announcement
	return out, c.doJSON(ctx, http.MethodGet, "/v1/schedules", nil, &out)
}

// AddSchedule creates a cron schedule.
func (c *Client) AddSchedule(ctx context.Context, req AnnounceRequest) (Announcement, error) {
	var out Announcement
	return out, c.doJSON(ctx, http.MethodPost, "/v1/schedules", req, &out)
}

// RemoveSchedule deletes a schedule.
func (c *Client) RemoveSchedule(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/schedules/"+url.PathEscape(id), nil, nil)
}

// PauseSchedule pauses (or resumes) a schedule.
func (c *Client) PauseSchedule(ctx context.Context, id string, pause bool) (Announcement, error) {
	verb := "resume"
	if pause {
		verb = "pause"
	}
	var out Announcement
	return out, c.doJSON(ctx, http.MethodPost, "/v1/schedules/"+url.PathEscape(id)+"/"+verb, nil, &out)
}

// StatusQuery filters and pages GET /v1/status; zero fields do not filter.
type StatusQuery struct {
	Group    string
	State    string // one of store.StatusStates
	IDPrefix string
	After    string // StatusPage.Next of the page before
	Limit    int    // 1..store.MaxPageSize; 0 is the server's maximum
}

func (q StatusQuery) values() url.Values {
	v := url.Values{}
	set(v, "group", q.Group)
	set(v, "state", q.State)
	set(v, "id_prefix", q.IDPrefix)
	set(v, "after", q.After)
	if q.Limit == 0 {
		q.Limit = store.MaxPageSize
	}
	v.Set("limit", strconv.Itoa(q.Limit))
	return v
}

func set(v url.Values, key, value string) {
	if value != "" {
		v.Set(key, value)
	}
}

// StatusPage reads one page of boxes.
func (c *Client) StatusPage(ctx context.Context, q StatusQuery) (store.StatusPage, error) {
	var out store.StatusPage
	return out, c.doJSON(ctx, http.MethodGet, "/v1/status?"+q.values().Encode(), nil, &out)
}

// EachStatusPage reads every page from q.After on, handing each to fn.
func (c *Client) EachStatusPage(ctx context.Context, q StatusQuery, fn func(store.StatusPage) error) error {
	for {
		p, err := c.StatusPage(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if p.Next == "" {
			return nil
		}
		q.After = p.Next
	}
}

// Status lists every box's state, a page at a time.
func (c *Client) Status(ctx context.Context) ([]store.DeviceStatus, error) {
	out := []store.DeviceStatus{}
	return out, c.EachStatusPage(ctx, StatusQuery{}, func(p store.StatusPage) error {
		out = append(out, p.Devices...)
		return nil
	})
}

// ReportQuery filters and pages GET /v1/report; zero fields do not filter.
type ReportQuery struct {
	Since, Until string // site zone, as ParseTime reads them
	Group        string
	Device       string
	Status       string // one of store.ReportStatuses
	Announcement string
	After        string // ReportPage.Next of the page before
	Limit        int    // 1..store.MaxPageSize; 0 is the server's maximum
}

// ReportPage reads one page of the report.
func (c *Client) ReportPage(ctx context.Context, q ReportQuery) (store.ReportPage, error) {
	v := url.Values{}
	set(v, "since", q.Since)
	set(v, "until", q.Until)
	set(v, "group", q.Group)
	set(v, "device", q.Device)
	set(v, "status", q.Status)
	set(v, "announcement", q.Announcement)
	set(v, "after", q.After)
	if q.Limit == 0 {
		q.Limit = store.MaxPageSize
	}
	v.Set("limit", strconv.Itoa(q.Limit))
	var out store.ReportPage
	return out, c.doJSON(ctx, http.MethodGet, "/v1/report?"+v.Encode(), nil, &out)
}

// EachReportPage reads every page from q.After on, handing each to fn.
func (c *Client) EachReportPage(ctx context.Context, q ReportQuery, fn func(store.ReportPage) error) error {
	for {
		p, err := c.ReportPage(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		if p.Next == "" {
			return nil
		}
		q.After = p.Next
	}
}

// Report lists deliveries scheduled in [since, until), a page at a time.
func (c *Client) Report(ctx context.Context, since, until string) ([]store.Delivery, error) {
	out := []store.Delivery{}
	return out, c.EachReportPage(ctx, ReportQuery{Since: since, Until: until}, func(p store.ReportPage) error {
		out = append(out, p.Rows...)
		return nil
	})
}

// Site reads the site's id and time zone.
func (c *Client) Site(ctx context.Context) (SiteInfo, error) {
	var out SiteInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/site", nil, &out)
}

// StartEmergency starts an emergency now.
func (c *Client) StartEmergency(ctx context.Context, req AnnounceRequest) (Announcement, error) {
	var out Announcement
	return out, c.doJSON(ctx, http.MethodPost, "/v1/emergencies", req, &out)
}

// Emergencies lists the active emergencies.
func (c *Client) Emergencies(ctx context.Context) ([]Announcement, error) {
	var out []Announcement
	return out, c.doJSON(ctx, http.MethodGet, "/v1/emergencies", nil, &out)
}

// CancelEmergency cancels one emergency, or all active ones when id is "".
func (c *Client) CancelEmergency(ctx context.Context, id string) (CancelResponse, error) {
	var out CancelResponse
	return out, c.doJSON(ctx, http.MethodPost, "/v1/emergencies/cancel", CancelRequest{ID: id}, &out)
}

// Audit lists the audit log in [since, until).
func (c *Client) Audit(ctx context.Context, since, until string) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	return out, c.doJSON(ctx, http.MethodGet, "/v1/audit?"+spanQuery(since, until), nil, &out)
}

// AuditRequests lists the mutating API requests in [since, until), each with
// its token's name as the actor.
func (c *Client) AuditRequests(ctx context.Context, since, until string) ([]store.AuditEntry, error) {
	q := spanQuery(since, until)
	if q != "" {
		q += "&"
	}
	var out []store.AuditEntry
	return out, c.doJSON(ctx, http.MethodGet, "/v1/audit?"+q+"requests=only", nil, &out)
}

// Tokens lists the staff API tokens, revoked ones included.
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// AddToken makes a staff API token; the answer holds its secret, shown once.
func (c *Client) AddToken(ctx context.Context, req AddTokenRequest) (AddTokenResponse, error) {
	var out AddTokenResponse
	return out, c.doJSON(ctx, http.MethodPost, "/v1/tokens", req, &out)
}

// RevokeToken revokes the live token called name.
func (c *Client) RevokeToken(ctx context.Context, name string) (TokenInfo, error) {
	var out TokenInfo
	return out, c.doJSON(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, &out)
}

// Keys reports the controller's signing keys and any rotation under way.
func (c *Client) Keys(ctx context.Context) (KeysInfo, error) {
	var out KeysInfo
	return out, c.doJSON(ctx, http.MethodGet, "/v1/keys", nil, &out)
}

// RotateKeys starts a rotation of the signing key.
func (c *Client) RotateKeys(ctx context.Context) (KeysInfo, error) {
	var out KeysInfo
	return out, c.doJSON(ctx, http.MethodPost, "/v1/keys/rotate", nil, &out)
}

// FinishKeys ends a rotation: the next key becomes the only one.
func (c *Client) FinishKeys(ctx context.Context, force bool) (KeysInfo, error) {
	var out KeysInfo
	return out, c.doJSON(ctx, http.MethodPost, "/v1/keys/finish", FinishKeysRequest{Force: force}, &out)
}

// PostCAP sends a CAP 1.2 alert.
func (c *Client) PostCAP(ctx context.Context, r io.Reader) (CAPResponse, error) {
	var out CAPResponse
	return out, c.do(ctx, http.MethodPost, "/v1/alerts/cap", r, "application/cap+xml", &out)
}

// spanQuery encodes the since and until parameters that are set.
func spanQuery(since, until string) string {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	return q.Encode()
}

// StartSession puts a live session or a relay on air.
func (c *Client) StartSession(ctx context.Context, req SessionRequest) (SessionInfo, error) {
	var out SessionInfo
	err := c.doJSON(ctx, http.MethodPost, "/v1/sessions", req, &out)
	return out, err
}

// FeedSession streams a live session's Ogg Opus sound from r until r ends
// (or ctx does) and returns the session as it ended. It has no overall
// timeout: a speech lasts as long as it lasts.
func (c *Client) FeedSession(ctx context.Context, id string, r io.Reader) (SessionInfo, error) {
	hc := *c.http
	hc.Timeout = 0
	var out SessionInfo
	err := c.doWith(&hc, ctx, http.MethodPut, "/v1/sessions/"+url.PathEscape(id)+"/audio", r, "audio/ogg", &out)
	return out, err
}

// StopSession ends a session on air.
func (c *Client) StopSession(ctx context.Context, id string) (SessionInfo, error) {
	var out SessionInfo
	err := c.doJSON(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Session returns one session with each box's answer.
func (c *Client) Session(ctx context.Context, id string) (SessionInfo, error) {
	var out SessionInfo
	err := c.doJSON(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Sessions lists the sessions that started between since and until
// (empty: open), newest first.
func (c *Client) Sessions(ctx context.Context, since, until string) ([]store.Session, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if until != "" {
		q.Set("until", until)
	}
	var out []store.Session
	err := c.doJSON(ctx, http.MethodGet, "/v1/sessions?"+q.Encode(), nil, &out)
	return out, err
}

// RecordingMedia adds session id's recording to the media library.
func (c *Client) RecordingMedia(ctx context.Context, id, name string) (MediaInfo, error) {
	var out MediaInfo
	err := c.doJSON(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/media?name="+url.QueryEscape(name), nil, &out)
	return out, err
}
