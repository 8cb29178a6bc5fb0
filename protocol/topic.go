package protocol

import (
	"fmt"
	"strings"
)

// Topics builds the topic names of one site. The zero value is not usable;
// use NewTopics.
type Topics struct {
	root string // "loa/<site>"
}

// NewTopics returns the topic names for site.
func NewTopics(site string) Topics { return Topics{root: "loa/" + site} }

// Root is "loa/<site>".
func (t Topics) Root() string { return t.root }

// PlanAll is the retained plan every box follows.
func (t Topics) PlanAll() string { return t.root + "/plan/all" }

// PlanGroup is the retained plan of one group (a village, a zone).
func (t Topics) PlanGroup(group string) string { return t.root + "/plan/group/" + group }

// PlanDevice is the retained plan of one box.
func (t Topics) PlanDevice(id string) string { return t.root + "/plan/device/" + id }

// DeviceConfig is the retained config of one box.
func (t Topics) DeviceConfig(id string) string { return t.root + "/device/" + id + "/config" }

// DeviceState is the retained heartbeat of one box.
func (t Topics) DeviceState(id string) string { return t.root + "/device/" + id + "/state" }

// DeviceEvents carries one box's answer-back events.
func (t Topics) DeviceEvents(id string) string { return t.root + "/device/" + id + "/events" }

// TimeRequest carries one box's time-sync requests.
func (t Topics) TimeRequest(id string) string { return t.root + "/device/" + id + "/time/req" }

// TimeResponse carries the controller's answers to TimeRequest.
func (t Topics) TimeResponse(id string) string { return t.root + "/device/" + id + "/time/resp" }

// Trigger carries sensor readings from source.
func (t Topics) Trigger(source string) string { return t.root + "/trigger/" + source }

// Stream carries the packets of one live session (StreamPacket).
func (t Topics) Stream(session string) string { return t.root + "/stream/" + session }

// AllStreams matches every session's stream topic (a box's read access).
func (t Topics) AllStreams() string { return t.root + "/stream/+" }

// Wildcard filters the controller subscribes to.

// AllDeviceStates matches every box's state topic.
func (t Topics) AllDeviceStates() string { return t.root + "/device/+/state" }

// AllDeviceEvents matches every box's events topic.
func (t Topics) AllDeviceEvents() string { return t.root + "/device/+/events" }

// AllTimeRequests matches every box's time request topic.
func (t Topics) AllTimeRequests() string { return t.root + "/device/+/time/req" }

// AllTriggers matches every trigger topic.
func (t Topics) AllTriggers() string { return t.root + "/trigger/+" }

// TopicKind names what a topic carries.
type TopicKind string

// The kinds of topic under a site root.
const (
	TopicPlanAll      TopicKind = "plan/all"
	TopicPlanGroup    TopicKind = "plan/group"
	TopicPlanDevice   TopicKind = "plan/device"
	TopicDeviceConfig TopicKind = "device/config"
	TopicDeviceState  TopicKind = "device/state"
	TopicDeviceEvents TopicKind = "device/events"
	TopicTimeRequest  TopicKind = "device/time/req"
	TopicTimeResponse TopicKind = "device/time/resp"
	TopicTrigger      TopicKind = "trigger"
	TopicStream       TopicKind = "stream"
)

// Parse splits a topic of this site into its kind and its argument (group,
// device id or trigger source; empty for plan/all).
func (t Topics) Parse(topic string) (TopicKind, string, error) {
	rest, ok := strings.CutPrefix(topic, t.root+"/")
	if !ok {
		return "", "", fmt.Errorf("topic %q is not under %q", topic, t.root)
	}
	p := strings.Split(rest, "/")
	switch {
	case len(p) == 2 && p[0] == "plan" && p[1] == "all":
		return TopicPlanAll, "", nil
	case len(p) == 3 && p[0] == "plan" && p[1] == "group" && ValidName(p[2]) == nil:
		return TopicPlanGroup, p[2], nil
	case len(p) == 3 && p[0] == "plan" && p[1] == "device" && ValidName(p[2]) == nil:
		return TopicPlanDevice, p[2], nil
	case len(p) == 3 && p[0] == "device" && ValidName(p[1]) == nil:
		switch p[2] {
		case "config":
			return TopicDeviceConfig, p[1], nil
		case "state":
			return TopicDeviceState, p[1], nil
		case "events":
			return TopicDeviceEvents, p[1], nil
		}
	case len(p) == 4 && p[0] == "device" && ValidName(p[1]) == nil && p[2] == "time":
		switch p[3] {
		case "req":
			return TopicTimeRequest, p[1], nil
		case "resp":
			return TopicTimeResponse, p[1], nil
		}
	case len(p) == 2 && p[0] == "trigger" && ValidName(p[1]) == nil:
		return TopicTrigger, p[1], nil
	case len(p) == 2 && p[0] == "stream" && ValidName(p[1]) == nil:
		return TopicStream, p[1], nil
	}
	return "", "", fmt.Errorf("unknown topic %q", topic)
}

// ValidName reports whether s may be used as a site, device, group or source
// name: 1 to 64 of a-z, A-Z, 0-9, '-', '_' and '.', so it is safe in a topic,
// a file name and a URL path.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("name is empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("name %q is longer than 64 characters", s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return fmt.Errorf("name %q may only use letters a-z, digits, '-', '_' and '.'", s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("name %q is not allowed", s)
	}
	return nil
}

// SubackError reports the filters a broker refused in a SUBACK (codes from
// 0x80): MQTT clients such as paho count a SUBACK as success whatever its
// codes, and a broker may refuse for passing reasons (mochi answers 0x91,
// "packet identifier in use", while it is sending QoS 1 messages to the
// same client), so callers must check and subscribe again.
func SubackError(granted map[string]byte) error {
	var refused []string
	for filter, code := range granted {
		if code >= 0x80 {
			refused = append(refused, fmt.Sprintf("%s (code %#x)", filter, code))
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return fmt.Errorf("the broker refused the subscription to %s", strings.Join(refused, ", "))
}
