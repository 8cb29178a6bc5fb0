package protocol

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// UpdateOffer is a new agent build offered to one box, inside its signed
// config (so it is as trusted as the config): the box picks the build of its
// own architecture, fetches it from the controller (GET Path, resumable with
// Range), checks it against SHA256 and Size, and runs it on trial; a box
// never installs a build whose Version is not newer than its own.
type UpdateOffer struct {
	Rollout string        `json:"rollout"`
	Version string        `json:"version"` // vMAJOR.MINOR.PATCH
	Builds  []UpdateBuild `json:"builds"`
}

// UpdateBuild is one architecture's build of an UpdateOffer.
type UpdateBuild struct {
	Arch   string `json:"arch"`   // Debian's name: amd64, arm64, armhf
	SHA256 string `json:"sha256"` // hex
	Size   int64  `json:"size"`
	Path   string `json:"path"` // on the controller, /v1/agent/builds/<sha256>
}

// UpdateStatus is how a box's last update went, in its State.
type UpdateStatus struct {
	Rollout string `json:"rollout"`
	Version string `json:"version"` // the offered version
	Status  string `json:"status"`  // one of the Update* statuses
	Detail  string `json:"detail,omitempty"`
}

// Update statuses, in the order an update goes through them.
const (
	// UpdateWaiting: offered, but the box is playing or an emergency is on.
	UpdateWaiting = "waiting"
	// UpdateDownloading: fetching the build.
	UpdateDownloading = "downloading"
	// UpdateTrial: the new build runs and has not yet proved itself.
	UpdateTrial = "trial"
	// UpdateHealthy: the new build reached the controller and is kept.
	UpdateHealthy = "healthy"
	// UpdateRolledBack: the new build did not prove itself in time; the box
	// runs its previous build again and will not try this version again.
	UpdateRolledBack = "rolled-back"
	// UpdateRefused: the build is not for this box or not to be trusted:
	// tampered (wrong SHA-256 or size), older or the same version, no
	// build for this architecture. Detail says which.
	UpdateRefused = "refused"
	// UpdateFailed: the download or install failed (disk full, …); the box
	// tries again later.
	UpdateFailed = "failed"
)

// MaxUpdateBuilds bounds an offer's builds (one per architecture).
const MaxUpdateBuilds = 8

// Validate checks an offer's fields.
func (u *UpdateOffer) Validate() error {
	if err := ValidName(u.Rollout); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if _, err := ParseVersion(u.Version); err != nil {
		return err
	}
	if len(u.Builds) == 0 || len(u.Builds) > MaxUpdateBuilds {
		return fmt.Errorf("%d builds, want 1..%d", len(u.Builds), MaxUpdateBuilds)
	}
	for _, b := range u.Builds {
		if err := ValidName(b.Arch); err != nil {
			return fmt.Errorf("arch: %w", err)
		}
		if h, err := hex.DecodeString(b.SHA256); err != nil || len(h) != 32 {
			return fmt.Errorf("build sha256 %q is not 64 hex digits", b.SHA256)
		}
		if b.Size <= 0 || b.Size > MaxBuildSize {
			return fmt.Errorf("build size %d is not within 1..%d", b.Size, MaxBuildSize)
		}
		if !strings.HasPrefix(b.Path, "/") || len(b.Path) > 200 {
			return fmt.Errorf("build path %q", b.Path)
		}
	}
	return nil
}

// MaxBuildSize bounds an agent build (the agent is about 10 MB).
const MaxBuildSize = 200 << 20

// Release is a release version, vMAJOR.MINOR.PATCH (a leading v optional;
// a -suffix such as -rc1 sorts before the release).
type Release struct {
	Major, Minor, Patch int
	Pre                 string
}

// ErrBadVersion: not vMAJOR.MINOR.PATCH.
var ErrBadVersion = errors.New("a version is vMAJOR.MINOR.PATCH, like v1.4.0")

// ParseVersion reads a version.
func ParseVersion(s string) (Release, error) {
	core, pre, _ := strings.Cut(strings.TrimPrefix(s, "v"), "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 || len(s) > 64 {
		return Release{}, fmt.Errorf("%q: %w", s, ErrBadVersion)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return Release{}, fmt.Errorf("%q: %w", s, ErrBadVersion)
		}
		n[i] = v
	}
	return Release{n[0], n[1], n[2], pre}, nil
}

// Compare is -1, 0 or +1 as v is older than, the same as or newer than w.
func (v Release) Compare(w Release) int {
	for _, d := range [][2]int{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.Pre == w.Pre:
		return 0
	case v.Pre == "": // a release is newer than its pre-releases
		return 1
	case w.Pre == "":
		return -1
	case v.Pre < w.Pre:
		return -1
	}
	return 1
}

func (v Release) String() string {
	s := fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}
