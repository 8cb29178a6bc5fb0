package selfupdate

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Arch is this binary's architecture in Debian's words (amd64, arm64,
// armhf, …), which picks the build of an offer: GOARCH, except that 32-bit
// ARM is armhf (GOARM 6 and 7, hard float) or armel (GOARM 5).
func Arch() string { return debianArch(runtime.GOARCH, goarm()) }

func debianArch(goarch, goarm string) string {
	switch goarch {
	case "arm":
		if v, _, _ := strings.Cut(goarm, ","); v == "5" {
			return "armel"
		}
		return "armhf"
	case "386":
		return "i386"
	case "mips64le":
		return "mips64el"
	case "mipsle":
		return "mipsel"
	}
	return goarch
}

// goarm is the GOARM setting this binary was built with, if any.
func goarm() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "GOARM" {
			return s.Value
		}
	}
	return ""
}
