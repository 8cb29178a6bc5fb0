package cap

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

// now is noon on the day of the samples.
var now = time.Date(2026, 9, 14, 12, 0, 0, 0, ict)

// testConfig is a commune's settings: the whole commune by its geocode,
// two villages by name, the province's centre loudspeakers by province.
func testConfig() Config {
	return Config{Areas: []AreaMapping{
		{Geocode: "VN-COMMUNE=14875", All: true},
		{AreaDesc: "Bản Na Mèo", Groups: []string{"ban-na-meo"}},
		{AreaDesc: "Bản Mùa Xuân", Groups: []string{"ban-mua-xuan"}},
		{AreaDesc: "Xã Sơn Thủy", All: true},
		{Geocode: "VN-PROVINCE=Thanh Hoa", Groups: []string{"trung-tam"}},
	}}
}

const (
	keyAlert  = "nchmf.gov.vn,NCHMF-LQ-20260914-0630"
	keyUpdate = "nchmf.gov.vn,NCHMF-LQ-20260914-0930"
)

func TestDecide(t *testing.T) {
	type want struct {
		action   Action
		reason   string // a part of it
		key      string
		replaces []string
		exercise bool
		groups   []string
		all      bool
		tone     string
		language string
		text     string // the start of it
		audio    string // "data" or the URI
		expires  time.Time
		event    string
		severity Severity
		err      error
	}
	tests := []struct {
		name string
		file string
		cfg  func(*Config)
		want want
	}{
		{"alert in vi and en", "flashflood-alert.xml", nil, want{
			action: Start, key: keyAlert, all: true, tone: protocol.ToneFlood, language: "vi-VN",
			text:    "Cảnh báo lũ quét tại xã Sơn Thủy. Mưa lớn kéo dài từ đêm qua, lượng mưa phổ biến 150-250 mm. Nguy cơ rất cao xảy ra lũ quét trên suối Nậm Xe và sạt lở đất ven suối trong 6 giờ tới. Người dân bản Na Mèo",
			expires: time.Date(2026, 9, 14, 19, 0, 0, 0, ict), event: "Lũ quét", severity: SeverityExtreme}},
		{"alert, English preferred", "flashflood-alert.xml", func(c *Config) { c.Languages = []string{"en"} }, want{
			action: Start, key: keyAlert, all: true, tone: protocol.ToneFlood, language: "en-US",
			text: "Flash flood warning for Son Thuy commune. Prolonged heavy rain", event: "Flash flood", severity: SeverityExtreme}},
		{"update narrows to two villages", "flashflood-update.xml", nil, want{
			action: Update, key: keyUpdate, replaces: []string{keyAlert}, groups: []string{"ban-mua-xuan", "ban-na-meo"},
			tone: protocol.ToneFlood, language: "vi-VN", text: "Cập nhật cảnh báo lũ quét. Mưa đã giảm",
			expires: time.Date(2026, 9, 14, 21, 0, 0, 0, ict), severity: SeveritySevere}},
		{"cancel both", "flashflood-cancel.xml", nil, want{
			action: Cancel, key: "nchmf.gov.vn,NCHMF-LQ-20260914-1145", replaces: []string{keyAlert, keyUpdate},
			all: true, language: "vi-VN", text: "Hủy cảnh báo lũ quét tại xã Sơn Thủy. Mưa đã ngừng", severity: SeverityMinor}},
		{"cancel even when nothing is mapped", "flashflood-cancel.xml", func(c *Config) { c.Areas = c.Areas[4:] }, want{
			action: Cancel, key: "nchmf.gov.vn,NCHMF-LQ-20260914-1145", replaces: []string{keyAlert, keyUpdate},
			language: "vi-VN", text: "Hủy cảnh báo lũ quét", severity: SeverityMinor}},
		{"update below thresholds ends the warning", "update-downgrade.xml", nil, want{
			action: Cancel, reason: "severity Moderate and urgency Expected do not reach the thresholds (at least Severe and Expected); the alerts it updates end",
			key: "nchmf.gov.vn,NCHMF-LQ-20260914-1000", replaces: []string{keyAlert}, all: true, language: "vi-VN",
			text: "Giảm mức cảnh báo lũ quét", severity: SeverityModerate}},
		{"update with lower thresholds", "update-downgrade.xml", func(c *Config) { c.MinSeverity = SeverityModerate }, want{
			action: Update, key: "nchmf.gov.vn,NCHMF-LQ-20260914-1000", replaces: []string{keyAlert}, all: true,
			tone: protocol.ToneFlood, language: "vi-VN", text: "Giảm mức", severity: SeverityModerate,
			expires: time.Date(2026, 9, 14, 18, 0, 0, 0, ict)}},
		{"exercise plays by default", "storm-exercise.xml", nil, want{
			action: Start, key: "pctt.thanhhoa.gov.vn,PCTT-TH-DT-2026-05", exercise: true, groups: []string{"trung-tam"},
			tone: protocol.ToneStorm, language: "vi", text: "Diễn tập: bão số 5 đổ bộ vào Thanh Hóa. Đây là tin diễn tập.",
			expires: time.Date(2026, 9, 15, 8, 0, 0, 0, ict), severity: SeverityExtreme}},
		{"exercise ignored", "storm-exercise.xml", func(c *Config) { c.Exercise = ModeIgnore }, want{
			action: Ignore, reason: "Exercise alerts are ignored (cap exercise: ignore)", key: "pctt.thanhhoa.gov.vn,PCTT-TH-DT-2026-05", exercise: true}},
		{"test ignored by default", "system-test.xml", nil, want{
			action: Ignore, reason: "Test alerts are ignored (cap test: ignore)", key: "vndma.gov.vn,TEST-0001", exercise: true}},
		{"test played", "system-test.xml", func(c *Config) { c.Test = ModePlay }, want{
			action: Start, key: "vndma.gov.vn,TEST-0001", exercise: true, all: true, tone: protocol.ToneSiren, language: "en-US",
			text: "This is a test. This is a test of the commune warning system. No action is needed.", severity: SeveritySevere}},
		{"expired", "landslide-expired.xml", nil, want{err: ErrExpired}},
		{"embedded audio", "landslide-audio.xml", nil, want{
			action: Start, key: "pctt.thanhhoa.gov.vn,PCTT-TH-SL-20260914-02", groups: []string{"ban-mua-xuan"},
			tone: protocol.ToneSiren, language: "vi", text: "Sạt lở đất đã xảy ra tại bản Mùa Xuân. Một điểm", audio: "data",
			expires: time.Date(2026, 9, 14, 23, 0, 0, 0, ict), event: "Sạt lở đất", severity: SeveritySevere}},
		{"embedded audio too large", "landslide-audio.xml", func(c *Config) { c.MaxResourceBytes = 100 }, want{
			action: Start, key: "pctt.thanhhoa.gov.vn,PCTT-TH-SL-20260914-02", groups: []string{"ban-mua-xuan"},
			tone: protocol.ToneSiren, language: "vi", text: "Sạt lở đất", severity: SeveritySevere}},
		{"audio by URI, vi block second", "flood-audio-uri.xml", nil, want{
			action: Start, key: "vndma.gov.vn,VNDMA-2026-0914-112", groups: []string{"trung-tam"}, tone: protocol.ToneFlood,
			language: "vi-VN", text: "Lũ lớn trên sông Mã. Mực nước sông Mã tại Cẩm Thủy sẽ vượt báo động 3 vào đêm nay. Di dời",
			audio: "https://vndma.gov.vn/media/canh-bao/2026-0914-112.mp3", severity: SeveritySevere}},
		{"below thresholds", "heavy-rain-moderate.xml", nil, want{
			action: Ignore, reason: "severity Moderate and urgency Expected do not reach the thresholds", key: "nchmf.gov.vn,NCHMF-MUA-20260914-05",
			language: "vi", text: "Tin mưa lớn", severity: SeverityModerate}},
		{"below thresholds: everything let through", "heavy-rain-moderate.xml", func(c *Config) { c.MinSeverity, c.MinUrgency = SeverityUnknown, UrgencyUnknown }, want{
			action: Start, key: "nchmf.gov.vn,NCHMF-MUA-20260914-05", all: true, tone: protocol.ToneStorm, language: "vi",
			text: "Tin mưa lớn", severity: SeverityModerate, expires: time.Date(2026, 9, 15, 5, 0, 0, 0, ict)}},
		{"no mapped area", "unmapped-area.xml", nil, want{
			action: Ignore, reason: ReasonNoArea, key: "nchmf.gov.vn,NCHMF-LQ-20260914-0645", language: "vi",
			text: "Cảnh báo lũ quét tại xã Mường Lát", severity: SeveritySevere}},
		{"no areas configured", "flashflood-alert.xml", func(c *Config) { c.Areas = nil }, want{
			action: Ignore, reason: ReasonNoArea, key: keyAlert, language: "vi-VN", text: "Cảnh báo lũ quét", severity: SeverityExtreme}},
		{"English only, area without diacritics", "forest-fire-en.xml", nil, want{
			action: Start, key: "kiemlam.thanhhoa.gov.vn,KL-TH-2026-0914-3", groups: []string{"ban-na-meo"}, tone: protocol.ToneFire,
			language: "en", text: "Forest fire near Na Meo. A fire is spreading on the hill east of the village! Keep out of the forest.",
			severity: SeveritySevere}},
		{"no preferred language: first block", "other-languages.xml", nil, want{
			action: Start, key: "alerts.example.org,INTL-2026-77", groups: []string{"trung-tam"}, tone: protocol.ToneSiren,
			language: "fr-FR", text: "Séisme de magnitude 6,1", event: "Séisme", severity: SeverityExtreme}},
		{"Spanish preferred", "other-languages.xml", func(c *Config) { c.Languages = []string{"es"} }, want{
			action: Ignore, reason: ReasonNoArea, key: "alerts.example.org,INTL-2026-77", language: "es",
			text: "Terremoto de magnitud 6,1", event: "Terremoto", severity: SeverityExtreme}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parseFile(t, "valid/"+tt.file)
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d, err := Decide(a, cfg, now)
			w := tt.want
			if w.err != nil {
				if !errors.Is(err, w.err) {
					t.Fatalf("Decide() = %+v, %v; want %v", d, err, w.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != w.action || !strings.Contains(d.Reason, w.reason) || (w.reason == "" && d.Reason != "") {
				t.Errorf("action %s (%q), want %s (%q)", d.Action, d.Reason, w.action, w.reason)
			}
			if d.Key != w.key || !slices.Equal(d.Replaces, w.replaces) {
				t.Errorf("key %q replaces %q, want %q, %q", d.Key, d.Replaces, w.key, w.replaces)
			}
			if d.Exercise != w.exercise || d.All != w.all || !slices.Equal(d.Groups, w.groups) {
				t.Errorf("exercise %v all %v groups %q, want %v, %v, %q", d.Exercise, d.All, d.Groups, w.exercise, w.all, w.groups)
			}
			if d.Tone != w.tone || d.Language != w.language {
				t.Errorf("tone %q language %q, want %q, %q", d.Tone, d.Language, w.tone, w.language)
			}
			if !strings.HasPrefix(d.Text, w.text) {
				t.Errorf("text\n %q\nwant it to start with\n %q", d.Text, w.text)
			}
			switch {
			case w.audio == "" && d.Audio != nil:
				t.Errorf("audio %+v, want none", d.Audio)
			case w.audio == "data" && (d.Audio == nil || !bytes.HasPrefix(d.Audio.Data, []byte("RIFF")) || d.Audio.MimeType != "audio/wav"):
				t.Errorf("audio %+v, want the embedded WAV", d.Audio)
			case w.audio != "" && w.audio != "data" && (d.Audio == nil || d.Audio.URI != w.audio || d.Audio.Data != nil):
				t.Errorf("audio %+v, want URI %s", d.Audio, w.audio)
			}
			if !d.Expires.Equal(w.expires) && !w.expires.IsZero() {
				t.Errorf("expires %v, want %v", d.Expires, w.expires)
			}
			if w.event != "" && d.Event != w.event {
				t.Errorf("event %q, want %q", d.Event, w.event)
			}
			if d.Severity != w.severity {
				t.Errorf("severity %q, want %q", d.Severity, w.severity)
			}
			if d.Sender != a.Sender || d.Identifier != a.Identifier || !d.Sent.Equal(a.Sent) || d.Status != a.Status || d.MsgType != a.MsgType {
				t.Errorf("alert fields not copied: %+v", d)
			}
			if d.Action == Start || d.Action == Update {
				if !protocol.ValidTone(d.Tone) || d.Tone == "" || d.Text == "" || d.Effective.IsZero() {
					t.Errorf("a playable decision without tone, text or effective: %+v", d)
				}
				for _, g := range d.Groups {
					if err := protocol.ValidName(g); err != nil {
						t.Error(err)
					}
				}
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("decision does not encode: %v", err)
			}
		})
	}
}

func TestDecideExpiredMessage(t *testing.T) {
	a := parseFile(t, "valid/landslide-expired.xml")
	_, err := Decide(a, testConfig(), now)
	want := "cap: info[0].expires: the alert expired at 2026-09-13T18:00:00+07:00; it is now 2026-09-14T12:00:00+07:00"
	if err == nil || err.Error() != want || errors.Is(err, ErrInvalid) {
		t.Errorf("error %v\nwant %s (not ErrInvalid)", err, want)
	}
	// A Cancel of an expired alert still cancels.
	a.MsgType = MsgCancel
	a.References = []Reference{{Sender: "pctt.thanhhoa.gov.vn", Identifier: "PCTT-TH-SL-20260912-09", Sent: a.Sent.Add(-time.Hour)}}
	d, err := Decide(a, testConfig(), now)
	if err != nil || d.Action != Cancel || !slices.Equal(d.Replaces, []string{"pctt.thanhhoa.gov.vn,PCTT-TH-SL-20260912-09"}) {
		t.Errorf("expired cancel: %+v, %v", d, err)
	}
	// One second before it expires, it plays.
	a = parseFile(t, "valid/landslide-expired.xml")
	d, err = Decide(a, testConfig(), a.Infos[0].Expires.Add(-time.Second))
	if err != nil || d.Action != Start {
		t.Errorf("before expiry: %+v, %v", d, err)
	}
	if _, err := Decide(a, testConfig(), a.Infos[0].Expires); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v", err)
	}
}

func TestDecideStatusesAndTypes(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Alert)
		action Action
		reason string
	}{
		{"system", func(a *Alert) { a.Status = StatusSystem }, Ignore, "status System is not for the public"},
		{"draft", func(a *Alert) { a.Status = StatusDraft }, Ignore, "status Draft is not for the public"},
		{"ack", func(a *Alert) { a.MsgType = MsgAck }, Ignore, "msgType Ack carries no warning"},
		{"error", func(a *Alert) { a.MsgType = MsgError }, Ignore, "msgType Error carries no warning"},
		{"cancel without references", func(a *Alert) { a.MsgType = MsgCancel }, Ignore, "the cancel references no earlier alert"},
		{"no info", func(a *Alert) { a.Infos = nil }, Ignore, "the alert has no info block"},
		{"update without references starts", func(a *Alert) { a.MsgType = MsgUpdate }, Update, ""},
		{"update referencing itself", func(a *Alert) {
			a.MsgType = MsgUpdate
			a.References = []Reference{{a.Sender, a.Identifier, a.Sent}}
		}, Update, ""},
		{"ignored update without references", func(a *Alert) {
			a.MsgType = MsgUpdate
			a.Infos[0].Severity = SeverityMinor
		}, Ignore, "do not reach the thresholds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parseFile(t, "valid/flashflood-alert.xml")
			tt.change(a)
			d, err := Decide(a, testConfig(), now)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tt.action || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("%s (%q), want %s (%q)", d.Action, d.Reason, tt.action, tt.reason)
			}
			if d.Action == Update && len(d.Replaces) != 0 {
				t.Errorf("replaces %q", d.Replaces)
			}
		})
	}
}

