package protocol

import (
	"strings"
	"testing"
)

func TestReleaseOrder(t *testing.T) {
	ordered := []string{"v0.9.9", "v1.0.0-rc1", "v1.0.0-rc2", "1.0.0", "v1.0.1", "v1.2.0", "v1.10.0", "v2.0.0"}
	for i := range ordered {
		for j := range ordered {
			a, err1 := ParseVersion(ordered[i])
			b, err2 := ParseVersion(ordered[j])
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s vs %s = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for _, bad := range []string{"", "v1", "v1.2", "v1.2.x", "v01.2.3", "v1.2.3.4", "v-1.2.3", "latest"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestUpdateOfferValidate(t *testing.T) {
	good := func() *UpdateOffer {
		return &UpdateOffer{Rollout: "r-1", Version: "v1.4.0", Builds: []UpdateBuild{
			{Arch: "arm64", SHA256: strings.Repeat("ab", 32), Size: 9 << 20, Path: "/v1/agent/builds/" + strings.Repeat("ab", 32)}}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*UpdateOffer){
		"bad version": func(u *UpdateOffer) { u.Version = "new" },
		"no builds":   func(u *UpdateOffer) { u.Builds = nil },
		"short hash":  func(u *UpdateOffer) { u.Builds[0].SHA256 = "abcd" },
		"huge":        func(u *UpdateOffer) { u.Builds[0].Size = MaxBuildSize + 1 },
		"bad arch":    func(u *UpdateOffer) { u.Builds[0].Arch = "../x" },
		"bad path":    func(u *UpdateOffer) { u.Builds[0].Path = "http://elsewhere/x" },
	} {
		u := good()
		edit(u)
		if err := u.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
