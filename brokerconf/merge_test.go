package brokerconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// siteFiles writes the mosquitto and NATS files of one site into
// dir/mosquitto and dir/nats, as `loa broker config` would.
func siteFiles(t *testing.T, dir, site, controller string, boxes ...string) {
	t.Helper()
	mh, err := MosquittoHash("secret")
	if err != nil {
		t.Fatal(err)
	}
	nh, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var devs []Device
	for _, b := range boxes {
		devs = append(devs, Device{ID: b, Groups: []string{"thon-1"}, Hash: mh, NATSHash: string(nh)})
	}
	m, err := Mosquitto(Options{Site: site, ControllerUser: controller, ControllerHash: mh, Devices: devs, Dir: "/etc/mosquitto/" + site})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(filepath.Join(dir, "mosquitto")); err != nil {
		t.Fatal(err)
	}
	n, err := NATS(Options{Site: site, ControllerUser: controller, ControllerHash: string(nh), Devices: devs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Write(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
}

func TestMergeKeepsSitesApart(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	siteFiles(t, a, "xa-a", "ctl-a", "a-loa-1", "a-loa-2")
	siteFiles(t, b, "xa-b", "ctl-b", "b-loa-1")

	m, err := MergeMosquitto([]string{filepath.Join(a, "mosquitto"), filepath.Join(b, "mosquitto")}, "/etc/mosquitto/loa")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Boxes, ","); got != "a-loa-1,a-loa-2,b-loa-1" {
		t.Errorf("boxes %s", got)
	}
	users := ParsePasswd(m.Passwd)
	for _, u := range []string{"ctl-a", "ctl-b", "a-loa-1", "a-loa-2", "b-loa-1"} {
		if _, ok := users[u]; !ok {
			t.Errorf("password file lacks %s:\n%s", u, m.Passwd)
		}
	}
	// Each user's block names only its own site's topics.
	acl := string(m.ACL)
	for _, block := range strings.Split(acl, "\nuser ")[1:] {
		user, rules, _ := strings.Cut(block, "\n")
		site := "loa/xa-a/"
		if strings.HasPrefix(user, "b-") || user == "ctl-b" {
			site = "loa/xa-b/"
		}
		for _, r := range strings.Split(strings.TrimSpace(rules), "\n") {
			if strings.HasPrefix(r, "topic ") && !strings.Contains(r, " "+site) {
				t.Errorf("user %s has a rule outside %s: %s", user, site, r)
			}
		}
	}
	if !strings.Contains(string(m.Conf), "acl_file /etc/mosquitto/loa/loa.acl") {
		t.Errorf("conf names the wrong folder:\n%s", m.Conf)
	}

	n, err := MergeNATS([]string{filepath.Join(a, "nats"), filepath.Join(b, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Files) != 2 || n.Files["loa-xa-a.conf"] == nil || n.Files["loa-xa-b.conf"] == nil {
		t.Fatalf("account files %v", n.Files)
	}
	if c := string(n.Conf); !strings.Contains(c, `"loa-xa-a": { include "loa-xa-a.conf" }`) || !strings.Contains(c, `"loa-xa-b": { include "loa-xa-b.conf" }`) {
		t.Errorf("accounts block:\n%s", c)
	}
	if got := strings.Join(n.Boxes, ","); got != "a-loa-1,a-loa-2,b-loa-1" {
		t.Errorf("NATS boxes %s", got)
	}
	out := t.TempDir()
	if changed, err := n.Write(out); err != nil || !changed {
		t.Fatalf("write: %v, %v", changed, err)
	}
	if changed, err := n.Write(out); err != nil || changed {
		t.Fatalf("second write changed %v, %v", changed, err)
	}
}

func TestMergeRefusesAUserInTwoSites(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	siteFiles(t, a, "xa-a", "ctl-a", "loa-1")
	siteFiles(t, b, "xa-b", "ctl-b", "loa-1") // the same box id in another commune
	_, err := MergeMosquitto([]string{filepath.Join(a, "mosquitto"), filepath.Join(b, "mosquitto")}, "/x")
	if err == nil || !strings.Contains(err.Error(), `"loa-1"`) || !strings.Contains(err.Error(), "unique across the sites") {
		t.Fatalf("mosquitto merge: %v", err)
	}
	_, err = MergeNATS([]string{filepath.Join(a, "nats"), filepath.Join(b, "nats")})
	if err == nil || !strings.Contains(err.Error(), `"loa-1"`) {
		t.Fatalf("NATS merge: %v", err)
	}
	c := t.TempDir()
	siteFiles(t, c, "xa-c", "ctl-a", "c-loa-1") // the same controller username
	if _, err := MergeMosquitto([]string{filepath.Join(a, "mosquitto"), filepath.Join(c, "mosquitto")}, "/x"); err == nil || !strings.Contains(err.Error(), "broker_username") {
		t.Fatalf("two controllers named alike: %v", err)
	}
	if _, err := MergeMosquitto([]string{filepath.Join(a, "nowhere")}, "/x"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing folder: %v", err)
	}
}