func TestDecideSeveralBlocksInOneLanguage(t *testing.T) {
	a := parseFile(t, "valid/flashflood-alert.xml")
	// A second Vietnamese block, more severe, for one village; an
	// expired one; and one below the thresholds.
	extra := a.Infos[0]
	extra.Severity, extra.Urgency = SeverityExtreme, UrgencyImmediate
	extra.Headline = "Lũ quét đang xảy ra ở bản Na Mèo"
	extra.Areas = []Area{{Desc: "Bản Na Mèo"}}
	old := a.Infos[0]
	old.Expires = now.Add(-time.Minute)
	old.Areas = []Area{{Desc: "Bản Mùa Xuân"}}
	a.Infos[0].Severity = SeveritySevere
	a.Infos[0].Areas = []Area{{Desc: "Bản Mùa Xuân"}}
	low := a.Infos[0]
	low.Severity = SeverityMinor
	low.Areas = []Area{{Desc: "Xã Sơn Thủy"}}
	a.Infos = append(a.Infos, extra, old, low)

	d, err := Decide(a, testConfig(), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != Start || d.All || !slices.Equal(d.Groups, []string{"ban-mua-xuan", "ban-na-meo"}) {
		t.Errorf("action %s all %v groups %q", d.Action, d.All, d.Groups)
	}
	if !strings.HasPrefix(d.Text, "Lũ quét đang xảy ra ở bản Na Mèo. ") || d.Severity != SeverityExtreme {
		t.Errorf("the most severe block is not the one played: %q", d.Text)
	}
	if len(d.Warnings) != 2 {
		t.Errorf("warnings %q", d.Warnings)
	}
}

func TestDecideRefusesInvalid(t *testing.T) {
	a := parseFile(t, "valid/flashflood-alert.xml")
	if _, err := Decide(a, Config{MinSeverity: "Huge"}, now); err == nil {
		t.Error("a bad config is accepted")
	}
	a.Identifier = ""
	if _, err := Decide(a, testConfig(), now); !errors.Is(err, ErrInvalid) {
		t.Errorf("an invalid alert: %v", err)
	}
	if _, err := Decide(nil, testConfig(), now); !errors.Is(err, ErrInvalid) {
		t.Errorf("a nil alert: %v", err)
	}
}

func TestDecideAudioChoice(t *testing.T) {
	tests := []struct {
		name string
		res  []Resource
		want string // "" for none, "data", or the URI
	}{
		{"no resources", nil, ""},
		{"image only", []Resource{{Desc: "map", MimeType: "image/png", URI: "https://x.vn/m.png"}}, ""},
		{"first audio wins", []Resource{
			{Desc: "map", MimeType: "image/png", URI: "https://x.vn/m.png"},
			{Desc: "a", MimeType: "audio/mpeg", URI: "https://x.vn/a.mp3"},
			{Desc: "b", MimeType: "audio/ogg", URI: "https://x.vn/b.ogg"},
		}, "https://x.vn/a.mp3"},
		{"mime parameters and case", []Resource{{Desc: "a", MimeType: "Audio/MPEG; bitrate=64000", URI: "http://x.vn/a.mp3"}}, "http://x.vn/a.mp3"},
		{"file URI skipped", []Resource{
			{Desc: "a", MimeType: "audio/wav", URI: "file:///etc/passwd"},
			{Desc: "b", MimeType: "audio/wav", URI: "https://x.vn/b.wav"},
		}, "https://x.vn/b.wav"},
		{"relative URI skipped", []Resource{{Desc: "a", MimeType: "audio/wav", URI: "a.wav"}}, ""},
		{"declared too large", []Resource{{Desc: "a", MimeType: "audio/wav", URI: "https://x.vn/a.wav", Size: 1 << 30}}, ""},
		{"data over URI", []Resource{{Desc: "a", MimeType: "audio/wav", URI: "https://x.vn/a.wav", Data: []byte("RIFF")}}, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parseFile(t, "valid/heavy-rain-moderate.xml")
			a.Infos[0].Severity = SeverityExtreme
			a.Infos[0].Resources = tt.res
			d, err := Decide(a, testConfig(), now)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "":
				if d.Audio != nil {
					t.Errorf("audio %+v, want none", d.Audio)
				}
			case d.Audio == nil:
				t.Errorf("no audio, want %s", tt.want)
			case tt.want == "data":
				if string(d.Audio.Data) != "RIFF" {
					t.Errorf("audio %+v", d.Audio)
				}
			case d.Audio.URI != tt.want:
				t.Errorf("audio %s, want %s", d.Audio.URI, tt.want)
			}
		})
	}
}

