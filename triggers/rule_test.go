package triggers

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestRuleValidate(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		change func(*Rule)
		field  string // "" when valid
	}{
		{"valid", func(*Rule) {}, ""},
		{"valid below", func(r *Rule) { r.Above, r.Below = nil, ptr(-5) }, ""},
		{"valid media and groups", func(r *Rule) {
			r.Action = Action{Media: sha, Groups: []string{"thon-1"}, Repeat: 3}
		}, ""},
		{"empty name", func(r *Rule) { r.Name = "" }, "name"},
		{"bad source", func(r *Rule) { r.Source = "river/1" }, "source"},
		{"bad field", func(r *Rule) { r.Field = "water level" }, "field"},
		{"no threshold", func(r *Rule) { r.Above = nil }, "above"},
		{"both thresholds", func(r *Rule) { r.Below = ptr(1) }, "below"},
		{"NaN threshold", func(r *Rule) { r.Above = ptr(math.NaN()) }, "above"},
		{"infinite below", func(r *Rule) { r.Above, r.Below = nil, ptr(math.Inf(-1)) }, "below"},
		{"negative hysteresis", func(r *Rule) { r.Hysteresis = -1 }, "hysteresis"},
		{"negative for", func(r *Rule) { r.For = -time.Second }, "for"},
		{"for too long", func(r *Rule) { r.For = 25 * time.Hour }, "for"},
		{"no cooldown", func(r *Rule) { r.Cooldown = 0 }, "cooldown"},
		{"short cooldown", func(r *Rule) { r.Cooldown = 30 * time.Second }, "cooldown"},
		{"negative stale_after", func(r *Rule) { r.StaleAfter = -time.Minute }, "stale_after"},
		{"unknown tone", func(r *Rule) { r.Action.Tone = "tsunami" }, "action.tone"},
		{"nothing to broadcast", func(r *Rule) { r.Action.Tone, r.Action.Text = "", "" }, "action.tone"},
		{"unknown placeholder", func(r *Rule) { r.Action.Text = "Mực nước {{level}}" }, "action.text"},
		{"unclosed placeholder", func(r *Rule) { r.Action.Text = "Mực nước {{value" }, "action.text"},
		{"text too long", func(r *Rule) { r.Action.Text = strings.Repeat("ư", MaxTextLen+1) }, "action.text"},
		{"bad media", func(r *Rule) { r.Action.Media = "abc" }, "action.media"},
		{"no target", func(r *Rule) { r.Action.All = false }, "action.groups"},
		{"two targets", func(r *Rule) { r.Action.Groups = []string{"thon-1"} }, "action.all"},
		{"bad group", func(r *Rule) { r.Action.All, r.Action.Groups = false, []string{"thôn 1"} }, "action.groups"},
		{"repeat too high", func(r *Rule) { r.Action.Repeat = 101 }, "action.repeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := flood()
			tt.change(&r)
			err := r.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Field != tt.field {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field+": ") {
				t.Errorf("message %q does not name %s", err, tt.field)
			}
		})
	}
}

// riverYAML is the controller config section for a river gauge, as the
// documentation shows it.
const riverYAML = `
triggers:
  - name: song-lam-flood
    source: song-lam-gauge      # publishes to loa/<site>/trigger/song-lam-gauge
    field: water_level_cm
    above: 400
    hysteresis: 20              # clears only below 380
    for: 2m                     # must stay above 400 for two minutes
    cooldown: 30m
    cancel_on_clear: true
    stale_after: 15m
    action:
      tone: flood
      text: "Khẩn cấp! Mực nước sông Lam đã lên {{value}} xăng-ti-mét, vượt mức báo động. Bà con vùng trũng hãy di chuyển người và tài sản lên nơi cao ngay."
      groups: [thon-1, thon-3]
      repeat: 3
`

func TestRuleYAML(t *testing.T) {
	var cfg struct {
		Triggers []Rule `yaml:"triggers"`
	}
	dec := yaml.NewDecoder(strings.NewReader(riverYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Triggers) != 1 {
		t.Fatalf("%d rules", len(cfg.Triggers))
	}
	r := cfg.Triggers[0]
	if r.Name != "song-lam-flood" || r.Source != "song-lam-gauge" || r.Field != "water_level_cm" ||
		r.Above == nil || *r.Above != 400 || r.Below != nil || r.Hysteresis != 20 || r.For != 2*time.Minute ||
		r.Cooldown != 30*time.Minute || !r.CancelOnClear || r.StaleAfter != 15*time.Minute ||
		r.Action.Tone != "flood" || len(r.Action.Groups) != 2 || r.Action.Repeat != 3 || r.Action.All {
		t.Errorf("decoded %+v", r)
	}
	e, err := NewEngine(cfg.Triggers)
	if err != nil {
		t.Fatal(err)
	}
	high := Reading{Values: map[string]float64{"water_level_cm": 412.5}}
	e.Observe("song-lam-gauge", high, t0)
	got := e.Observe("song-lam-gauge", high, t0.Add(2*time.Minute))
	if len(got) != 1 || got[0].Kind != Start || !strings.Contains(got[0].Action.Text, "đã lên 412,5 xăng-ti-mét") {
		t.Fatalf("got %+v", got)
	}

	// A typo in a key is an error, and a bare number is not a duration.
	for _, bad := range []string{
		strings.Replace(riverYAML, "cooldown:", "cooldwn:", 1),
		strings.Replace(riverYAML, "cooldown: 30m", "cooldown: 30", 1),
	} {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(bad)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err == nil {
			t.Errorf("decoding accepted:\n%s", bad)
		}
	}
}
