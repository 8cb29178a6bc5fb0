#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages Loa needs.
#   scripts/deps.sh build   what building loa-agent needs (ALSA and Opus headers) and what
#                           `loa serve` needs to run (ffmpeg decodes and converts every upload)
#   scripts/deps.sh cross   cross compilers and the arm64/armhf ALSA and Opus libraries (Debian
#                           multiarch) for `make cross`, and qemu-user to run those agents here
#   scripts/deps.sh test    what the tests need: real audio, a real broker, TTS, nats-server
#                           (go install, into GOPATH/bin) for the NATS cluster tests, and the
#                           cross set (the emulated Raspberry Pi boxes), and lintian, debootstrap
#                           and systemd (systemd-analyze) for the Debian packages' test, and
#                           chromium (headless) for the web console's browser tests
set -euo pipefail
build=(libasound2-dev libopus-dev pkg-config ffmpeg)
cross=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 libopus-dev:arm64
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross libasound2-dev:armhf libopus-dev:armhf qemu-user)
test=("${build[@]}" "${cross[@]}" alsa-utils libasound2-plugins pulseaudio pulseaudio-utils mosquitto espeak-ng sox lame
  lintian debootstrap systemd chromium fonts-dejavu-core)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  cross) want=("${build[@]}" "${cross[@]}") ;;
  test) want=("${test[@]}") ;;
  *) echo "usage: $0 build|cross|test" >&2; exit 2 ;;
esac
# The NATS cluster of configs/nats and e2e/nats_test.go: not a Debian package at this version.
nats_version=v2.15.3
if [ "${1:-build}" = test ]; then
  gobin=$(go env GOPATH)/bin
  if ! "$gobin/nats-server" --version 2>/dev/null | grep -q "$nats_version"; then
    echo "Installing nats-server $nats_version into $gobin" >&2
    go install "github.com/nats-io/nats-server/v2@$nats_version"
  fi
fi
# The arm64 and armhf libraries come from Debian's multiarch archives.
foreign=()
case "${1:-build}" in cross|test) foreign=(arm64 armhf) ;; esac
missing_arch=()
for a in "${foreign[@]}"; do
  dpkg --print-foreign-architectures | grep -qx "$a" || missing_arch+=("$a")
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ ${#missing_arch[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  for a in "${missing_arch[@]}"; do echo "Loa needs: sudo dpkg --add-architecture $a" >&2; done
  echo "Loa needs these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
for a in "${missing_arch[@]}"; do dpkg --add-architecture "$a"; done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A Debian mirror in the middle of a sync serves an index of the wrong size,
# and apt-get update then fails for one architecture's list: try again after
# a pause, and try the install with the lists apt has if the update still fails.
for attempt in 1 2 3 4; do
  apt-get update -qq -o Acquire::Retries=3 || echo "apt-get update failed (attempt $attempt)" >&2
  if apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then exit 0; fi
  [ "$attempt" -lt 4 ] && sleep $((attempt * 30))
done
echo "Could not install: ${missing[*]}" >&2
exit 1
