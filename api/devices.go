package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/brokerconf"
	"github.com/loa-commune/loa/messages"
	"github.com/loa-commune/loa/protocol"
	"github.com/loa-commune/loa/store"
)

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	d, err := s.store.Devices(r.Context())
	if err != nil {
		return err
	}
	if d == nil {
		d = []store.Device{}
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) addDevice(w http.ResponseWriter, r *http.Request) error {
	var req AddDeviceRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if err := protocol.ValidName(req.ID); err != nil {
		return fail(http.StatusBadRequest, messages.BadName, "box id: "+err.Error())
	}
	if req.ID == auth.ControllerUser { // the broker would never let this box in
		return fail(http.StatusBadRequest, messages.BadName, "box id: "+req.ID+" is the controller's own MQTT name; choose another id")
	}
	for _, g := range req.Groups {
		if err := protocol.ValidName(g); err != nil {
			return fail(http.StatusBadRequest, messages.BadName, "group: "+err.Error())
		}
	}
	vol := s.opts.DefaultVolume
	if req.Volume != nil {
		vol = *req.Volume
	}
	if vol < 0 || vol > 100 {
		return fail(http.StatusBadRequest, messages.BadVolume, fmt.Sprint(vol))
	}
	if err := CheckLocation(req.Lat, req.Lon); err != nil {
		return &httpError{status: http.StatusBadRequest, err: err}
	}
	token := auth.NewToken()
	// An external mosquitto cannot check auth.Hash: keep its own hash too (`loa broker config`).
	brokerHash, err := brokerconf.MosquittoHash(token)
	if err != nil {
		return err
	}
	d := store.Device{ID: req.ID, Name: req.Name, Groups: req.Groups, Volume: vol, CreatedAt: s.opts.Now().UTC(), Lat: req.Lat, Lon: req.Lon}
	if err := s.store.AddDevice(r.Context(), d, auth.Hash(token)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fail(http.StatusConflict, messages.DeviceExists, req.ID, req.ID)
		}
		return err
	}
	if err := s.store.SetBrokerHash(r.Context(), req.ID, brokerHash); err != nil {
		return err
	}
	d, err = s.store.Device(r.Context(), req.ID)
	if err != nil {
		return err
	}
	s.changed(r, d.ID)
	return writeJSON(w, http.StatusCreated, AddDeviceResponse{Device: d, Token: token, AgentConfig: s.agentConfig(d.ID, token)})
}

// agentConfig is the YAML file loa-agent reads on the box.
func (s *Server) agentConfig(id, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# loa-agent config for box %s. Keep it secret: the token is this box's password.\n", id)
	fmt.Fprintf(&b, "id: %s\nsite: %s\nbroker: %s\nserver: %s\ntoken: %s\n", id, s.opts.Site, s.opts.BrokerURL, s.opts.ServerURL, token)
	b.WriteString("cache: /var/lib/loa-agent\noutput: alsa\n")
	if ca := strings.TrimSpace(s.opts.CAPEM); ca != "" {
		b.WriteString("# The certificate authority the box trusts for ssl:// and https://.\nca_pem: |\n")
		for _, line := range strings.Split(ca, "\n") {
			fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(line))
		}
	}
	if s.opts.ClientCertRequired {
		fmt.Fprintf(&b, "# The broker wants this box's client certificate: make it with `loa pki box %s --dir PKI`\n", id)
		fmt.Fprintf(&b, "# (where the CA is), copy both files to the box and set:\n# cert_file: /etc/loa-agent/box-%s.crt\n# key_file: /etc/loa-agent/box-%s.key\n", id, id)
	}
	if s.opts.Keys != nil {
		b.WriteString("# The controller's public keys: the box obeys only messages they signed.\ncontroller_keys:\n")
		for _, k := range s.opts.Keys.Trusted() {
			fmt.Fprintf(&b, "  - %s\n", k)
		}
	}
	return b.String()
}

// changed re-publishes the configs of the boxes named and all plans after
// the registry changed.
func (s *Server) changed(r *http.Request, ids ...string) {
	if len(ids) == 0 {
		s.bc.Replan()
		return
	}
	if err := s.bc.PublishConfigs(r.Context(), ids...); err != nil {
		s.log.Error("publish configs", "err", err)
	}
	s.bc.Replan()
}

func (s *Server) removeDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.store.RemoveDevice(r.Context(), id); err != nil {
		return notFound(err, messages.UnknownDevice, id, id)
	}
	if err := s.bc.ForgetDevice(id); err != nil {
		s.log.Error("clear config of removed box", "device", id, "err", err)
	}
	s.changed(r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setVolume(w http.ResponseWriter, r *http.Request) error {
	var req VolumeRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Volume < 0 || req.Volume > 100 {
		return fail(http.StatusBadRequest, messages.BadVolume, fmt.Sprint(req.Volume))
	}
	id := r.PathValue("id")
	if err := s.store.SetVolume(r.Context(), id, req.Volume); err != nil {
		return notFound(err, messages.UnknownDevice, id, id)
	}
	s.changed(r, id)
	d, err := s.store.Device(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

// CheckLocation says, in words for people, what is wrong with a box's
// coordinates: nil if both are given within range, or neither is.
func CheckLocation(lat, lon *float64) *messages.Error {
	if (lat == nil) != (lon == nil) {
		return messages.New(messages.LocationBoth)
	}
	if store.ValidLocation(lat, lon) != nil {
		return messages.New(messages.BadLocation, strconv.FormatFloat(*lat, 'g', -1, 64), strconv.FormatFloat(*lon, 'g', -1, 64))
	}
	return nil
}

// setLocation places a box on the map, or takes it off. Boxes do not need
// it, so nothing is published.
func (s *Server) setLocation(w http.ResponseWriter, r *http.Request) error {
	var req LocationRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if err := CheckLocation(req.Lat, req.Lon); err != nil {
		return &httpError{status: http.StatusBadRequest, err: err}
	}
	id := r.PathValue("id")
	if err := s.store.SetDeviceLocation(r.Context(), id, req.Lat, req.Lon); err != nil {
		return notFound(err, messages.UnknownDevice, id, id)
	}
	d, err := s.store.Device(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	g, err := s.store.Groups(r.Context())
	if err != nil {
		return err
	}
	if g == nil {
		g = []store.Group{}
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *Server) addMembers(w http.ResponseWriter, r *http.Request) error {
	return s.changeMembers(w, r, s.store.AddToGroup)
}

func (s *Server) removeMembers(w http.ResponseWriter, r *http.Request) error {
	return s.changeMembers(w, r, s.store.RemoveFromGroup)
}

func (s *Server) changeMembers(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, group string, ids []string) error) error {
	group := r.PathValue("group")
	if err := protocol.ValidName(group); err != nil {
		return fail(http.StatusBadRequest, messages.BadName, "group: "+err.Error())
	}
	var req MembersRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if len(req.Devices) == 0 {
		return fail(http.StatusBadRequest, messages.BadRequest, "name at least one box")
	}
	for _, id := range req.Devices {
		if _, err := s.store.Device(r.Context(), id); err != nil {
			return notFound(err, messages.UnknownDevice, id, id)
		}
	}
	if err := change(r.Context(), group, req.Devices); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fail(http.StatusNotFound, messages.NotFound, err.Error())
		}
		return err
	}
	s.changed(r, req.Devices...)
	members, err := s.store.GroupMembers(r.Context(), group)
	if errors.Is(err, store.ErrNotFound) {
		members = []string{}
	} else if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, store.Group{Name: group, Devices: members})
}
