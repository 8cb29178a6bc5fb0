package cap

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var ict = time.FixedZone("ICT", 7*3600)

func parseFile(t *testing.T, name string) *Alert {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return a
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, a *Alert)
	}{
		{"valid/flashflood-alert.xml", func(t *testing.T, a *Alert) {
			if a.Identifier != "NCHMF-LQ-20260914-0630" || a.Sender != "nchmf.gov.vn" || a.Key() != "nchmf.gov.vn,NCHMF-LQ-20260914-0630" {
				t.Errorf("identifier, sender = %q, %q", a.Identifier, a.Sender)
			}
			if !a.Sent.Equal(time.Date(2026, 9, 14, 6, 30, 0, 0, ict)) {
				t.Errorf("sent = %v", a.Sent)
			}
			if _, off := a.Sent.Zone(); off != 7*3600 {
				t.Errorf("sent lost its offset: %v", a.Sent)
			}
			if a.Status != StatusActual || a.MsgType != MsgAlert || a.Scope != ScopePublic {
				t.Errorf("status, msgType, scope = %s, %s, %s", a.Status, a.MsgType, a.Scope)
			}
			if a.Source != "Đài Khí tượng Thủy văn tỉnh Thanh Hóa" || len(a.Codes) != 1 || a.Incidents != "LQ-2026-037" {
				t.Errorf("source, codes, incidents = %q, %q, %q", a.Source, a.Codes, a.Incidents)
			}
			if len(a.Infos) != 2 {
				t.Fatalf("%d infos", len(a.Infos))
			}
			vi, en := a.Infos[0], a.Infos[1]
			if vi.Language != "vi-VN" || en.Language != "en-US" {
				t.Errorf("languages %q, %q", vi.Language, en.Language)
			}
			if len(vi.Categories) != 2 || vi.Categories[0] != CategoryMet || vi.Categories[1] != CategoryGeo {
				t.Errorf("categories %v", vi.Categories)
			}
			if vi.Event != "Lũ quét" || vi.Urgency != UrgencyImmediate || vi.Severity != SeverityExtreme ||
				vi.Certainty != CertaintyLikely || len(vi.ResponseTypes) != 1 || vi.ResponseTypes[0] != ResponseEvacuate {
				t.Errorf("vi info %+v", vi)
			}
			if !vi.Expires.Equal(time.Date(2026, 9, 14, 19, 0, 0, 0, ict)) || vi.Onset.IsZero() || vi.Effective.IsZero() {
				t.Errorf("effective, onset, expires = %v, %v, %v", vi.Effective, vi.Onset, vi.Expires)
			}
			if !strings.HasPrefix(vi.Description, "Mưa lớn kéo dài") || strings.HasSuffix(vi.Description, " ") {
				t.Errorf("description not trimmed: %q", vi.Description)
			}
			if len(vi.EventCodes) != 1 || vi.EventCodes[0] != (NamedValue{"VN-NCHMF", "LQ"}) ||
				len(vi.Parameters) != 1 || vi.Parameters[0] != (NamedValue{"CAP_DO_RUI_RO", "3"}) {
				t.Errorf("eventCodes %v parameters %v", vi.EventCodes, vi.Parameters)
			}
			ar := vi.Areas[0]
			if ar.Desc != "Xã Sơn Thủy, tỉnh Thanh Hóa" || len(ar.Polygons) != 1 || len(ar.Polygons[0]) != 5 ||
				ar.Polygons[0][1] != (Point{20.3915, 104.8602}) {
				t.Errorf("area %+v", ar)
			}
			if len(ar.Circles) != 1 || ar.Circles[0] != (Circle{Point{20.3605, 104.8601}, 8.5}) {
				t.Errorf("circles %+v", ar.Circles)
			}
			if len(ar.Geocodes) != 1 || ar.Geocodes[0] != (NamedValue{"VN-COMMUNE", "14875"}) {
				t.Errorf("geocodes %+v", ar.Geocodes)
			}
		}},
		{"valid/flashflood-cancel.xml", func(t *testing.T, a *Alert) {
			want := []Reference{
				{"nchmf.gov.vn", "NCHMF-LQ-20260914-0630", time.Date(2026, 9, 14, 6, 30, 0, 0, ict)},
				{"nchmf.gov.vn", "NCHMF-LQ-20260914-0930", time.Date(2026, 9, 14, 9, 30, 0, 0, ict)},
			}
			if a.MsgType != MsgCancel || len(a.References) != 2 {
				t.Fatalf("msgType %s references %+v", a.MsgType, a.References)
			}
			for i, r := range a.References {
				if r.Sender != want[i].Sender || r.Identifier != want[i].Identifier || !r.Sent.Equal(want[i].Sent) {
					t.Errorf("references[%d] = %+v, want %+v", i, r, want[i])
				}
			}
			if a.References[1].Key() != "nchmf.gov.vn,NCHMF-LQ-20260914-0930" {
				t.Errorf("key %q", a.References[1].Key())
			}
		}},
		{"valid/storm-exercise.xml", func(t *testing.T, a *Alert) {
			// Prefixed elements (cap:alert) are the same document.
			if a.Status != StatusExercise || a.Note == "" || a.Infos[0].Language != "vi" ||
				a.Infos[0].Areas[0].Geocodes[0].Value != "Thanh Hóa" {
				t.Errorf("%+v", a)
			}
		}},
		{"valid/system-test.xml", func(t *testing.T, a *Alert) {
			if a.Infos[0].Language != "en-US" {
				t.Errorf("absent language = %q, want the CAP default en-US", a.Infos[0].Language)
			}
		}},
		{"valid/landslide-audio.xml", func(t *testing.T, a *Alert) {
			if !a.Sent.Equal(time.Date(2026, 9, 14, 7, 15, 0, 0, time.UTC)) {
				t.Errorf("sent %v (written with Z)", a.Sent)
			}
			rs := a.Infos[0].Resources
			if len(rs) != 2 {
				t.Fatalf("%d resources", len(rs))
			}
			wav := rs[0]
			if wav.MimeType != "audio/wav" || wav.Size != 524 || len(wav.Data) != 524 || wav.URI != "" {
				t.Errorf("wav resource %q %d bytes (size %d)", wav.MimeType, len(wav.Data), wav.Size)
			}
			if !bytes.HasPrefix(wav.Data, []byte("RIFF")) || !bytes.Equal(wav.Data[8:12], []byte("WAVE")) {
				t.Errorf("data is not a WAV: % x", wav.Data[:12])
			}
			sum := sha1.Sum(wav.Data)
			if hex.EncodeToString(sum[:]) != wav.Digest {
				t.Errorf("digest %s, data hashes to %x", wav.Digest, sum)
			}
			if rs[1].URI != "https://pctt.thanhhoa.gov.vn/ban-do/sl-20260914-02.png" || rs[1].Data != nil {
				t.Errorf("map resource %+v", rs[1])
			}
			if c := a.Infos[0].Areas[0].Circles; len(c) != 1 || c[0].Radius != 1.5 {
				t.Errorf("circle %+v", c)
			}
		}},
		{"valid/other-languages.xml", func(t *testing.T, a *Alert) {
			if _, off := a.Sent.Zone(); off != 0 || a.Sent.Hour() != 4 {
				t.Errorf("sent %v (written with -00:00)", a.Sent)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) { tt.check(t, parseFile(t, tt.file)) })
	}
}

func TestParseAllValidSamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.xml")
	if len(files) < 10 {
		t.Fatalf("only %d samples", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			a := parseFile(t, strings.TrimPrefix(f, "testdata/"))
			if err := a.Validate(); err != nil {
				t.Fatalf("a parsed alert does not validate: %v", err)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		file string
		want string // the whole message, or a part of it ending in "…"
	}{
		{"not-xml.txt", "cap: not an XML document: text before any element"},
		{"json.txt", "cap: not an XML document: text before any element"},
		{"truncated.xml", "cap: not well-formed XML: XML syntax error on line 13: unexpected EOF"},
		{"rss.xml", "cap: the root element is <rss>, not <alert>"},
		{"wrong-namespace.xml", `cap: alert: namespace "urn:oasis:names:tc:emergency:cap:1.1" is not CAP 1.2 (urn:oasis:names:tc:emergency:cap:1.2)`},
		{"no-namespace.xml", "cap: alert: has no namespace; CAP 1.2 is urn:oasis:names:tc:emergency:cap:1.2"},
		{"missing-identifier.xml", "cap: identifier: required"},
		{"identifier-with-space.xml", `cap: identifier: "BAD 1" must not contain spaces, commas, < or &`},
		{"duplicate-identifier.xml", "cap: identifier: appears 2 times; at most once allowed"},
		{"bad-severity.xml", `cap: info[0].severity: "Bad" is not one of Extreme, Severe, Moderate, Minor, Unknown`},
		{"bad-status.xml", `cap: status: "Real" is not one of Actual, Exercise, System, Test, Draft`},
		{"bad-date.xml", `cap: sent: "14/09/2026 06:30" is not a date-time like 2026-09-14T06:30:00+07:00`},
		{"expires-without-offset.xml", `cap: info[0].expires: "2026-09-14T19:00:00" is not a date-time like 2026-09-14T06:30:00+07:00`},
		{"missing-category.xml", "cap: info[0].category: required"},
		{"bad-references.xml", `cap: references: "nchmf.gov.vn" is not sender,identifier,sent`},
		{"private-without-addresses.xml", "cap: addresses: required when scope is Private"},
		{"open-polygon.xml", "cap: info[0].area[0].polygon[0]: is not closed: the first and last points differ"},
		{"circle-out-of-range.xml", "cap: info[0].area[0].circle[0]: point 200.36,104.82 is not a latitude,longitude in degrees"},
		{"ceiling-without-altitude.xml", "cap: info[0].area[0].ceiling: given without altitude"},
		{"bad-base64.xml", "cap: info[0].resource[0].derefUri: not base64: …"},
		{"digest-mismatch.xml", "cap: info[0].resource[0].digest: does not match the derefUri data"},
		{"unknown-entity.xml", "cap: not well-formed XML: XML syntax error on line 16: invalid character entity &nbsp;"},
		{"latin1.xml", `cap: not well-formed XML: xml: encoding "ISO-8859-1" declared but Decoder.CharsetReader is nil`},
		{"two-roots.xml", "cap: more than one root element"},
		{"doctype.xml", "cap: DOCTYPE and other <!...> declarations are not allowed"},
		{"doctype-external.xml", "cap: DOCTYPE and other <!...> declarations are not allowed"},
	}
	files, _ := filepath.Glob("testdata/invalid/*")
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/invalid, %d tests", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			a, err := Parse(bytes.NewReader(readFile(t, "invalid/"+tt.file)))
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not an *Error", err)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("error\n %s\nwant\n %s", err, tt.want)
				}
			} else if err.Error() != tt.want {
				t.Errorf("error\n %s\nwant\n %s", err, tt.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	doc := readFile(t, "valid/flashflood-cancel.xml")
	pad := func(n int) []byte { // a comment that brings the document to n bytes
		i := bytes.Index(doc, []byte("<alert"))
		comment := "<!--" + strings.Repeat("x", n-len(doc)-8) + "-->"
		return append(append(append([]byte{}, doc[:i]...), comment+"\n"...), doc[i:]...)
	}
	if _, err := Parse(bytes.NewReader(pad(MaxSize))); err != nil {
		t.Errorf("a document of MaxSize bytes: %v", err)
	}
	_, err := Parse(bytes.NewReader(pad(MaxSize + 1)))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("a document of MaxSize+1 bytes: %v", err)
	}
	if want := "cap: the document is larger than 1048576 bytes"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The reader is not drained: a client cannot make the parser read
	// gigabytes.
	r := &countingReader{}
	if _, err := Parse(r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: %v", err)
	}
	if r.n > MaxSize+64<<10 {
		t.Errorf("read %d bytes of endless input", r.n)
	}
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := Parse(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Errorf("error %v: want the reader's error, not ErrInvalid", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "  \n", `<?xml version="1.0"?>`} {
		_, err := Parse(strings.NewReader(doc))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v", doc, err)
		}
	}
}

