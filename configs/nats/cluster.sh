#!/usr/bin/env bash
# A 3-node NATS cluster with JetStream and MQTT on one machine, for trying Loa on a clustered
# broker and for its tests (e2e/nats_test.go). Each node runs node.conf (next to this script).
#
#   configs/nats/cluster.sh start [DIR]       start the nodes not running; wait until all are healthy
#   configs/nats/cluster.sh stop [DIR]        stop every node (SIGTERM, then SIGKILL after 20 s)
#   configs/nats/cluster.sh kill N [DIR]      kill -9 node N (1..3), as a power cut would
#   configs/nats/cluster.sh restart N [DIR]   stop node N if it runs, start it, wait until healthy
#   configs/nats/cluster.sh reload [DIR]      copy LOA_NATS_AUTH again and make every node reload it
#   configs/nats/cluster.sh status [DIR]      one line per node: name, pid or "down", MQTT URL
#
# DIR (default $LOA_NATS_DIR, else ./nats-cluster) holds each node's JetStream store (nN/),
# log (nN.log) and pid file (nN.pid), and the nats.conf the nodes run. Environment:
#
#   LOA_NATS_HOST           address of every listener (default 127.0.0.1: loopback only)
#   LOA_NATS_PORTS          the nodes' NATS client ports      (default "4222 4223 4224")
#   LOA_NATS_MQTT_PORTS     their MQTT ports                  (default "1883 1884 1885")
#   LOA_NATS_HTTP_PORTS     their monitoring ports            (default "8222 8223 8224")
#   LOA_NATS_CLUSTER_PORTS  their route ports                 (default "6222 6223 6224")
#   LOA_NATS_AUTH           a file to include in every node: loa-nats.conf as `loa broker config
#                           --format nats` writes it (the .conf files of its folder are copied
#                           along, for its includes); default none: every client is let in
#   NATS_SERVER             the nats-server binary (default: nats-server on PATH, else GOPATH/bin)
#
# MQTT URLs for Loa: tcp://127.0.0.1:1883, tcp://127.0.0.1:1884, tcp://127.0.0.1:1885.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { echo "usage: $0 start|stop|reload|status [DIR] | kill N [DIR] | restart N [DIR]" >&2; exit 2; }

cmd=${1:-}; shift || true
node=""
case "$cmd" in
  kill|restart) node=${1:-}; shift || true
    [[ "$node" =~ ^[123]$ ]] || usage ;;
  start|stop|reload|status) ;;
  *) usage ;;
