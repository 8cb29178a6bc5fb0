#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages Loa needs.
#   scripts/deps.sh build   what building loa-agent needs (ALSA and Opus headers) and what
#                           `loa serve` needs to run (ffmpeg decodes and converts every upload)
#   scripts/deps.sh test    what the tests need: real audio, a real broker, TTS, and nats-server
#                           (go install, into GOPATH/bin) for the NATS cluster tests
set -euo pipefail
build=(libasound2-dev libopus-dev pkg-config ffmpeg)
test=("${build[@]}" alsa-utils libasound2-plugins pulseaudio pulseaudio-utils mosquitto espeak-ng sox lame)
case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${test[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
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
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Loa needs these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
