package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"
)

// TestRiverGaugeStartsAndCancelsFloodAlert: a water-level gauge flapping
// around its threshold starts exactly one flood emergency on its village,
// and the level falling back cancels it.
func TestRiverGaugeStartsAndCancelsFloodAlert(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed")
	}
	rules := `triggers:
  - name: song-lam-flood
    source: gauge-1
    field: water_level_cm
    above: 400
    hysteresis: 20
    cooldown: 30m
    cancel_on_clear: true
    action:
      tone: flood
      text: "Mực nước sông Lam đã lên {{value}} xăng-ti-mét. Bà con vùng trũng di chuyển lên cao ngay."
      groups: [thon-1]
      repeat: 1
all_clear_text: ""
`
	c := newCommune(t, "", rules)
	cfg := c.addBox("box-1", "thon-1")
	c.startBox("box-1", cfg)
	gaugeCfg := c.addBox("gauge-1", "sensors")
	c.waitOnline("box-1")

	var gauge struct{ ID, Site, Broker, Token string }
	b, _ := os.ReadFile(gaugeCfg)
	if err := yaml.Unmarshal(b, &gauge); err != nil {
		t.Fatal(err)
	}
	client := paho.NewClient(paho.NewClientOptions().AddBroker(gauge.Broker).SetClientID("gauge-1").
		SetUsername(gauge.ID).SetPassword(gauge.Token))
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("gauge connect: %v", tok.Error())
	}
	defer client.Disconnect(100)
	send := func(level float64) {
		body := fmt.Sprintf(`{"values":{"water_level_cm":%g}}`, level)
		if tok := client.Publish("loa/e2e/trigger/gauge-1", 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish reading: %v", tok.Error())
		}
	}
	for _, level := range []float64{350, 401, 399, 402, 398, 405} { // flapping around 400
		send(level)
	}
	var active []struct {
		ID     string `json:"id"`
		Tone   string `json:"tone"`
		Source string `json:"source"`
		Text   string `json:"text"`
	}
	eventually(t, 30*time.Second, "the flood emergency to start", func() bool {
		c.cli.json(&active, "emergency", "list")
		return len(active) > 0
	})
	time.Sleep(time.Second) // would a second reading above the line start another one?
	c.cli.json(&active, "emergency", "list")
	if len(active) != 1 || active[0].Tone != "flood" || active[0].Source != "sensor:song-lam-flood" || !strings.Contains(active[0].Text, "401") {
		t.Fatalf("active emergencies: %+v", active)
	}
	eventually(t, 60*time.Second, "box-1 to play the flood alert", func() bool { return c.report(active[0].ID)["box-1"].Status == "played" })

	send(385) // below 400 but not below 380: still high
	send(370)
	eventually(t, 30*time.Second, "the emergency to be cancelled", func() bool {
		c.cli.json(&active, "emergency", "list")
		return len(active) == 0
	})
	var audit []auditRow
	c.cli.json(&audit, "report", "--audit")
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Actor+" "+a.Action)
	}
	got := strings.Join(actions, "; ")
	if strings.Count(got, "emergency.start") != 1 || strings.Count(got, "emergency.cancel") != 1 || strings.Count(got, "sensor:song-lam-flood trigger") < 2 {
		t.Fatalf("audit: %s", got)
	}
}
