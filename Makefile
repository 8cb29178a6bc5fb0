# Loa: `make demo` runs a whole commune on this machine, `make test` runs the tests.
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: all build demo screenshots test test-short bench fuzz lint deps-build deps-test deps-cross cross packages clean pi FORCE

all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

# The agent believes no clock earlier than its build (a Pi without a
# real-time clock boots in 1970): the date of the last commit.
AGENT_LDFLAGS = -X github.com/loa-commune/loa/device.BuildDate=$(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)

# The version of the binaries and of the Debian packages: a valid Debian
# version (starts with a digit; no hyphen, these are native packages).
VERSION ?= 0.13.0
AGENT_LDFLAGS += -X github.com/loa-commune/loa/device.Version=$(VERSION)

# The controller and CLI build without cgo; the agent needs cgo for ALSA.
build: deps-build
	CGO_ENABLED=0 $(GO) build -o bin/loa ./cmd/loa
	CGO_ENABLED=1 $(GO) build -ldflags "$(AGENT_LDFLAGS)" -o bin/loa-agent ./cmd/loa-agent

demo: build
	bin/loa demo

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The packages' test builds every architecture and a Debian root, which
# takes both cores for a minute or two: it runs after the others, not beside
# the end-to-end tests, whose relays, live sessions and sound cards keep
# real time. The box's sample-exact sound-card tests run alone too: beside
# the end-to-end tests a starved PulseAudio stream has holes no box would.
# A fresh stream of the private PulseAudio can stall in its first seconds,
# so they warm up first (device/soundcard_test.go, warmUpTime); should a
# stall come later, they get a second run, and fail if that fails too.
SOUNDCARD_TESTS = ^Test(Preemption|LiveSession)ThroughSoundCard$$
test: deps-test lint
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/loa
	$(GO) test -race -count=1 -timeout 25m -skip '$(SOUNDCARD_TESTS)' $$($(GO) list ./... | grep -v '/packaging$$')
	$(GO) test -race -count=1 -timeout 5m -run '$(SOUNDCARD_TESTS)' ./device || \
		$(GO) test -race -count=1 -timeout 5m -run '$(SOUNDCARD_TESTS)' ./device
	$(GO) test -race -count=1 -timeout 25m ./packaging

# The console's screenshots in docs/console/, taken by its browser tests.
screenshots: deps-test
	mkdir -p docs/console
	LOA_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run 'TestConsole' ./e2e

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./audio/... ./device/...

deps-cross:
	@scripts/deps.sh cross

# Every architecture Loa ships for, into bin/linux-ARCH/: the agent for
# amd64, arm64 (Pi 3/4/5 with a 64-bit OS) and armhf (Raspberry Pi OS 32-bit,
# Pi 2/3/Zero 2), and the controller and CLI for amd64 and arm64. The agent
# links ALSA and libopus of the target architecture (Debian multiarch).
ARCHES_AGENT = amd64 arm64 armhf
ARCHES_LOA = amd64 arm64
cross: deps-cross $(foreach a,$(ARCHES_AGENT),bin/linux-$(a)/loa-agent) $(foreach a,$(ARCHES_LOA),bin/linux-$(a)/loa)

GOARCH_amd64 = amd64
GOARCH_arm64 = arm64
GOARCH_armhf = arm
CC_amd64 = gcc
CC_arm64 = aarch64-linux-gnu-gcc
CC_armhf = arm-linux-gnueabihf-gcc
TRIPLET_amd64 = x86_64-linux-gnu
TRIPLET_arm64 = aarch64-linux-gnu
TRIPLET_armhf = arm-linux-gnueabihf

bin/linux-%/loa-agent: FORCE
	CGO_ENABLED=1 GOOS=linux GOARCH=$(GOARCH_$*) GOARM=7 CC=$(CC_$*) \
	PKG_CONFIG_LIBDIR=/usr/lib/$(TRIPLET_$*)/pkgconfig:/usr/share/pkgconfig \
	$(GO) build -trimpath -ldflags "-s -w $(AGENT_LDFLAGS)" -o $@ ./cmd/loa-agent

bin/linux-%/loa: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_$*) $(GO) build -trimpath -ldflags "-s -w" -o $@ ./cmd/loa

# The 64-bit Raspberry Pi agent alone (kept for older instructions).
pi: deps-cross bin/linux-arm64/loa-agent

# Debian packages of every architecture into dist/: loa-agent (amd64, arm64,
# armhf) and loa (amd64, arm64), built by nfpm from packaging/nfpm/*.yaml.
# nfpm is a Go tool of its own module (packaging/tools/go.mod), so its
# dependencies stay out of Loa's go.mod. One architecture:
# make packages ARCHES_AGENT=arm64 ARCHES_LOA=
DIST ?= dist
MAINTAINER ?= Loa maintainers <loa@loa-commune.org>
NFPM = $(GO) tool -modfile=packaging/tools/go.mod nfpm
packages: deps-cross $(foreach a,$(ARCHES_AGENT),$(DIST)/loa-agent_$(VERSION)_$(a).deb) $(foreach a,$(ARCHES_LOA),$(DIST)/loa_$(VERSION)_$(a).deb)

$(DIST)/build/changelog.gz: packaging/changelog
	@mkdir -p $(@D)
	gzip -9nc $< > $@

$(DIST)/loa-agent_$(VERSION)_%.deb: bin/linux-%/loa-agent $(DIST)/build/changelog.gz FORCE
	VERSION=$(VERSION) DEB_ARCH=$* BINDIR=bin/linux-$* DOCDIR=$(DIST)/build MAINTAINER="$(MAINTAINER)" \
	$(NFPM) package --config packaging/nfpm/loa-agent.yaml --packager deb --target $@

$(DIST)/loa_$(VERSION)_%.deb: bin/linux-%/loa $(DIST)/build/changelog.gz FORCE
	VERSION=$(VERSION) DEB_ARCH=$* BINDIR=bin/linux-$* DOCDIR=$(DIST)/build MAINTAINER="$(MAINTAINER)" \
	$(NFPM) package --config packaging/nfpm/loa.yaml --packager deb --target $@

FORCE:

clean:
	rm -rf bin demo-out loa dist
