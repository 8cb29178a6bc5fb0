package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// Device is a registered loudspeaker box.
type Device struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	Volume    int       `json:"volume"`
	CreatedAt time.Time `json:"created_at"`
	// Lat and Lon place the box on a map (WGS 84 degrees); both nil when
	// it has no place.
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
}

// ErrBadLocation: coordinates out of range, or only one of them.
var ErrBadLocation = errors.New("not a valid location")

// ValidLocation checks a box's coordinates: both or neither, latitude
// within -90..90 and longitude within -180..180 degrees.
func ValidLocation(lat, lon *float64) error {
	switch {
	case lat == nil && lon == nil:
		return nil
	case lat == nil || lon == nil:
		return fmt.Errorf("give both latitude and longitude, or neither: %w", ErrBadLocation)
	case !(*lat >= -90 && *lat <= 90):
		return fmt.Errorf("latitude %g is not within -90..90: %w", *lat, ErrBadLocation)
	case !(*lon >= -180 && *lon <= 180):
		return fmt.Errorf("longitude %g is not within -180..180: %w", *lon, ErrBadLocation)
	}
	return nil
}

// AddDevice registers d (with its location, if it has one) with the hash of
// its secret token, and puts it in its groups. ErrExists if the id is taken.
func (s *Store) AddDevice(ctx context.Context, d Device, tokenHash string) error {
	if err := ValidLocation(d.Lat, d.Lon); err != nil {
		return fmt.Errorf("add device %s: %w", d.ID, err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, d.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("device %s: %w", d.ID, ErrExists)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices(id, name, token_hash, volume, lat, lon, created_at) VALUES(?,?,?,?,?,?,?)`,
			d.ID, d.Name, tokenHash, d.Volume, d.Lat, d.Lon, ms(d.CreatedAt)); err != nil {
			return fmt.Errorf("add device %s: %w", d.ID, err)
		}
		for _, g := range d.Groups {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members(group_name, device_id) VALUES(?,?)`, g, d.ID); err != nil {
				return fmt.Errorf("add device %s to group %s: %w", d.ID, g, err)
			}
		}
		return nil
	})
}

// Devices lists every device with its groups, by id.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	return s.devices(ctx, "")
}

// devices lists the devices, or only the one with id when id is set.
func (s *Store) devices(ctx context.Context, id string) ([]Device, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT d.id, d.name, d.volume, d.lat, d.lon, d.created_at, COALESCE(group_concat(g.group_name, ','), '')
		FROM devices d LEFT JOIN group_members g ON g.device_id = d.id WHERE ? = '' OR d.id = ? GROUP BY d.id ORDER BY d.id`, id, id)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var created int64
		var groups string
		var lat, lon sql.NullFloat64
		if err := rows.Scan(&d.ID, &d.Name, &d.Volume, &lat, &lon, &created, &groups); err != nil {
			return nil, err
		}
		d.Lat, d.Lon = floatOrNil(lat), floatOrNil(lon)
		d.CreatedAt = fromMS(created)
		d.Groups = splitList(groups)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Device returns one device, or ErrNotFound.
func (s *Store) Device(ctx context.Context, id string) (Device, error) {
	if id == "" {
		return Device{}, fmt.Errorf("device with no id: %w", ErrNotFound)
	}
	one, err := s.devices(ctx, id)
	if err != nil {
		return Device{}, err
	}
	if len(one) == 0 {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return one[0], nil
}

// DeviceTokenHash returns the stored hash of a device's token.
func (s *Store) DeviceTokenHash(ctx context.Context, id string) (string, error) {
	var h string
	err := s.read.QueryRowContext(ctx, `SELECT token_hash FROM devices WHERE id = ?`, id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	return h, err
}

// RemoveDevice deletes a device, its group memberships and its state.
func (s *Store) RemoveDevice(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove device %s: %w", id, err)
	}
	return mustAffect(res, "device "+id)
}

// SetVolume sets a device's volume (0..100).
func (s *Store) SetVolume(ctx context.Context, id string, volume int) error {
	if volume < 0 || volume > 100 {
		return fmt.Errorf("volume %d is not within 0..100", volume)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE devices SET volume = ? WHERE id = ?`, volume, id)
	if err != nil {
		return fmt.Errorf("set volume of %s: %w", id, err)
	}
	return mustAffect(res, "device "+id)
}

