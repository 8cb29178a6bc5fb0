package triggers

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loa-commune/loa/protocol"
)

// Bounds Validate holds rules to.
const (
	// MinCooldown is the shortest cooldown a rule may have: without one, a
	// sensor flapping across both lines would alert again and again.
	MinCooldown = time.Minute
	// MaxCooldown, MaxFor and MaxStaleAfter catch typos such as 30h for 30m.
	MaxCooldown   = 7 * 24 * time.Hour
	MaxFor        = 24 * time.Hour
	MaxStaleAfter = 7 * 24 * time.Hour
	// MaxTextLen bounds the text of an action, in characters.
	MaxTextLen = 1000
)

// Rule says when readings of one field of one source start and end an
// emergency, and what the emergency broadcasts where. It is loaded from the
// controller's YAML config; durations are written like 30s, 5m or 1h30m.
type Rule struct {
	// Name identifies the rule in decisions, the audit log and Restore.
	Name string `yaml:"name"`
	// Source is the sensor: the last part of loa/<site>/trigger/<source>.
	Source string `yaml:"source"`
	// Field is the value watched (water_level_cm).
	Field string `yaml:"field"`
	// Exactly one of Above and Below: fire when the value is strictly above
	// (below) it.
	Above *float64 `yaml:"above,omitempty"`
	Below *float64 `yaml:"below,omitempty"`
	// Hysteresis: an active rule clears only when the value is strictly
	// below Above−Hysteresis (above Below+Hysteresis).
	Hysteresis float64 `yaml:"hysteresis"`
	// For is how long the condition must hold before the rule fires; zero
	// fires on the first reading that meets it.
	For time.Duration `yaml:"for,omitempty"`
	// Cooldown is the least time between two starts, and between a clear
	// and the next start.
	Cooldown time.Duration `yaml:"cooldown"`
	// CancelOnClear cancels the emergency when the value clears; otherwise
	// it runs on until staff cancel it.
	CancelOnClear bool `yaml:"cancel_on_clear"`
	// StaleAfter, when set, is how long without a reading of Field before
	// the sensor counts as silent (a Stale notice; the state is kept).
	StaleAfter time.Duration `yaml:"stale_after,omitempty"`
	// Action is the emergency a Start asks for.
	Action Action `yaml:"action"`
}

// Action is the emergency to broadcast: the same choices as `loa emergency`.
type Action struct {
	// Tone is the alert tone boxes synthesize first: siren, flood, storm,
	// fire or other (empty: the controller's default for emergencies).
	Tone string `yaml:"tone,omitempty" json:"tone,omitempty"`
	// Text is spoken (text to speech) when Media is empty. {{value}} is
	// replaced by the reading, Vietnamese style (412,5), and {{field}} by
	// the field name.
	Text string `yaml:"text,omitempty" json:"text,omitempty"`
	// Media is the SHA-256 of stored audio to play instead of the text.
	Media string `yaml:"media,omitempty" json:"media,omitempty"`
	// Groups or All: where to broadcast (exactly one of the two).
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	All    bool     `yaml:"all,omitempty" json:"all,omitempty"`
	// Repeat is how many times to play; 0 means once.
	Repeat int `yaml:"repeat,omitempty" json:"repeat,omitempty"`
	// Exercise marks a drill.
	Exercise bool `yaml:"exercise,omitempty" json:"exercise,omitempty"`
}

