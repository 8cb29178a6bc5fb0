package cap

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/loa-commune/loa/protocol"
)

// What to do with Exercise and Test alerts (Config.Exercise, Config.Test).
const (
	ModePlay   = "play"   // play them, marked as exercises
	ModeIgnore = "ignore" // answer that they were ignored
)

// DefaultMaxResourceBytes is the largest audio resource Decide passes on.
const DefaultMaxResourceBytes = 16 << 20

// Config is how the controller treats CAP alerts (the "cap" section of its
// YAML config). Zero fields mean their defaults, so a Config{} with Areas
// set works.
type Config struct {
	// Languages lists language tags in order of preference; "vi" also
	// matches "vi-VN". Default vi, vi-VN, en.
	Languages []string `yaml:"languages"`
	// MinSeverity and MinUrgency are the least an alert must have to
	// play. Default Severe and Expected; Unknown lets everything through.
	MinSeverity Severity `yaml:"min_severity"`
	MinUrgency  Urgency  `yaml:"min_urgency"`
	// Areas maps CAP areas to loudspeaker groups. An alert whose areas
	// match none is ignored.
	Areas []AreaMapping `yaml:"areas"`
	// Exercise and Test say what to do with alerts of those statuses:
	// "play" (as an exercise) or "ignore". Defaults play and ignore.
	Exercise string `yaml:"exercise"`
	Test     string `yaml:"test"`
	// EventTones maps words of a CAP event ("lũ quét", "flood") or a CAP
	// category ("Met") to the tone the boxes sound first (flood, storm,
	// fire, other, siren). The event is looked at first, longest match
	// wins; then the categories; else siren. Entries from the YAML file
	// are added to the defaults.
	EventTones map[string]string `yaml:"event_tones"`
	// MaxResourceBytes is the largest audio resource to use; a larger one
	// is skipped and the text is spoken instead. Default 16 MiB.
	MaxResourceBytes int64 `yaml:"max_resource_bytes"`
}

// AreaMapping sends alerts for one CAP area to some groups (or to all).
// Give Geocode or AreaDesc.
type AreaMapping struct {
	// Geocode matches an area's <geocode>: "valueName=value" (e.g.
	// "VN-PROVINCE=Lào Cai") or just a value matching any valueName.
	Geocode string `yaml:"geocode,omitempty"`
	// AreaDesc matches an area's <areaDesc>: the whole of it, or an item
	// of a list separated by semicolons or new lines, or the first comma
	// part of one ("Bản Na Mèo" matches "Bản Na Mèo, xã Sơn Thủy", and
	// "Xã Sơn Thủy" does not). Case, Vietnamese diacritics and spacing
	// are ignored: "Xa Son Thuy" matches "Xã Sơn Thủy".
	AreaDesc string   `yaml:"area_desc,omitempty"`
	Groups   []string `yaml:"groups,omitempty"`
	All      bool     `yaml:"all,omitempty"` // every loudspeaker
}

// DefaultConfig returns the defaults (a fresh copy each call). It has no
// Areas: every alert is ignored until some are configured.
func DefaultConfig() Config {
	return Config{
		Languages:        []string{"vi", "vi-VN", "en"},
		MinSeverity:      SeveritySevere,
		MinUrgency:       UrgencyExpected,
		Exercise:         ModePlay,
		Test:             ModeIgnore,
		EventTones:       DefaultEventTones(),
		MaxResourceBytes: DefaultMaxResourceBytes,
	}
}

// DefaultEventTones returns the default event and category tones.
func DefaultEventTones() map[string]string {
	return map[string]string{
		// Floods.
		"flood": protocol.ToneFlood, "flash flood": protocol.ToneFlood, "inundation": protocol.ToneFlood,
		"lũ": protocol.ToneFlood, "lũ quét": protocol.ToneFlood, "lụt": protocol.ToneFlood,
		"ngập": protocol.ToneFlood, "ngập lụt": protocol.ToneFlood,
		// Storms and the weather category.
		"storm": protocol.ToneStorm, "typhoon": protocol.ToneStorm, "cyclone": protocol.ToneStorm,
		"tropical depression": protocol.ToneStorm, "bão": protocol.ToneStorm,
		"áp thấp nhiệt đới": protocol.ToneStorm, "Met": protocol.ToneStorm,
		// Fires, and the fire category.
		"fire": protocol.ToneFire, "wildfire": protocol.ToneFire, "cháy": protocol.ToneFire,
		"cháy rừng": protocol.ToneFire,
	}
}

// ConfigError names the setting that is wrong.
type ConfigError struct {
	Field string // e.g. "areas[2].groups"
	Err   error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("cap config %s: %v", e.Field, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// withDefaults fills in the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Languages) == 0 {
		c.Languages = d.Languages
	}
	if c.MinSeverity == "" {
		c.MinSeverity = d.MinSeverity
	}
	if c.MinUrgency == "" {
		c.MinUrgency = d.MinUrgency
	}
	if c.Exercise == "" {
		c.Exercise = d.Exercise
	}
	if c.Test == "" {
		c.Test = d.Test
	}
	if c.EventTones == nil {
		c.EventTones = d.EventTones
	}
	if c.MaxResourceBytes == 0 {
		c.MaxResourceBytes = d.MaxResourceBytes
	}
	return c
}

