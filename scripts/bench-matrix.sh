#!/usr/bin/env bash
# The issue-6 figures: `loa bench` on the embedded broker, on mosquitto and on a 3-node NATS
# cluster, at several sizes, RUNS times each; writes every run's JSON to OUT and prints the
# medians as a Markdown table (docs/benchmarks.md).
#
#   scripts/bench-matrix.sh [OUT]      (default OUT: bench-results)
#
# Environment: SIZES (default "100 1000 5000"), RUNS (3), ROUNDS (20), BROKERS ("embedded
# mosquitto nats"), and BENCH_ARGS, more flags for every run (e.g. "--schedules 2000 --groups 500").
# Needs bin/loa (make build), mosquitto and nats-server (scripts/deps.sh test installs both) and jq.
# mosquitto runs anonymous on loopback (the boxes are registered as the bench goes, so no password
# file could list them); NATS runs the cluster of configs/nats without auth. The controller uses the
# first NATS node, the boxes the other two, as a province would spread them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
sizes=${SIZES:-100 1000 5000}
runs=${RUNS:-3}
rounds=${ROUNDS:-20}
brokers=${BROKERS:-embedded mosquitto nats}
loa=bin/loa
[ -x "$loa" ] || { echo "build first: make build" >&2; exit 1; }
command -v jq >/dev/null || { echo "install jq: apt-get install jq" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
mosq_pid=""
cleanup() {
  [ -z "$mosq_pid" ] || kill "$mosq_pid" 2>/dev/null || true
  LOA_NATS_DIR=$work/nats configs/nats/cluster.sh stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

run() { # BROKER SIZE RUN FLAGS...
  local b=$1 n=$2 r=$3; shift 3
  echo "== $b, $n boxes, run $r" >&2
  # shellcheck disable=SC2086
  "$loa" bench --boxes "$n" --rounds "$rounds" -o json "$@" $BENCH_ARGS_ >"$out/$b-$n-$r.json" 2>>"$out/bench.log" ||
    { echo "   failed: see $out/bench.log" >&2; rm -f "$out/$b-$n-$r.json"; }
}
BENCH_ARGS_=${BENCH_ARGS:-}

for b in $brokers; do
  case $b in
  embedded)
    for n in $sizes; do for r in $(seq "$runs"); do run embedded "$n" "$r"; done; done ;;
  mosquitto)
    cat >"$work/mosquitto.conf" <<CONF
listener 18830 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
sys_interval 1
CONF
    mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
    mosq_pid=$!
    sleep 1
    for n in $sizes; do for r in $(seq "$runs"); do
      run mosquitto "$n" "$r" --broker tcp://127.0.0.1:18830 --broker-monitor sys
    done; done
    kill "$mosq_pid"; wait "$mosq_pid" 2>/dev/null || true; mosq_pid="" ;;
  nats)
    LOA_NATS_DIR=$work/nats configs/nats/cluster.sh start >&2
    for n in $sizes; do for r in $(seq "$runs"); do
      run nats "$n" "$r" --broker tcp://127.0.0.1:1883,tcp://127.0.0.1:1884,tcp://127.0.0.1:1885 \
        --box-broker tcp://127.0.0.1:1884,tcp://127.0.0.1:1885,tcp://127.0.0.1:1883 \
        --broker-monitor http://127.0.0.1:8222,http://127.0.0.1:8223,http://127.0.0.1:8224
    done; done
    LOA_NATS_DIR=$work/nats configs/nats/cluster.sh stop >&2 ;;
  *) echo "unknown broker $b" >&2; exit 2 ;;
  esac
done

# Medians over the runs of each broker and size.
echo "| broker | boxes | fan-out p50 | p99 | max | floor p50 | floor p99 | ratio p50 / p99 | request → publish | publish | controller CPU | RSS | RSS / 1,000 boxes | connections | bytes in / box | one group | every group | heartbeats/s | events/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for b in $brokers; do for n in $sizes; do
  files=("$out/$b-$n-"*.json)
  [ -e "${files[0]}" ] || continue
  jq -rs --arg b "$b" --arg n "$n" '
    def med(f): [.[] | f] | sort | .[(length / 2 | floor)];
    def ms(x): (x / 1e6 * 10 | round / 10 | tostring) + " ms";
    def mb(x): (x / 1e6 * 10 | round / 10 | tostring) + " MB";
    "| \($b) | \($n) | \(ms(med(.fan_out.p50_ns))) | \(ms(med(.fan_out.p99_ns))) | \(ms(med(.fan_out.max_ns))) | " +
    "\(ms(med(.floor.p50_ns))) | \(ms(med(.floor.p99_ns))) | " +
    "\(med(.floor_ratio_p50_p99[0]) * 100 | round / 100) / \(med(.floor_ratio_p50_p99[1]) * 100 | round / 100) | " +
    "\(ms(med(.controller_path.p50_ns))) | \(ms(med(.publish_ns))) | \(med(.controller.cpu_percent) | round) % | \(mb(med(.controller.rss_bytes))) | " +
    "\(mb(med(.controller.rss_per_1000_boxes))) | \(med(.broker_connections)) | \(med(.bytes_in_per_box) | round) | " +
    "\(ms(med(.change_one_group.all_have_ns))) | \(ms(med(.change_all_groups.all_have_ns))) | \(med(.heartbeats_per_sec) | round) | \(med(.events_per_sec) | round) |"
  ' "${files[@]}"
done; done