// RuleError names the rule and the setting (as spelled in YAML) that is
// wrong.
type RuleError struct {
	Rule  string // the rule's name, possibly empty or invalid
	Field string // name, above, action.text, ...
	Err   error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("trigger rule %q: %s: %v", e.Rule, e.Field, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Validate checks every setting of the rule and returns a *RuleError naming
// the first one that is wrong.
func (r Rule) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &RuleError{Rule: r.Name, Field: field, Err: fmt.Errorf(format, args...)}
	}
	for _, f := range []struct{ field, value string }{{"name", r.Name}, {"source", r.Source}, {"field", r.Field}} {
		if err := protocol.ValidName(f.value); err != nil {
			return &RuleError{Rule: r.Name, Field: f.field, Err: err}
		}
	}
	switch {
	case r.Above == nil && r.Below == nil:
		return bad("above", "give a threshold: above or below")
	case r.Above != nil && r.Below != nil:
		return bad("below", "give above or below, not both")
	case r.Above != nil && !finite(*r.Above):
		return bad("above", "%v is not a finite number", *r.Above)
	case r.Below != nil && !finite(*r.Below):
		return bad("below", "%v is not a finite number", *r.Below)
	case !finite(r.Hysteresis) || r.Hysteresis < 0:
		return bad("hysteresis", "%v must be a number of at least 0", r.Hysteresis)
	case r.For < 0 || r.For > MaxFor:
		return bad("for", "%v is not within 0..%v", r.For, MaxFor)
	case r.Cooldown < MinCooldown || r.Cooldown > MaxCooldown:
		return bad("cooldown", "%v is not within %v..%v (it stops a flapping sensor from alerting again and again)",
			r.Cooldown, MinCooldown, MaxCooldown)
	case r.StaleAfter < 0 || r.StaleAfter > MaxStaleAfter:
		return bad("stale_after", "%v is not within 0..%v", r.StaleAfter, MaxStaleAfter)
	}
	if field, err := r.Action.validate(); err != nil {
		return &RuleError{Rule: r.Name, Field: "action." + field, Err: err}
	}
	return nil
}

// validate checks an action and says which of its settings is wrong.
func (a Action) validate() (field string, err error) {
	if !protocol.ValidTone(a.Tone) {
		return "tone", fmt.Errorf("unknown tone %q (use siren, flood, storm, fire or other)", a.Tone)
	}
	if a.Tone == "" && a.Text == "" && a.Media == "" {
		return "tone", errors.New("nothing to broadcast: give a tone, a text or media")
	}
	if !utf8.ValidString(a.Text) {
		return "text", errors.New("not valid UTF-8")
	}
	if n := utf8.RuneCountInString(a.Text); n > MaxTextLen {
		return "text", fmt.Errorf("%d characters, more than %d", n, MaxTextLen)
	}
	if _, err := render(a.Text, "", 0); err != nil {
		return "text", err
	}
	if a.Media != "" {
		if err := protocol.ValidSHA256(a.Media); err != nil {
			return "media", err
		}
	}
	switch {
	case a.All && len(a.Groups) > 0:
		return "all", errors.New("give all or groups, not both")
	case !a.All && len(a.Groups) == 0:
		return "groups", errors.New("say where to broadcast: groups, or all: true")
	case len(a.Groups) > protocol.MaxGroups:
		return "groups", fmt.Errorf("%d groups, more than %d", len(a.Groups), protocol.MaxGroups)
	}
	for _, g := range a.Groups {
		if err := protocol.ValidName(g); err != nil {
			return "groups", err
		}
	}
	if a.Repeat < 0 || a.Repeat > protocol.MaxRepeat {
		return "repeat", fmt.Errorf("%d is not within 0..%d", a.Repeat, protocol.MaxRepeat)
	}
	return "", nil
}

// render fills the {{value}} and {{field}} placeholders of text. Spaces inside
// the braces are allowed; any other placeholder is an error, so a typo in the
// config is caught when it is loaded rather than spoken to a village.
func render(text, field string, value float64) (string, error) {
	var b strings.Builder
	rest := text
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return "", errors.New(`"{{" without "}}"`)
		}
		b.WriteString(rest[:i])
		switch name := strings.TrimSpace(rest[i+2 : i+j]); name {
		case "value":
			b.WriteString(spokenNumber(value))
		case "field":
			b.WriteString(field)
		default:
			return "", fmt.Errorf("unknown placeholder {{%s}} (use {{value}} or {{field}})", name)
		}
		rest = rest[i+j+2:]
	}
}

// spokenNumber writes x as Vietnamese text to speech reads it: at most two
// decimals, a decimal comma and no thousands separator (espeak-ng's
// Vietnamese voice reads "1.250" as one thousand two hundred and fifty).
func spokenNumber(x float64) string {
	if math.Abs(x) < 1e15 { // beyond, x*100 may overflow and there are no decimals to round
		x = math.Round(x*100) / 100
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if s == "-0" {
		s = "0"
	}
	return strings.Replace(s, ".", ",", 1)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
