#!/usr/bin/env bash
# Joins per second through one usher node, end to end: wrk sends newcomers (no cookie) to a
# protected path of a `queue_all` zone, each of which comes back once with its place
# (join_and_return.lua): a join is a new visitor token signed, a position looked up, the waiting
# page rendered; the return writes the queue entry and answers the status JSON.
#
#   bash benches/load/joins.sh                            # the embedded store
#   USHER_CQL=127.0.0.1:9042 bash benches/load/joins.sh   # and the CQL store, same run
#
# Environment: DURATION (s, default 10), CONNECTIONS (default 64), SKIP_BUILD=1, EVENTS_LOG=1
# (usher with `[events_log]` on: a `joined` line per join). Needs wrk and python3. Every process
# it starts is stopped by PID on exit.

set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
USHER="${CARGO_TARGET_DIR:-$ROOT/target}/release/usher"

log() { printf '[joins.sh] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

command -v wrk >/dev/null || { log "wrk is missing: apt-get install -y wrk"; exit 1; }
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building usher (release)"
    (cd "$ROOT" && cargo build --release -j2 --bin usher)
fi

tmp=$(mktemp -d /tmp/usher-joins.XXXXXX)
pid=""
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$USHER" keygen --out "$tmp/key.pem" >/dev/null

# One case: start usher with STORE_TOML, measure, stop.
run_case() {
    local name=$1 store=$2
    local port metrics
    port=$(free_port)
    metrics=$(free_port)
    cat >"$tmp/usher.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
grace_period = "1s"
[upstreams.shop]
addrs = ["127.0.0.1:9"]
[tokens]
signing_key = { kid = "k", file = "key.pem" }
[metrics]
listen = "127.0.0.1:$metrics"
[zones.checkout]
paths = ["/checkout"]
capacity = 10
admit_per_minute = 60
mode = "queue_all"
$(cat "$ROOT/benches/load/one_client.toml")
$store
EOF
    if [[ ${EVENTS_LOG:-0} == 1 ]]; then
        printf '[events_log]\npath = "events-%s.jsonl"\n' "$name" >>"$tmp/usher.toml"
    fi
    RUST_LOG=warn "$USHER" run --config "$tmp/usher.toml" 2>"$tmp/$name.log" &
    pid=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/_usher/health" 2>/dev/null && break
        sleep 0.1
    done
    wrk -t1 -c"$CONNECTIONS" -d2s -s "$ROOT/benches/load/join_and_return.lua" "http://127.0.0.1:$port/checkout" >/dev/null # warm-up
    local out rps
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$ROOT/benches/load/join_and_return.lua" "http://127.0.0.1:$port/checkout")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    local p50 p99 errors
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+|Socket errors: .*' <<<"$out" || true)
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
    kill "$pid" && wait "$pid" 2>/dev/null || true
    pid=""
}

echo "| store | requests/s (half joins, half returns) | p50 | p99 | errors |"
echo "|---|---:|---:|---:|---|"
run_case embedded "[store]
data_dir = \"data\""
if [[ -n ${USHER_CQL:-} ]]; then
    run_case cql "[store]
kind = \"scylla\"
contact_points = [\"$USHER_CQL\"]
keyspace = \"usher_joins_$RANDOM\"
replication_factor = 1
consistency = \"one\""
fi