// SetDeviceLocation places a device on the map, or takes it off when lat
// and lon are both nil. ErrBadLocation if only one is given or one is out
// of range; ErrNotFound for an unknown device.
func (s *Store) SetDeviceLocation(ctx context.Context, id string, lat, lon *float64) error {
	if err := ValidLocation(lat, lon); err != nil {
		return fmt.Errorf("set location of %s: %w", id, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE devices SET lat = ?, lon = ? WHERE id = ?`, lat, lon, id)
	if err != nil {
		return fmt.Errorf("set location of %s: %w", id, err)
	}
	return mustAffect(res, "device "+id)
}

// floatOrNil is a nullable REAL column's value, nil for NULL.
func floatOrNil(v sql.NullFloat64) *float64 {
	if !v.Valid {
		return nil
	}
	return &v.Float64
}

// Group is a named set of devices (a village, a zone).
type Group struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices"`
}

// Groups lists every group with its members.
func (s *Store) Groups(ctx context.Context) ([]Group, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT group_name, group_concat(device_id, ',') FROM group_members GROUP BY group_name ORDER BY group_name`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		var members string
		if err := rows.Scan(&g.Name, &members); err != nil {
			return nil, err
		}
		g.Devices = splitList(members)
		out = append(out, g)
	}
	return out, rows.Err()
}

// DeviceIDs lists the ids of every device, sorted.
func (s *Store) DeviceIDs(ctx context.Context) ([]string, error) {
	return s.queryStrings(ctx, "list devices", `SELECT id FROM devices ORDER BY id`)
}

// queryStrings runs a query of one text column and returns its values
// (never nil); what names it in errors.
func (s *Store) queryStrings(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// GroupNames lists the names of the groups that have boxes.
func (s *Store) GroupNames(ctx context.Context) ([]string, error) {
	return s.queryStrings(ctx, "list groups", `SELECT DISTINCT group_name FROM group_members ORDER BY group_name`)
}

// GroupMembers returns the devices of a group, in id order; ErrNotFound if
// it has none.
func (s *Store) GroupMembers(ctx context.Context, group string) ([]string, error) {
	ids, err := s.queryStrings(ctx, "list group "+group, `SELECT device_id FROM group_members WHERE group_name = ? ORDER BY device_id`, group)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("group %s: %w", group, ErrNotFound)
	}
	return ids, nil
}

// AddToGroup puts devices in a group (creating it). Every device must exist;
// nothing changes if one does not.
func (s *Store) AddToGroup(ctx context.Context, group string, ids []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE id = ?`, id).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("device %s: %w", id, ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members(group_name, device_id) VALUES(?,?)`, group, id); err != nil {
				return fmt.Errorf("add %s to group %s: %w", id, group, err)
			}
		}
		return nil
	})
}

// RemoveFromGroup takes devices out of a group. Every device must be in it;
// nothing changes if one is not.
func (s *Store) RemoveFromGroup(ctx context.Context, group string, ids []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_name = ? AND device_id = ?`, group, id)
			if err != nil {
				return fmt.Errorf("remove %s from group %s: %w", id, group, err)
			}
			if err := mustAffect(res, "device "+id+" in group "+group); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeviceStatus is a device with what it last reported.
type DeviceStatus struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Groups     []string  `json:"groups"`
	Online     bool      `json:"online"`
	State      string    `json:"state"`
	Playing    *string   `json:"playing"`
	Volume     int       `json:"volume"`
	LastSeen   time.Time `json:"last_seen"`
	Version    string    `json:"version,omitempty"`
	UptimeSec  int64     `json:"uptime_sec,omitempty"`
	CacheBytes int64     `json:"cache_bytes,omitempty"`
	// ClockOffsetMS is the controller's clock minus the box's, as the box
	// measured it; nil until it has synced.
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"`
	Error         string `json:"error,omitempty"`
	// Problems is what the box last said is wrong with it (kept while it
	// is offline: what was wrong when it went silent is a clue).
	Problems []protocol.Problem `json:"problems,omitempty"`
	Arch     string             `json:"arch,omitempty"`
	// Update is how the last update offered to the box went.
	Update *protocol.UpdateStatus `json:"update,omitempty"`
	// TimeSource is where the box's time came from when it last reported
	// (protocol.State.TimeSource), kept while it is offline.
	TimeSource string `json:"time_source,omitempty"`
	// Lat and Lon are the box's place on the map, as in Device.
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
}

// MarshalJSON writes last_seen as null for a box never heard from, rather
// than year 1.
func (d DeviceStatus) MarshalJSON() ([]byte, error) {
	type plain DeviceStatus // no MarshalJSON: no recursion
	return json.Marshal(struct {
		plain
		LastSeen *time.Time `json:"last_seen"`
	}{plain(d), timeOrNull(d.LastSeen)})
}

// Status lists every device with its last reported state; boxes that never
// reported are offline.
func (s *Store) Status(ctx context.Context) ([]DeviceStatus, error) {
	devs, err := s.Devices(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT device_id, online, state, playing, volume, version, uptime_sec, cache_bytes, clock_offset_ms, error, problems, arch, update_status, time_source, last_seen FROM device_state`)
	if err != nil {
		return nil, fmt.Errorf("read device state: %w", err)
	}
	defer rows.Close()
	type st struct {
		online                        bool
		state, playing, v, e, p, a, u string
		ts                            string // time source
		volume                        int
		uptime, cache, lastSeen       int64
		offset                        sql.NullInt64
	}
	seen := map[string]st{}
	for rows.Next() {
		var id string
		var x st
		if err := rows.Scan(&id, &x.online, &x.state, &x.playing, &x.volume, &x.v, &x.uptime, &x.cache, &x.offset, &x.e, &x.p, &x.a, &x.u, &x.ts, &x.lastSeen); err != nil {
			return nil, err
		}
		seen[id] = x
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]DeviceStatus, 0, len(devs))
	for _, d := range devs {
		ds := DeviceStatus{ID: d.ID, Name: d.Name, Groups: d.Groups, State: protocol.StateOffline, Volume: d.Volume, Lat: d.Lat, Lon: d.Lon}
		if x, ok := seen[d.ID]; ok {
			ds.Online, ds.State, ds.Version, ds.Error = x.online, x.state, x.v, x.e
			ds.Problems = decodeProblems(x.p)
			ds.Arch, ds.Update, ds.TimeSource = x.a, decodeUpdate(x.u), x.ts
			ds.UptimeSec, ds.CacheBytes, ds.LastSeen = x.uptime, x.cache, fromMS(x.lastSeen)
			if x.offset.Valid {
				ds.ClockOffsetMS = &x.offset.Int64
			}
			if !x.online {
				ds.State = protocol.StateOffline
			}
			if x.playing != "" && x.online {
				p := x.playing
				ds.Playing = &p
			}
		}
		out = append(out, ds)
	}
	return out, nil
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	l := strings.Split(s, ",")
	sort.Strings(l)
	return l
}

func mustAffect(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
