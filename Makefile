# Loa: `make demo` runs a whole commune on this machine, `make test` runs the tests.
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: all build demo test test-short bench fuzz lint deps-build deps-test clean pi

all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

# The agent believes no clock earlier than its build (a Pi without a
# real-time clock boots in 1970): the date of the last commit.
AGENT_LDFLAGS = -X github.com/loa-commune/loa/device.BuildDate=$(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)

# The controller and CLI build without cgo; the agent needs cgo for ALSA.
build: deps-build
	CGO_ENABLED=0 $(GO) build -o bin/loa ./cmd/loa
	CGO_ENABLED=1 $(GO) build -ldflags "$(AGENT_LDFLAGS)" -o bin/loa-agent ./cmd/loa-agent

demo: build
	bin/loa demo

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test: deps-test lint
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/loa
	$(GO) test -race -count=1 -timeout 25m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./audio/... ./device/...

# Raspberry Pi (64-bit) agent; see README for the cross-compiler packages.
pi:
	CGO_ENABLED=1 GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
	PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
	$(GO) build -ldflags "$(AGENT_LDFLAGS)" -o bin/loa-agent-arm64 ./cmd/loa-agent

clean:
	rm -rf bin demo-out loa
