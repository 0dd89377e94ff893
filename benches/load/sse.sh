#!/usr/bin/env bash
# Concurrent SSE visitors on one usher node: for each N, a fresh usher (embedded store, one
# worker thread, log level warn), N visitors with a place in line and one open
# `GET /_usher/events` each; usher's RSS and CPU while they idle, then a wake storm (every
# tick admits, so every stream gets an event per tick) for WINDOW seconds. The load client is
# `benches/sse_clients/main.rs`; it also serves the demo shop as usher's upstream, whose
# `/checkout/done` frees a slot (that is how the storm is started and paced).
#
#   bash benches/load/sse.sh                       # N = 1000 5000 10000 19500
#   NS="19500" WINDOW=30 bash benches/load/sse.sh
#
# Environment: NS (list of N), WINDOW (s, default 20), ADMIT (visitors admitted per second in
# the window, default 10), TICK (usher's [store] tick, default 1s), CONNECTING (streams
# connecting at once, default 500), SKIP_BUILD=1, KEEP_TMP=1. Needs python3. Every process it
# starts is stopped by PID on exit.
#
# Open files: usher holds one socket per stream and so does the client; each N must fit under
# `ulimit -n` with some room (about 100 fds). The script raises the soft limit to the hard one
# and refuses an N that does not fit.

set -euo pipefail

NS=${NS:-"1000 5000 10000 19500"}
WINDOW=${WINDOW:-20}
ADMIT=${ADMIT:-10}
TICK=${TICK:-1s}
CONNECTING=${CONNECTING:-500}
# Decoys hold every slot until the storm frees them, ADMIT a second; a few spare.
DECOYS=$((ADMIT * (WINDOW + 5)))
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
USHER="$TARGET/release/usher"

log() { printf '[sse.sh] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building usher and the load client (release)"
    (cd "$ROOT" && cargo build --release -j2 --bin usher && cargo bench -j2 --no-run --bench sse_clients)
fi
# The newest build of the client (cargo names it sse_clients-<hash>).
CLIENT=""
for f in "$TARGET"/release/deps/sse_clients-*; do
    [[ -x $f && ( -z $CLIENT || $f -nt $CLIENT ) ]] && CLIENT=$f
done
[[ -x $CLIENT ]] || { log "no load client in $TARGET/release/deps: run without SKIP_BUILD"; exit 1; }

tmp=$(mktemp -d /tmp/usher-sse.XXXXXX)
# Private copies: a build in the same target directory during the run must not swap them.
cp "$USHER" "$tmp/usher" && USHER="$tmp/usher"
cp "$CLIENT" "$tmp/sse_clients" && CLIENT="$tmp/sse_clients"
pid=""
client=""
cleanup() {
    [[ -n $client ]] && kill "$client" 2>/dev/null && wait "$client" 2>/dev/null
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    if [[ -n ${KEEP_TMP:-} ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

"$USHER" keygen --out "$tmp/key.pem" >/dev/null
log "$(nproc) CPUs, open-file limit $FD_LIMIT, window ${WINDOW}s, $ADMIT admitted/s, tick $TICK"

mem_rows=""
storm_rows=""
for n in $NS; do
    if ((n + 100 > FD_LIMIT)); then
        log "N=$n does not fit under the open-file limit $FD_LIMIT: skipped"
        continue
    fi
    port=$(free_port)
    origin=$(free_port)
    mkdir -p "$tmp/$n"
    cat >"$tmp/$n/usher.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
grace_period = "1s"
# Every stream of the bench on one node (the default cap is 10,000).
max_event_streams = 1000000
[upstreams.shop]
addrs = ["127.0.0.1:$origin"]
[tokens]
signing_key = { kid = "k", file = "../key.pem" }
[store]
data_dir = "data"
tick = "$TICK"
[zones.checkout]
paths = ["/checkout"]
mode = "queue_all"
capacity = $DECOYS
burst = $DECOYS
admit_per_minute = 6000
$(cat "$ROOT/benches/load/one_client.toml")
EOF
    RUST_LOG=warn "$USHER" run --config "$tmp/$n/usher.toml" 2>"$tmp/$n/usher.log" &
    pid=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/_usher/health" 2>/dev/null && break
        sleep 0.1
    done
    log "N=$n: usher pid $pid on port $port"
    "$CLIENT" --addr "127.0.0.1:$port" --origin "127.0.0.1:$origin" --pid "$pid" \
        --streams "$n" --decoys "$DECOYS" --admit-per-second "$ADMIT" --window "$WINDOW" \
        --connect-concurrency "$CONNECTING" --clk-tck "$(getconf CLK_TCK)" \
        >"$tmp/$n/client.out" 2> >(tee "$tmp/$n/client.log" >&2) &
    client=$!
    wait "$client" || log "N=$n: the client failed (see above)"
    client=""
    grep -v '|' "$tmp/$n/client.out" >&2 || true
    mem_rows+=$(sed -n 's/^MEM|//p' "$tmp/$n/client.out")$'\n'
    storm_rows+=$(sed -n 's/^STORM|//p' "$tmp/$n/client.out")$'\n'
    if [[ -s $tmp/$n/usher.log ]]; then
        log "usher's log (warnings):"
        head -n 20 "$tmp/$n/usher.log" >&2
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
done

echo
echo "| N | streams with a first event | RSS start MiB | RSS after joins MiB | RSS streams open MiB | KiB per stream (RssAnon) | setup s | first event p50 ms | p99 ms | idle CPU % |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$mem_rows" | sed '/^$/d; s/^/|/'
echo
echo "| N | events/s | usher CPU % | usher µs/event | wave spread p50 ms | max ms | per-stream gap p50 ms | p99 ms | RSS peak MiB | closed early |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$storm_rows" | sed '/^$/d; s/^/|/'
