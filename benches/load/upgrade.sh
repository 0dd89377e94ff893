#!/usr/bin/env bash
# A zero-downtime upgrade under load: wrk against usher (release build), `usher upgrade` two
# seconds in, and what wrk saw (any socket error or non-2xx/3xx answer is a failed request).
#
#   bash benches/load/upgrade.sh            # PATHS="/checkout /" CONNECTIONS=64 DURATION=8
#   PREFILL=60 bash benches/load/upgrade.sh # first fill the line for 60 s (the pause grows with
#                                            # the state: the old process saves it, the new loads it)
#
# `/checkout` is a queue_all zone: every request is a newcomer joining the line (a store write);
# `/` is forwarded to nginx. Prints wrk's summary, the new process's wait for the store (the
# pause in store work during the handover) and how long the upgrade took. Every process it
# starts is stopped by PID on exit.
set -euo pipefail
PATHS=${PATHS:-"/checkout /"}
PREFILL=${PREFILL:-0}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-8}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $TMP/data/lock ]] && kill "$(cat "$TMP/data/lock")" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release -j2 --bin usher >&2
USHER=$TARGET_DIR/release/usher
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); ORIGIN=$(free_port)
cat > "$TMP/nginx.conf" <<NGINX
worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err; daemon off;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$ORIGIN; location / { return 200 "shop\n"; } } }
NGINX
nginx -c "$TMP/nginx.conf" & PIDS+=($!)
"$USHER" keygen --out "$TMP/key.pem" >/dev/null
cat > "$TMP/usher.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[upstreams.shop]
addrs = ["127.0.0.1:$ORIGIN"]
[tokens]
signing_key = { kid = "k", file = "key.pem" }
[zones.checkout]
paths = ["/checkout"]
capacity = 10
admit_per_minute = 60
mode = "queue_all"
[store]
data_dir = "data"
TOML

if (( PREFILL > 0 )); then
  RUST_LOG=warn "$USHER" run --config "$TMP/usher.toml" 2>"$TMP/fill.log" & FILL=$!; PIDS+=($FILL)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/_usher/ready" && break; sleep 0.1; done
  wrk -t2 -c64 -d"${PREFILL}s" "http://127.0.0.1:$PORT/checkout" >/dev/null
  kill -TERM "$FILL"; while kill -0 "$FILL" 2>/dev/null; do sleep 0.1; done
fi

for path in $PATHS; do
  RUST_LOG=info "$USHER" run --config "$TMP/usher.toml" 2>"$TMP/old.log" & PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/_usher/ready" && break; sleep 0.1; done
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path" > "$TMP/wrk.txt" &
  WRK=$!
  sleep 2
  upgraded=$(RUST_LOG=info "$USHER" upgrade --config "$TMP/usher.toml" 2>"$TMP/new.log")
  wait "$WRK"
  echo "== $path: $upgraded"
  grep -E "requests in|Latency |99%|Socket errors|Non-2xx" "$TMP/wrk.txt" || true
  grep -q -E "Socket errors|Non-2xx" "$TMP/wrk.txt" && echo "FAILED REQUESTS" || echo "failed requests: 0"
  sed 's/\x1b\[[0-9;]*m//g' "$TMP/new.log" | grep -o 'store taken over.*' || true
  kill "$(cat "$TMP/data/lock")"
  while [[ -f $TMP/data/lock ]] && kill -0 "$(cat "$TMP/data/lock")" 2>/dev/null; do sleep 0.1; done
done
