# Sourced by snapshot.sh and upgrade.sh: one usher node (release build) with a `queue_all` zone
# on `/checkout`, in front of an nginx answering "shop" on every path, in a temporary directory.
# Every process started through `spawn` is stopped by PID on exit.
#
# Sets ROOT, USHER, TMP, PORT, METRICS, ORIGIN; defines log, spawn, write_config, wait_ready.
# The sourcing script sets NAME (for log lines) first.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
USHER=${CARGO_TARGET_DIR:-$ROOT/target}/release/usher
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # A process `usher upgrade` started is not ours by PID: the data directory's lock names it.
  [[ -f $TMP/data/lock ]] && kill "$(cat "$TMP/data/lock")" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
log() { printf '[%s] %s\n' "$NAME" "$*" >&2; }
# spawn CMD...: runs it in the background, to be stopped on exit; its PID in SPAWNED.
spawn() { "$@" & SPAWNED=$!; PIDS+=("$SPAWNED"); }

[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release -j2 --bin usher >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); METRICS=$(free_port); ORIGIN=$(free_port)
cat > "$TMP/nginx.conf" <<NGINX
worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err; daemon off;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$ORIGIN; location / { return 200 "shop\n"; } } }
NGINX
spawn nginx -c "$TMP/nginx.conf"
"$USHER" keygen --out "$TMP/key.pem" >/dev/null

# write_config [STORE_LINES]: the node's config, with extra lines for [store].
write_config() {
  cat > "$TMP/usher.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[upstreams.shop]
addrs = ["127.0.0.1:$ORIGIN"]
[tokens]
signing_key = { kid = "k", file = "key.pem" }
[metrics]
listen = "127.0.0.1:$METRICS"
[zones.checkout]
paths = ["/checkout"]
capacity = 10
admit_per_minute = 1
burst = 1
mode = "queue_all"
$(cat "$ROOT/benches/load/one_client.toml")
[store]
data_dir = "data"
${1:-}
TOML
}

# wait_ready: until /_usher/ready answers 200 (a minute at most: a long line takes a while to load).
wait_ready() {
  for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/_usher/ready" && return; sleep 0.1; done
  log "usher did not become ready"; exit 1
}
