package brokerconf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	hashA = "$7$101$AAAAAAAAAAAAAAAA$aaaa"
	hashB = "$7$101$BBBBBBBBBBBBBBBB$bbbb"
	hashC = "$7$101$CCCCCCCCCCCCCCCC$cccc"
)

func sample() Options {
	return Options{
		Site:           "xa-son.thuy",
		ControllerHash: "$7$101$CTRLCTRLCTRLCTRL$ctrl",
		Dir:            "/etc/mosquitto/loa",
		Devices: []Device{ // out of order on purpose
			{ID: "box-2", Groups: []string{"thon-2"}, Hash: hashB},
			{ID: "box-1", Groups: []string{"thon-1", "cho", "thon-1"}, Hash: hashA},
			{ID: "old-box", Groups: []string{"thon-1"}},
			{ID: "song-lam-gauge", Hash: hashC},
		},
	}
}

// section returns the lines of the ACL file's section of user, up to the
// next blank line.
func section(acl, user string) []string {
	_, rest, ok := strings.Cut(acl, "\nuser "+user+"\n")
	if !ok {
		return nil
	}
	body, _, _ := strings.Cut(rest, "\n\n")
	return strings.Split(strings.TrimRight(body, "\n"), "\n")
}

func TestMosquittoFiles(t *testing.T) {
	f, err := Mosquitto(sample())
	if err != nil {
		t.Fatal(err)
	}
	wantPW := "loa-controller:$7$101$CTRLCTRLCTRLCTRL$ctrl\nbox-1:" + hashA + "\nbox-2:" + hashB + "\nsong-lam-gauge:" + hashC + "\n"
	if string(f.Passwd) != wantPW {
		t.Errorf("password file:\n%s\nwant:\n%s", f.Passwd, wantPW)
	}
	if !slices.Equal(f.Boxes, []string{"box-1", "box-2", "song-lam-gauge"}) || !slices.Equal(f.Missing, []string{"old-box"}) {
		t.Errorf("boxes %v, missing %v", f.Boxes, f.Missing)
	}
	acl := string(f.ACL)
	if first := strings.Index(acl, "\nuser "); first < 0 || strings.Contains(acl[:first], "\ntopic ") || strings.HasPrefix(acl, "topic") {
		t.Errorf("topics before the first user line would be anonymous clients':\n%s", acl)
	}
	if strings.Contains(acl, "pattern ") {
		t.Error("the ACL uses pattern lines, which apply to every user")
	}
	root := "loa/xa-son.thuy"
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"loa-controller", []string{"topic readwrite " + root + "/#"}},
		{"box-1", []string{
			"topic read " + root + "/plan/all",
			"topic read " + root + "/plan/device/box-1",
			"topic read " + root + "/device/box-1/config",
			"topic read " + root + "/device/box-1/time/resp",
			"topic read " + root + "/stream/+",
			"topic read " + root + "/plan/group/cho",
			"topic read " + root + "/plan/group/thon-1",
			"topic write " + root + "/device/box-1/state",
			"topic write " + root + "/device/box-1/events",
			"topic write " + root + "/device/box-1/time/req",
			"topic write " + root + "/trigger/box-1",
		}},
		{"box-2", []string{
			"topic read " + root + "/plan/all",
			"topic read " + root + "/plan/device/box-2",
			"topic read " + root + "/device/box-2/config",
			"topic read " + root + "/device/box-2/time/resp",
			"topic read " + root + "/stream/+",
			"topic read " + root + "/plan/group/thon-2",
			"topic write " + root + "/device/box-2/state",
			"topic write " + root + "/device/box-2/events",
			"topic write " + root + "/device/box-2/time/req",
			"topic write " + root + "/trigger/box-2",
		}},
		{"song-lam-gauge", []string{
			"topic read " + root + "/plan/all",
			"topic read " + root + "/plan/device/song-lam-gauge",
			"topic read " + root + "/device/song-lam-gauge/config",
			"topic read " + root + "/device/song-lam-gauge/time/resp",
			"topic read " + root + "/stream/+",
			"topic write " + root + "/device/song-lam-gauge/state",
			"topic write " + root + "/device/song-lam-gauge/events",
			"topic write " + root + "/device/song-lam-gauge/time/req",
			"topic write " + root + "/trigger/song-lam-gauge",
		}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			if got := section(acl, tc.user); !slices.Equal(got, tc.want) {
				t.Errorf("section:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	if section(acl, "old-box") != nil || !strings.Contains(acl, "# box old-box is left out") {
		t.Errorf("a box with no hash must only appear as a comment:\n%s", acl)
	}
	conf := string(f.Conf)
	for _, line := range []string{"per_listener_settings false", "allow_anonymous false",
		"password_file /etc/mosquitto/loa/loa.passwd", "acl_file /etc/mosquitto/loa/loa.acl"} {
		if !slices.Contains(strings.Split(conf, "\n"), line) {
			t.Errorf("conf lacks %q:\n%s", line, conf)
		}
	}

	// Same input, same bytes: a second run changes no file.
	g, err := Mosquitto(sample())
	if err != nil || string(g.ACL) != acl || string(g.Passwd) != string(f.Passwd) {
		t.Error("generating twice gave different files")
	}
}

func TestMosquittoAnyGroup(t *testing.T) {
	o := sample()
	o.AnyGroup = true
	o.ControllerUser = "ctrl@xa son" // inner spaces and '@' are fine in both files
	f, err := Mosquitto(o)
	if err != nil {
		t.Fatal(err)
	}
	acl := string(f.ACL)
	if got := section(acl, "box-1"); !slices.Contains(got, "topic read loa/xa-son.thuy/plan/group/+") || slices.Contains(got, "topic read loa/xa-son.thuy/plan/group/thon-1") {
		t.Errorf("box-1 with AnyGroup:\n%s", strings.Join(got, "\n"))
	}
	if !strings.HasPrefix(string(f.Passwd), "ctrl@xa son:") || section(acl, "ctrl@xa son") == nil {
		t.Errorf("custom controller user missing:\n%s\n%s", f.Passwd, acl)
	}
}

// TestMosquittoRefusesUnsafeNames: mosquitto's files have no quoting, so a
// name that would end a line or field, start a comment, or act as a topic
// wildcard is refused rather than written.
func TestMosquittoRefusesUnsafeNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"newline in box id", func(o *Options) { o.Devices[0].ID = "box\nuser loa-controller" }},
		{"colon in box id", func(o *Options) { o.Devices[0].ID = "box:1" }},
		{"wildcard box id", func(o *Options) { o.Devices[0].ID = "#" }},
		{"plus in box id", func(o *Options) { o.Devices[0].ID = "+" }},
		{"slash in box id", func(o *Options) { o.Devices[0].ID = "a/b" }},
		{"space in box id", func(o *Options) { o.Devices[0].ID = "box 1" }},
		{"wildcard group", func(o *Options) { o.Devices[0].Groups = []string{"+"} }},
		{"slash in group", func(o *Options) { o.Devices[0].Groups = []string{"thon/1"} }},
		{"newline in group", func(o *Options) { o.Devices[0].Groups = []string{"t\ntopic readwrite #"} }},
		{"wildcard site", func(o *Options) { o.Site = "#" }},
		{"colon in controller user", func(o *Options) { o.ControllerUser = "loa:controller" }},
		{"newline in controller user", func(o *Options) { o.ControllerUser = "loa\ncontroller" }},
		{"outer space in controller user", func(o *Options) { o.ControllerUser = " loa" }},
		{"comment controller user", func(o *Options) { o.ControllerUser = "#loa" }},
		{"box named like the controller", func(o *Options) { o.Devices[0].ID = "loa-controller" }},
		{"box twice", func(o *Options) { o.Devices[0].ID = "box-1" }},
		{"box hash with newline", func(o *Options) { o.Devices[0].Hash = hashB + "\nevil:" + hashA }},
		{"box hash not mosquitto's", func(o *Options) { o.Devices[0].Hash = strings.Repeat("ab", 32) }},
		{"no controller hash", func(o *Options) { o.ControllerHash = "" }},
		{"relative folder", func(o *Options) { o.Dir = "out" }},
		{"newline in folder", func(o *Options) { o.Dir = "/etc/x\nallow_anonymous true" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := sample()
			o.Devices = slices.Clone(o.Devices)
			tc.edit(&o)
			if f, err := Mosquitto(o); err == nil {
				t.Fatalf("accepted:\n%s\n%s", f.Passwd, f.ACL)
			}
		})
	}
	// Names protocol.ValidName allows are written as they are.
	o := sample()
	o.Devices = []Device{{ID: "Box_1.a-b", Groups: []string{"Thon_1.x-y"}, Hash: hashA}}
	f, err := Mosquitto(o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(section(string(f.ACL), "Box_1.a-b"), "topic read loa/xa-son.thuy/plan/group/Thon_1.x-y") {
		t.Errorf("ACL:\n%s", f.ACL)
	}
}

