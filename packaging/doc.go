// Package packaging holds what makes Loa's Debian packages, and their test.
// `make packages` builds loa-agent (amd64, arm64, armhf) and loa (amd64,
// arm64) with nfpm (a Go tool of its own module,
// tools/go.mod) from nfpm/*.yaml, the maintainer scripts in scripts/, the
// example box config agent.yaml, copyright, changelog and the lintian
// overrides in lintian/. The systemd units are configs/systemd/*.service.
// Build makes one package the same way, for the tests (this package's, and
// e2e's emulated Raspberry Pi boxes, which run the agent from its .deb).
//
// deb_test.go (as root) builds the packages, runs lintian and dpkg-deb on
// them, and installs, upgrades, removes and purges them in a debootstrapped
// Debian 12 root, cached under the user cache folder (loa-test/). The root
// has arm64 and armhf as foreign architectures: apt installs each Pi agent
// with its dependencies for that architecture, and the installed binary
// runs under qemu-user with the root's libraries.
package packaging
