package cap

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/loa-commune/loa/protocol"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if !slices.Equal(c.Languages, []string{"vi", "vi-VN", "en"}) || c.MinSeverity != SeveritySevere ||
		c.MinUrgency != UrgencyExpected || c.Exercise != ModePlay || c.Test != ModeIgnore ||
		c.MaxResourceBytes != 16<<20 || len(c.Areas) != 0 {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c.EventTones["flood"] = "x"
	if DefaultConfig().EventTones["flood"] != protocol.ToneFlood {
		t.Error("DefaultConfig shares its map")
	}
	if !reflect.DeepEqual(Config{}.withDefaults(), DefaultConfig()) {
		t.Error("a zero Config does not mean the defaults")
	}
}

// The section as it would sit under "cap:" in the controller's YAML file.
const yamlSection = `
languages: [vi, en]
min_severity: Moderate
min_urgency: Immediate
exercise: ignore
test: play
max_resource_bytes: 1048576
event_tones:
  sạt lở: other
  flood: siren
areas:
  - geocode: VN-COMMUNE=14875
    all: true
  - area_desc: Bản Na Mèo
    groups: [ban-na-meo]
  - geocode: "Thanh Hóa"
    groups: [trung-tam, cho]
`

func TestConfigYAML(t *testing.T) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(yamlSection))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []AreaMapping{
		{Geocode: "VN-COMMUNE=14875", All: true},
		{AreaDesc: "Bản Na Mèo", Groups: []string{"ban-na-meo"}},
		{Geocode: "Thanh Hóa", Groups: []string{"trung-tam", "cho"}},
	}
	if !reflect.DeepEqual(c.Areas, want) {
		t.Errorf("areas %+v", c.Areas)
	}
	if !slices.Equal(c.Languages, []string{"vi", "en"}) || c.MinSeverity != SeverityModerate || c.MinUrgency != UrgencyImmediate ||
		c.Exercise != ModeIgnore || c.Test != ModePlay || c.MaxResourceBytes != 1<<20 {
		t.Errorf("config %+v", c)
	}
	// Tones from the file are added to the defaults.
	if c.EventTones["sạt lở"] != protocol.ToneOther || c.EventTones["flood"] != protocol.ToneSiren || c.EventTones["bão"] != protocol.ToneStorm {
		t.Errorf("event tones %v", c.EventTones)
	}

	var bad Config
	dec = yaml.NewDecoder(strings.NewReader("min_severty: Minor\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil {
		t.Error("a misspelt key is accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"bad language", func(c *Config) { c.Languages = []string{"vi", "tiếng việt"} }, `cap config languages[1]: "tiếng việt" is not a language tag like vi or en-US`},
		{"bad severity", func(c *Config) { c.MinSeverity = "severe" }, `cap config min_severity: "severe" is not one of Extreme, Severe, Moderate, Minor, Unknown`},
		{"bad urgency", func(c *Config) { c.MinUrgency = "Soon" }, `cap config min_urgency: "Soon" is not one of Immediate, Expected, Future, Past, Unknown`},
		{"empty mapping", func(c *Config) { c.Areas = append(c.Areas, AreaMapping{Groups: []string{"a"}}) }, "cap config areas[5]: give geocode or area_desc"},
		{"both", func(c *Config) { c.Areas[0].AreaDesc = "Xã Sơn Thủy" }, "cap config areas[0]: give geocode or area_desc, not both"},
		{"geocode without name", func(c *Config) { c.Areas[0].Geocode = "=14875" }, `cap config areas[0].geocode: "=14875" is not valueName=value or a value`},
		{"geocode without value", func(c *Config) { c.Areas[0].Geocode = "VN-COMMUNE=" }, `cap config areas[0].geocode: "VN-COMMUNE=" is not valueName=value or a value`},
		{"no target", func(c *Config) { c.Areas[1].Groups = nil }, "cap config areas[1]: no groups, and all is not set"},
		{"bad group", func(c *Config) { c.Areas[1].Groups = []string{"Bản Na Mèo"} }, `cap config areas[1].groups[0]: name "Bản Na Mèo" may only use letters a-z, digits, '-', '_' and '.'`},
		{"bad exercise", func(c *Config) { c.Exercise = "yes" }, `cap config exercise: "yes" is not play or ignore`},
		{"bad test", func(c *Config) { c.Test = "skip" }, `cap config test: "skip" is not play or ignore`},
		{"bad tone", func(c *Config) { c.EventTones = map[string]string{"lũ": "whistle"} }, `cap config event_tones.lũ: "whistle" is not one of siren, flood, storm, fire, other`},
		{"empty tone key", func(c *Config) { c.EventTones = map[string]string{" - ": "siren"} }, `cap config event_tones: key " - " has no words`},
		{"negative size", func(c *Config) { c.MaxResourceBytes = -1 }, "cap config max_resource_bytes: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			tt.change(&c)
			err := c.Validate()
			var ce *ConfigError
			if err == nil || err.Error() != tt.want || !errors.As(err, &ce) {
				t.Errorf("Validate() = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ a, b string }{
		{"Xã Sơn Thủy", "xa son thuy"},
		{"Xã Sơn Thuỷ", "Xã Sơn Thủy"}, // old and new tone placement
		{"XÃ  SƠN\tTHỦY ", "xa son thuy"},
		{"Thanh Ho\u0301a", "Thanh Hóa"}, // combining acute accent
		{"Đồng Văn", "dong van"},
		{"Mường Lát", "muong lat"},
		{"Quảng Ngãi", "quang ngai"},
		{"Bắc Kạn", "bac kan"},
	}
	for _, tt := range tests {
		if fold(tt.a) != fold(tt.b) {
			t.Errorf("fold(%q) = %q, fold(%q) = %q", tt.a, fold(tt.a), tt.b, fold(tt.b))
		}
	}
	if fold("Sơn Thủy") == fold("Sơn Thủy A") {
		t.Error("different places fold alike")
	}
}

func TestAreaMatching(t *testing.T) {
	area := func(desc string, geocodes ...NamedValue) *Area { return &Area{Desc: desc, Geocodes: geocodes} }
	tests := []struct {
		name string
		m    AreaMapping
		a    *Area
		want bool
	}{
		{"geocode name and value", AreaMapping{Geocode: "VN-COMMUNE=14875"}, area("x", NamedValue{"VN-COMMUNE", "14875"}), true},
		{"geocode name case", AreaMapping{Geocode: "vn-commune = 14875"}, area("x", NamedValue{"VN-COMMUNE", "14875"}), true},
		{"geocode other name", AreaMapping{Geocode: "VN-DISTRICT=14875"}, area("x", NamedValue{"VN-COMMUNE", "14875"}), false},
		{"geocode other value", AreaMapping{Geocode: "VN-COMMUNE=14876"}, area("x", NamedValue{"VN-COMMUNE", "14875"}), false},
		{"geocode value only", AreaMapping{Geocode: "14875"}, area("x", NamedValue{"ANY", "14875"}), true},
		{"geocode value diacritics", AreaMapping{Geocode: "VN-PROVINCE=Lao Cai"}, area("x", NamedValue{"VN-PROVINCE", "Lào Cai"}), true},
		{"geocode does not match desc", AreaMapping{Geocode: "14875"}, area("14875"), false},
		{"desc exact", AreaMapping{AreaDesc: "Xã Sơn Thủy"}, area("Xã Sơn Thủy"), true},
		{"desc without diacritics", AreaMapping{AreaDesc: "xa son thuy"}, area("Xã Sơn Thủy"), true},
		{"desc first comma part", AreaMapping{AreaDesc: "Xã Sơn Thủy"}, area("Xã Sơn Thủy, huyện Quan Sơn, tỉnh Thanh Hóa"), true},
		{"desc where it lies is not it", AreaMapping{AreaDesc: "Xã Sơn Thủy"}, area("Bản Na Mèo, xã Sơn Thủy"), false},
		{"desc list item", AreaMapping{AreaDesc: "Bản Mùa Xuân"}, area("Bản Na Mèo; Bản Mùa Xuân, xã Sơn Thủy"), true},
		{"desc list on lines", AreaMapping{AreaDesc: "Bản Mùa Xuân"}, area("Bản Na Mèo\nBản Mùa Xuân"), true},
		{"desc prefix is not enough", AreaMapping{AreaDesc: "Sơn Thủy"}, area("Xã Sơn Thủy"), false},
		{"desc does not match geocode", AreaMapping{AreaDesc: "14875"}, area("x", NamedValue{"VN-COMMUNE", "14875"}), false},
	}
	for _, tt := range tests {
		if got := tt.m.matches(tt.a); got != tt.want {
			t.Errorf("%s: %+v matches %+v = %v", tt.name, tt.m, tt.a, got)
		}
	}
}

func TestTones(t *testing.T) {
	tests := []struct {
		event string
		cats  []Category
		want  string
	}{
		{"Lũ quét", []Category{CategoryMet}, protocol.ToneFlood}, // the event beats the Met category
		{"Cảnh báo lũ quét", []Category{CategoryGeo}, protocol.ToneFlood},
		{"Cảnh báo sạt lở", []Category{CategoryGeo}, protocol.ToneSiren}, // "báo" is not "bão"
		{"Flash Flood Warning", []Category{CategoryMet}, protocol.ToneFlood},
		{"Bão số 5", []Category{CategoryMet}, protocol.ToneStorm},
		{"BÃO SỐ 5", nil, protocol.ToneStorm},
		{"Áp thấp nhiệt đới", []Category{CategoryOther}, protocol.ToneStorm},
		{"Tropical Storm Warning", nil, protocol.ToneStorm},
		{"Heavy rain", []Category{CategoryMet}, protocol.ToneStorm},
		{"Cháy rừng cấp V", []Category{CategoryFire}, protocol.ToneFire},
		{"Forest fire", nil, protocol.ToneFire},
		{"Hazardous material", []Category{CategoryFire}, protocol.ToneFire},
		{"Sạt lở đất", []Category{CategoryGeo}, protocol.ToneSiren},
		{"Earthquake", []Category{CategoryGeo}, protocol.ToneSiren},
		{"Fireworks display", []Category{CategorySafety}, protocol.ToneSiren}, // words, not substrings
	}
	tones := DefaultEventTones()
	for _, tt := range tests {
		in := &Info{Event: tt.event, Categories: tt.cats}
		if got := toneFor(in, tones); got != tt.want {
			t.Errorf("toneFor(%q, %v) = %q, want %q", tt.event, tt.cats, got, tt.want)
		}
	}
	// A configured key: the longest match wins, then categories.
	tones["sạt lở"] = protocol.ToneOther
	tones["lũ quét"] = protocol.ToneSiren
	tones["Geo"] = protocol.ToneOther
	for _, tt := range []struct {
		event string
		cats  []Category
		want  string
	}{
		{"Sạt lở đất", nil, protocol.ToneOther},
		{"Lũ quét và sạt lở", nil, protocol.ToneSiren}, // both two words: the first key in order
		{"Lũ", nil, protocol.ToneFlood},
		{"Earthquake", []Category{CategoryGeo}, protocol.ToneOther},
	} {
		in := &Info{Event: tt.event, Categories: tt.cats}
		if got := toneFor(in, tones); got != tt.want {
			t.Errorf("custom toneFor(%q) = %q, want %q", tt.event, got, tt.want)
		}
	}
}