func TestHashForKeepsAMatchingHash(t *testing.T) {
	prev := []byte("# comment\n\nloa-controller:" + mosq7 + "\nbox-1:" + hashA + "\n")
	h, err := HashFor(prev, "loa-controller", mosqPassword)
	if err != nil || h != mosq7 {
		t.Fatalf("HashFor with the same password = %q, %v; want the old hash", h, err)
	}
	h, err = HashFor(prev, "loa-controller", "a new password")
	if err != nil || h == mosq7 {
		t.Fatalf("HashFor with a new password = %q, %v; want a new hash", h, err)
	}
	if ok, _ := Verify("a new password", h); !ok {
		t.Fatal("the new hash does not verify")
	}
	if _, err := HashFor(nil, "loa-controller", ""); err == nil {
		t.Fatal("HashFor accepted an empty password")
	}
}

func TestParsePasswd(t *testing.T) {
	got := ParsePasswd([]byte("a:$7$x\r\n#b:c\n\nnocolon\nd:e:f\n"))
	if len(got) != 2 || got["a"] != "$7$x" || got["d"] != "e:f" {
		t.Fatalf("ParsePasswd = %v", got)
	}
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("a:$7$101$AA==$AA==\n#c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for user := range ParsePasswd(b) {
			if strings.ContainsAny(user, ":\n") {
				t.Fatalf("user %q", user)
			}
		}
	})
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	f, err := Mosquitto(sample())
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := f.Write(dir); err != nil || !changed {
		t.Fatalf("first Write = %v, %v", changed, err)
	}
	for name, mode := range map[string]os.FileMode{PasswdFile: 0o640, ACLFile: 0o640, ConfFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v; want %v", name, err, st.Mode().Perm(), mode)
		}
	}
	if changed, err := f.Write(dir); err != nil || changed {
		t.Fatalf("second Write of the same files = %v, %v; want unchanged", changed, err)
	}
	f.ACL = append(f.ACL, "\n"...)
	if changed, err := f.Write(dir); err != nil || !changed {
		t.Fatalf("Write of a changed ACL = %v, %v", changed, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