// Validate checks every setting (zero ones stand for their defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
	}
	for i, l := range c.Languages {
		if !validLanguage(l) {
			return bad(fmt.Sprintf("languages[%d]", i), "%q is not a language tag like vi or en-US", l)
		}
	}
	if c.MinSeverity.rank() < 0 {
		return bad("min_severity", "%q is not one of Extreme, Severe, Moderate, Minor, Unknown", c.MinSeverity)
	}
	if c.MinUrgency.rank() < 0 {
		return bad("min_urgency", "%q is not one of Immediate, Expected, Future, Past, Unknown", c.MinUrgency)
	}
	for i, m := range c.Areas {
		f := fmt.Sprintf("areas[%d]", i)
		geocode, desc := strings.TrimSpace(m.Geocode), strings.TrimSpace(m.AreaDesc)
		switch {
		case geocode == "" && desc == "":
			return bad(f, "give geocode or area_desc")
		case geocode != "" && desc != "":
			return bad(f, "give geocode or area_desc, not both")
		case geocode != "":
			name, value, _ := splitGeocode(geocode)
			if value == "" || (strings.Contains(geocode, "=") && name == "") {
				return bad(f+".geocode", "%q is not valueName=value or a value", m.Geocode)
			}
		}
		if len(m.Groups) == 0 && !m.All {
			return bad(f, "no groups, and all is not set")
		}
		for j, g := range m.Groups {
			if err := protocol.ValidName(g); err != nil {
				return bad(fmt.Sprintf("%s.groups[%d]", f, j), "%v", err)
			}
		}
	}
	for _, m := range []struct{ field, mode string }{{"exercise", c.Exercise}, {"test", c.Test}} {
		if m.mode != ModePlay && m.mode != ModeIgnore {
			return bad(m.field, "%q is not play or ignore", m.mode)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.EventTones)) {
		if len(words(key)) == 0 {
			return bad("event_tones", "key %q has no words", key)
		}
		if tone := c.EventTones[key]; tone == "" || !protocol.ValidTone(tone) {
			return bad("event_tones."+key, "%q is not one of siren, flood, storm, fire, other", tone)
		}
	}
	if c.MaxResourceBytes < 0 {
		return bad("max_resource_bytes", "%d is negative", c.MaxResourceBytes)
	}
	return nil
}

// splitGeocode splits "name=value" (or a bare value) and trims both.
func splitGeocode(s string) (name, value string, named bool) {
	name, value, named = strings.Cut(s, "=")
	if !named {
		return "", strings.TrimSpace(s), false
	}
	return strings.TrimSpace(name), strings.TrimSpace(value), true
}

// matches reports whether the mapping is for area a.
func (m AreaMapping) matches(a *Area) bool {
	if g := strings.TrimSpace(m.Geocode); g != "" {
		name, value, named := splitGeocode(g)
		value = fold(value)
		for _, gc := range a.Geocodes {
			if (!named || strings.EqualFold(name, strings.TrimSpace(gc.Name))) && fold(gc.Value) == value {
				return true
			}
		}
		return false
	}
	want := fold(m.AreaDesc)
	if want == "" {
		return false
	}
	if fold(a.Desc) == want {
		return true
	}
	// "Bản Na Mèo, xã Sơn Thủy; Bản Mùa Xuân": items are separated by
	// semicolons (or new lines); within one, the first comma part is the
	// place and the rest where it lies, so "xã Sơn Thủy" is not matched.
	for item := range strings.FieldsFuncSeq(a.Desc, func(r rune) bool { return r == ';' || r == '\n' }) {
		place, _, _ := strings.Cut(item, ",")
		if fold(item) == want || fold(place) == want {
			return true
		}
	}
	return false
}

// Vietnamese (and a few other Latin) letters with diacritics, by the
// letter they fold to.
var foldTable = func() map[rune]rune {
	m := map[rune]rune{}
	for base, variants := range map[rune]string{
		'a': "àáảãạăằắẳẵặâầấẩẫậäå",
		'e': "èéẻẽẹêềếểễệë",
		'i': "ìíỉĩịîï",
		'o': "òóỏõọôồốổỗộơờớởỡợö",
		'u': "ùúủũụưừứửữựûü",
		'y': "ỳýỷỹỵÿ",
		'd': "đ",
	} {
		for _, r := range variants {
			m[r] = base
		}
	}
	return m
}()

// fold lower-cases s, drops diacritics (precomposed or combining) and
// collapses white space, for comparing place names.
func fold(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		r = unicode.ToLower(r)
		if f, ok := foldTable[r]; ok {
			r = f
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// words splits s into lower-case words (letters, digits and combining
// marks), keeping diacritics: "báo" and "bão" are different words.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r)
	})
}

// toneFor picks the tone for an info block: the longest EventTones key
// whose words appear together in the event, else a key naming one of its
// categories, else siren.
func toneFor(in *Info, tones map[string]string) string {
	event := words(in.Event)
	best, bestWords := "", 0
	for _, key := range slices.Sorted(maps.Keys(tones)) {
		kw := words(key)
		if len(kw) > bestWords && containsRun(event, kw) {
			best, bestWords = key, len(kw)
		}
	}
	if best != "" {
		return tones[best]
	}
	for _, c := range in.Categories {
		for _, key := range slices.Sorted(maps.Keys(tones)) {
			if strings.EqualFold(strings.TrimSpace(key), string(c)) {
				return tones[key]
			}
		}
	}
	return protocol.ToneSiren
}

// containsRun reports whether run appears in ws as consecutive words.
func containsRun(ws, run []string) bool {
	if len(run) == 0 {
		return false
	}
	for i := 0; i+len(run) <= len(ws); i++ {
		if slices.Equal(ws[i:i+len(run)], run) {
			return true
		}
	}
	return false
}
