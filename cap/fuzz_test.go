package cap

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, refuses only with ErrInvalid,
// and that what it accepts validates, is parsed the same way twice, and
// survives Marshal and a second Parse unchanged. Decide must not panic on
// it either.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*", "testdata/invalid/*"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			f.Add(readFile(f, file[len("testdata/"):]))
		}
	}
	f.Add([]byte(`<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a</identifier><sender>b</sender>` +
		`<sent>2026-09-14T06:30:00+07:00</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>` +
		`<references>b,0,2026-09-14T06:00:00+07:00 b,a,2026-09-14T06:30:00+07:00</references></alert>`))
	cfg := testConfig()
	cfg.Test = ModePlay
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(bytes.NewReader(data))
		a2, err2 := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			if err2 == nil || err.Error() != err2.Error() {
				t.Fatalf("Parse is not deterministic: %v, then %v", err, err2)
			}
			return
		}
		if err2 != nil {
			t.Fatalf("Parse accepted, then refused: %v", err2)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("a parsed alert does not validate: %v\ninput %q", err, data)
		}
		out, err := Marshal(a)
		if err != nil {
			t.Fatalf("a parsed alert does not marshal: %v\ninput %q", err, data)
		}
		if again, err := Marshal(a2); err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Parse is not deterministic:\n%s\n---\n%s", out, again)
		}
		b, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Marshal wrote what Parse refuses: %v\ninput %q\nwrote\n%s", err, data, out)
		}
		if again, err := Marshal(b); err != nil || !bytes.Equal(out, again) {
			t.Fatalf("a round trip changed the alert (%v):\n%s\n---\n%s", err, out, again)
		}

		d1, err1 := Decide(a, cfg, now)
		d2, err2 := Decide(b, cfg, now)
		if errors.Is(err1, ErrInvalid) {
			t.Fatalf("Decide refuses a parsed alert: %v", err1)
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Decide differs after a round trip: %v, %v", err1, err2)
		}
		j1, _ := json.Marshal(d1)
		j2, _ := json.Marshal(d2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("Decide differs after a round trip:\n%s\n%s", j1, j2)
		}
	})
}
