package brokerconf

import (
	"strings"
	"testing"
)

func TestNATSSubject(t *testing.T) {
	for _, tc := range []struct{ topic, want string }{
		{"loa/xa-an/plan/all", "loa.xa-an.plan.all"},
		{"loa/xa.an/device/box.1/state", "loa.xa//an.device.box//1.state"},
		{"loa/s/plan/group/+", "loa.s.plan.group.*"},
		{"loa/s/#", "loa.s.>"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			if got := NATSSubject(tc.topic); got != tc.want {
				t.Fatalf("NATSSubject(%q) = %q, want %q", tc.topic, got, tc.want)
			}
		})
	}
}

func TestNATSAccount(t *testing.T) {
	ctl, err := NATSHash("controller-secret")
	if err != nil {
		t.Fatal(err)
	}
	box, _ := NATSHash("box-secret")
	f, err := NATS(Options{Site: "xa-an", ControllerHash: ctl, Devices: []Device{
		{ID: "box-2", Groups: []string{"thon-1"}, NATSHash: box},
		{ID: "old-box", Hash: "$7$101$abc$def"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	acc := string(f.Account)
	for _, want := range []string{
		"jetstream: enabled\n",
		`user: "loa-controller"`,
		`publish: { allow: ["loa.xa-an.>"] }`,
		`subscribe: { allow: ["loa.xa-an.>", "$MQTT.sub.>"] }`,
		`user: "box-2"`,
		`publish: { allow: ["loa.xa-an.device.box-2.state", "loa.xa-an.device.box-2.events", "loa.xa-an.device.box-2.time.req", "loa.xa-an.trigger.box-2"] }`,
		`subscribe: { allow: ["loa.xa-an.plan.all", "loa.xa-an.plan.device.box-2", "loa.xa-an.device.box-2.config", "loa.xa-an.device.box-2.time.resp", "loa.xa-an.stream.*", "loa.xa-an.plan.group.thon-1", "$MQTT.sub.>"] }`,
		`allowed_connection_types: ["MQTT"]`,
		"# box old-box is left out",
	} {
		if !strings.Contains(acc, want) {
			t.Errorf("account file lacks %s:\n%s", want, acc)
		}
	}
	if strings.Join(f.Boxes, ",") != "box-2" || strings.Join(f.Missing, ",") != "old-box" {
		t.Errorf("boxes %v, missing %v", f.Boxes, f.Missing)
	}
	if !strings.Contains(string(f.Conf), `"loa-xa-an": { include "loa-account.conf" }`) {
		t.Errorf("conf:\n%s", f.Conf)
	}
	if users := ParseNATSUsers(f.Account); users["box-2"] != box || users["loa-controller"] != ctl {
		t.Errorf("ParseNATSUsers = %v", users)
	}
	if h, _ := NATSHashFor(f.Account, "loa-controller", "controller-secret"); h != ctl {
		t.Error("NATSHashFor made a new hash for an unchanged password")
	}
	if _, err := NATS(Options{Site: "xa-an", ControllerHash: "$7$101$abc$def"}); err == nil {
		t.Error("a mosquitto hash was taken for bcrypt")
	}
}