esac
[ $# -le 1 ] || usage
dir=${1:-${LOA_NATS_DIR:-./nats-cluster}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

host=${LOA_NATS_HOST:-127.0.0.1}
read -r -a ports <<<"${LOA_NATS_PORTS:-4222 4223 4224}"
read -r -a mqtt_ports <<<"${LOA_NATS_MQTT_PORTS:-1883 1884 1885}"
read -r -a http_ports <<<"${LOA_NATS_HTTP_PORTS:-8222 8223 8224}"
read -r -a cluster_ports <<<"${LOA_NATS_CLUSTER_PORTS:-6222 6223 6224}"
for v in ports mqtt_ports http_ports cluster_ports; do
  declare -n list=$v
  [ ${#list[@]} -eq 3 ] || { echo "$0: give three ports, one per node, in each LOA_NATS_*PORTS" >&2; exit 2; }
done

server=${NATS_SERVER:-}
if [ -z "$server" ]; then
  if command -v nats-server >/dev/null; then
    server=$(command -v nats-server)
  elif command -v go >/dev/null && [ -x "$(go env GOPATH)/bin/nats-server" ]; then
    server=$(go env GOPATH)/bin/nats-server
  else
    echo "$0: nats-server not found: go install github.com/nats-io/nats-server/v2@v2.15.3" >&2
    exit 1
  fi
fi

routes="["
for i in 0 1 2; do routes+="nats-route://$host:${cluster_ports[$i]}"; [ $i -eq 2 ] || routes+=", "; done
routes+="]"

# The nodes run $dir/nats.conf: node.conf, plus the accounts when asked for. NATS includes
# files only by a path relative to the including file, so both are copied next to it.
write_conf() {
  cp "$here/node.conf" "$dir/node.conf"
  {
    echo "# Written by configs/nats/cluster.sh; the node's settings come from its environment."
    echo "include node.conf"
    if [ -n "${LOA_NATS_AUTH:-}" ]; then
      rm -rf "$dir/auth" && mkdir -p "$dir/auth"
      cp "$(dirname "$LOA_NATS_AUTH")"/*.conf "$dir/auth/"
      echo "include \"auth/$(basename "$LOA_NATS_AUTH")\""
    fi
  } >"$dir/nats.conf"
}

alive() { # process $1 runs (a zombie, killed but not yet reaped, does not)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

pid_of() { # prints the pid of node $1 when it runs
  local f="$dir/n$1.pid"
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  alive "$pid" || { rm -f "$f"; return 1; }
  echo "$pid"
}

healthy() { # node $1 answers /healthz with 200 (JetStream ready)
  local port=${http_ports[$(($1 - 1))]} line
  { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
  read -r -t 2 line <&3 || line=""
  exec 3>&-
  [[ "$line" == *" 200"* ]]
}

start_node() {
  local n=$1 i=$(($1 - 1))
  pid_of "$n" >/dev/null && return 0
  mkdir -p "$dir/n$n"
  LOA_NATS_NAME="n$n" LOA_NATS_HOST="$host" LOA_NATS_PORT="${ports[$i]}" \
    LOA_NATS_MQTT_PORT="${mqtt_ports[$i]}" LOA_NATS_HTTP_PORT="${http_ports[$i]}" \
    LOA_NATS_CLUSTER_PORT="${cluster_ports[$i]}" LOA_NATS_ROUTES="$routes" LOA_NATS_STORE="$dir/n$n" \
    setsid "$server" -c "$dir/nats.conf" >>"$dir/n$n.log" 2>&1 </dev/null &
  echo $! >"$dir/n$n.pid"
}

wait_healthy() { # waits up to 60 s for the nodes given
  local n deadline=$((SECONDS + 60))
  for n in "$@"; do
    until healthy "$n"; do
      if ! pid_of "$n" >/dev/null; then
        echo "$0: node n$n exited; its log:" >&2; tail -n 20 "$dir/n$n.log" >&2; exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "$0: node n$n not healthy after 60 s; see $dir/n$n.log" >&2; exit 1
      fi
      sleep 0.2
    done
  done
}

stop_node() { # SIGTERM, then SIGKILL after 20 s
  local n=$1 pid
  pid=$(pid_of "$n") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/n$n.pid"
}

case "$cmd" in
  start)
    write_conf
    for n in 1 2 3; do start_node "$n"; done
    wait_healthy 1 2 3
    echo "NATS cluster up in $dir: MQTT tcp://$host:${mqtt_ports[0]} tcp://$host:${mqtt_ports[1]} tcp://$host:${mqtt_ports[2]}"
    ;;
  stop)
    for n in 1 2 3; do stop_node "$n" & done
    wait
    ;;
  kill)
    if pid=$(pid_of "$node"); then
      kill -KILL "$pid"
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.05; done
      rm -f "$dir/n$node.pid"
    fi
    ;;
  restart)
    stop_node "$node"
    [ -f "$dir/nats.conf" ] || write_conf
    start_node "$node"
    wait_healthy "$node"
    ;;
  reload)
    write_conf
    for n in 1 2 3; do
      if pid=$(pid_of "$n"); then kill -HUP "$pid"; fi
    done
    ;;
  status)
    for n in 1 2 3; do
      pid=$(pid_of "$n") || pid=down
      echo "n$n $pid tcp://$host:${mqtt_ports[$((n - 1))]}"
    done
    ;;
esac