func TestVerifyDigest(t *testing.T) {
	a := parseFile(t, "valid/landslide-audio.xml")
	r := a.Infos[0].Resources[0]
	if err := r.VerifyDigest(r.Data); err != nil {
		t.Error(err)
	}
	if err := r.VerifyDigest(append([]byte{}, r.Data[:100]...)); err == nil {
		t.Error("a truncated file passes")
	}
	if err := (&Resource{}).VerifyDigest([]byte("x")); err != nil {
		t.Errorf("no digest: %v", err)
	}
}

func TestSpeech(t *testing.T) {
	tests := []struct {
		in   Info
		want string
	}{
		{Info{Event: "Lũ quét", Headline: "Cảnh báo lũ quét", Description: "Mưa lớn.\n\n   Nguy cơ cao", Instruction: "Sơ tán ngay"},
			"Cảnh báo lũ quét. Mưa lớn. Nguy cơ cao. Sơ tán ngay"},
		{Info{Event: "Bão", Description: "Bão mạnh!"}, "Bão. Bão mạnh!"},
		{Info{Event: "Bão", Headline: "Chú ý:", Instruction: "Ở trong nhà"}, "Chú ý: Ở trong nhà"},
		{Info{Event: "Bão", Headline: "Bão số 5…", Description: "gió mạnh"}, "Bão số 5… gió mạnh"},
		{Info{Event: "Sạt lở"}, "Sạt lở"},
	}
	for _, tt := range tests {
		if got := speech(&tt.in); got != tt.want {
			t.Errorf("speech(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
