#!/bin/sh
# README quick start: on a Debian 12 machine, installs what is needed (scripts/setup.sh), builds
# the relay, starts two influxd on loopback (HTTP 8086 and 7086, UDP 8089 and 7089 with database
# "udp", data in a temp dir) and the relay on packaging/relay.ini.example (HTTP and UDP on
# 127.0.0.1:9096; its spools in the temp dir), writes a point through the relay over HTTP and one over UDP, shows both
# arriving in both influxd, then keeps the relay in the foreground until Ctrl-C. Every process it
# started is stopped on exit.
# Usage: sh scripts/run-local.sh        (BUILD_DIR=build by default)
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
CONFIG=packaging/relay.ini.example

sh scripts/setup.sh
cmake -S . -B "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target influxdb-relay >/dev/null
RELAY="$BUILD_DIR/influxdb-relay"

TMP=$(mktemp -d /tmp/relay-local.XXXXXX)
PIDS=""
cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do
        kill "$p" 2>/dev/null || true
    done
    for p in $PIDS; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
    echo "run-local: stopped everything it started"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() {
    python3 -c 'import socket,sys
s=socket.socket()
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(0)
sys.exit(1)' "$1"
}

for p in 8086 8088 7086 7088 9096; do
    if port_busy "$p"; then
        echo "run-local: port 127.0.0.1:$p is in use (a system influxd or relay?); stop it first" >&2
        exit 1
    fi
done

# $1 name, $2 HTTP port, $3 RPC port, $4 UDP port
start_influxd() {
    d="$TMP/$1"
    mkdir -p "$d"
    cat >"$d/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$3"
[meta]
  dir = "$d/meta"
[data]
  dir = "$d/data"
  wal-dir = "$d/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$2"
  log-enabled = false
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:$4"
  database = "udp"
  batch-timeout = "100ms"
[monitor]
  store-enabled = false
CONF
    influxd -config "$d/influxd.conf" >"$d/influxd.log" 2>&1 &
    PIDS="$PIDS $!"
}

wait_http() {
    i=0
    until curl -fs -o /dev/null "http://127.0.0.1:$1/ping"; do
        i=$((i + 1))
        if [ "$i" -gt 150 ]; then
            echo "run-local: nothing answers on 127.0.0.1:$1" >&2
            exit 1
        fi
        sleep 0.2
    done
}

query() {
    curl -fsS -G "http://127.0.0.1:$1/query" --data-urlencode "db=$2" --data-urlencode "q=$3"
    echo
}

echo "run-local: starting influxd on 127.0.0.1:8086 and 127.0.0.1:7086 (data in $TMP)"
start_influxd influxd1 8086 8088 8089
start_influxd influxd2 7086 7088 7089
wait_http 8086
wait_http 7086
for p in 8086 7086; do
    for db in mydb udp; do
        curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$p/query" --data-urlencode "q=CREATE DATABASE $db"
    done
done

# The example spools to /var/lib/influxdb-relay (the packages create it): here, a temp dir.
mkdir -p "$TMP/spool"
sed "s|^spool-dir = .*|spool-dir = $TMP/spool|" "$CONFIG" >"$TMP/relay.ini"
echo "run-local: starting $RELAY -config $TMP/relay.ini ($CONFIG with spool-dir = $TMP/spool)"
"$RELAY" -config "$TMP/relay.ini" &
RELAY_PID=$!
PIDS="$PIDS $RELAY_PID"
wait_http 9096

now=$(date +%s%N)
echo "run-local: POST /write?db=mydb through the relay:"
curl -sS -i -XPOST "http://127.0.0.1:9096/write?db=mydb" \
    --data-binary "cpu,host=run-local value=42 $now"
echo "run-local: one line over UDP to the relay (127.0.0.1:9096):"
python3 -c 'import socket,sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
    ("udp_demo,host=run-local value=7 %s\n" % sys.argv[1]).encode(), ("127.0.0.1", 9096))' "$now"
sleep 1
for p in 8086 7086; do
    echo "run-local: influxd on 127.0.0.1:$p holds:"
    query "$p" mydb "SELECT * FROM cpu"
    query "$p" udp "SELECT * FROM udp_demo"
done

echo "run-local: the relay keeps running on 127.0.0.1:9096 (HTTP and UDP); Ctrl-C stops everything"
wait "$RELAY_PID"