func TestParseByteOrderMark(t *testing.T) {
	doc := append([]byte("\xef\xbb\xbf"), readFile(t, "valid/heavy-rain-moderate.xml")...)
	if _, err := Parse(bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
}

func TestParseDateTimes(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-09-14T06:30:00+07:00", time.Date(2026, 9, 14, 6, 30, 0, 0, ict)},
		{"2026-09-14T06:30:00-00:00", time.Date(2026, 9, 14, 6, 30, 0, 0, time.UTC)},
		{"2026-09-14T06:30:00Z", time.Date(2026, 9, 14, 6, 30, 0, 0, time.UTC)},
		{"2026-09-14T06:30:00.250+07:00", time.Date(2026, 9, 14, 6, 30, 0, 250e6, ict)},
		{"2026-09-14T06:30:00", time.Time{}},
		{"2026-09-14 06:30:00+07:00", time.Time{}},
		{"2026-09-14T06:30+07:00", time.Time{}},
		{"2026-09-14T06:30:00+0700", time.Time{}},
		{"2026-02-30T06:30:00+07:00", time.Time{}},
		{"2026-09-14T25:30:00+07:00", time.Time{}},
		{"0001-01-01T00:00:00Z", time.Time{}},
		{"14/09/2026", time.Time{}},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("parseTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if again, err := parseTime(formatTime(got)); err != nil || !again.Equal(got) {
			t.Errorf("formatTime(%v) = %q does not read back", got, formatTime(got))
		}
	}
	if s := formatTime(time.Date(2026, 9, 14, 6, 30, 0, 0, time.UTC)); s != "2026-09-14T06:30:00-00:00" {
		t.Errorf("UTC is written %q, want -00:00 as CAP asks", s)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.xml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			a := parseFile(t, strings.TrimPrefix(f, "testdata/"))
			out, err := Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Parse(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("Marshal wrote what Parse refuses: %v\n%s", err, out)
			}
			again, err := Marshal(b)
			if err != nil || !bytes.Equal(out, again) {
				t.Fatalf("second Marshal differs (%v):\n%s\n---\n%s", err, out, again)
			}
			if !a.Sent.Equal(b.Sent) || len(a.Infos) != len(b.Infos) || a.Key() != b.Key() {
				t.Errorf("alert changed: %+v → %+v", a, b)
			}
			for i := range a.Infos {
				ia, ib := a.Infos[i], b.Infos[i]
				if ia.Description != ib.Description || ia.Headline != ib.Headline || len(ia.Resources) != len(ib.Resources) ||
					!ia.Expires.Equal(ib.Expires) {
					t.Errorf("info[%d] changed", i)
				}
				for j := range ia.Resources {
					if !bytes.Equal(ia.Resources[j].Data, ib.Resources[j].Data) {
						t.Errorf("info[%d].resource[%d] data changed", i, j)
					}
				}
			}
		})
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	a := parseFile(t, "valid/heavy-rain-moderate.xml")
	a.Infos[0].Severity = "Bad"
	if _, err := Marshal(a); !errors.Is(err, ErrInvalid) {
		t.Errorf("Marshal of an invalid alert: %v", err)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	good := func() *Alert {
		return &Alert{Identifier: "x-1", Sender: "loa", Sent: time.Date(2026, 9, 14, 6, 0, 0, 0, ict),
			Status: StatusActual, MsgType: MsgAlert, Scope: ScopePublic,
			Infos: []Info{{Language: "vi", Categories: []Category{CategoryMet}, Event: "Bão",
				Urgency: UrgencyImmediate, Severity: SeverityExtreme, Certainty: CertaintyObserved,
				Areas: []Area{{Desc: "Xã Sơn Thủy"}}}}}
	}
	alt, low := 100.0, 50.0
	tests := []struct {
		name  string
		spoil func(a *Alert)
		want  string
	}{
		{"ok", func(a *Alert) {}, ""},
		{"no sender", func(a *Alert) { a.Sender = "" }, "cap: sender: required"},
		{"comma in sender", func(a *Alert) { a.Sender = "a,b" }, `cap: sender: "a,b" must not contain spaces, commas, < or &`},
		{"no sent", func(a *Alert) { a.Sent = time.Time{} }, "cap: sent: required"},
		{"no msgType", func(a *Alert) { a.MsgType = "" }, "cap: msgType: required: one of Alert, Update, Cancel, Ack, Error"},
		{"bad scope", func(a *Alert) { a.Scope = "public" }, `cap: scope: "public" is not one of Public, Restricted, Private`},
		{"bad reference", func(a *Alert) { a.References = []Reference{{Sender: "s", Identifier: "i"}} }, "cap: references[0].sent: required"},
		{"bad language", func(a *Alert) { a.Infos[0].Language = "vi_VN" }, `cap: info[0].language: "vi_VN" is not a language tag like vi or en-US`},
		{"no event", func(a *Alert) { a.Infos[0].Event = "" }, "cap: info[0].event: required"},
		{"bad category", func(a *Alert) { a.Infos[0].Categories = append(a.Infos[0].Categories, "Weather") },
			`cap: info[0].category[1]: "Weather" is not one of Geo, Met, Safety, Security, Rescue, Fire, Health, Env, Transport, Infra, CBRNE, Other`},
		{"bad response", func(a *Alert) { a.Infos[0].ResponseTypes = []ResponseType{"Run"} }, `cap: info[0].responseType[0]: "Run" is not one of Shelter, Evacuate, Prepare, Execute, Avoid, Monitor, Assess, AllClear, None`},
		{"bad certainty", func(a *Alert) { a.Infos[0].Certainty = "Very Likely" }, `cap: info[0].certainty: "Very Likely" is not one of Observed, Likely, Possible, Unlikely, Unknown`},
		{"bad urgency", func(a *Alert) { a.Infos[0].Urgency = "Now" }, `cap: info[0].urgency: "Now" is not one of Immediate, Expected, Future, Past, Unknown`},
		{"unnamed parameter", func(a *Alert) { a.Infos[0].Parameters = []NamedValue{{Value: "3"}} }, "cap: info[0].parameter[0].valueName: required"},
		{"resource without type", func(a *Alert) { a.Infos[0].Resources = []Resource{{Desc: "x"}} }, "cap: info[0].resource[0].mimeType: required"},
		{"resource bad type", func(a *Alert) { a.Infos[0].Resources = []Resource{{Desc: "x", MimeType: "audio"}} }, `cap: info[0].resource[0].mimeType: "audio" is not a MIME type like audio/mpeg`},
		{"bad digest", func(a *Alert) { a.Infos[0].Resources = []Resource{{Desc: "x", MimeType: "audio/wav", Digest: "abc"}} }, `cap: info[0].resource[0].digest: "abc" is not a SHA-1 digest (40 hex digits)`},
		{"no areaDesc", func(a *Alert) { a.Infos[0].Areas[0].Desc = "" }, "cap: info[0].area[0].areaDesc: required"},
		{"short polygon", func(a *Alert) { a.Infos[0].Areas[0].Polygons = []Polygon{{{1, 1}, {2, 2}, {1, 1}}} }, "cap: info[0].area[0].polygon[0]: has 3 points, at least 4 needed"},
		{"ceiling below altitude", func(a *Alert) { a.Infos[0].Areas[0].Altitude, a.Infos[0].Areas[0].Ceiling = &alt, &low }, "cap: info[0].area[0].ceiling: 50 is below the altitude 100"},
		{"unnamed geocode", func(a *Alert) { a.Infos[0].Areas[0].Geocodes = []NamedValue{{Value: "14875"}} }, "cap: info[0].area[0].geocode[0].valueName: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good()
			tt.spoil(a)
			err := a.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v\nwant %s", err, tt.want)
			}
		})
	}
	var nilAlert *Alert
	if err := nilAlert.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil alert: %v", err)
	}
}
