#!/usr/bin/env bash
# Loopback load test: usher against nginx and a bare Pingora proxy, same box, same worker count.
#
#   bash benches/load/run.sh                 # 10 s per case, one round
#   DURATION=30 RUNS=3 bash benches/load/run.sh
#
# Cases (every server runs one worker process / one worker thread; wrk -t1 -cCONNECTIONS):
#   a. nginx serving a small static file               (the origin, hit directly)
#   b. nginx proxy_pass -> the origin                   (upstream keepalive on)
#   c. bare Pingora proxy -> the origin                 (benches/load/bare_proxy.rs)
#   d. usher, admitted visitor -> the origin            (access-token cookie; zone with huge capacity)
#   e. usher, waiting page of a queued visitor          (zone in queue_all mode, nobody admitted)
#   f. bare Pingora answering a page of the waiting page's size itself (bare_proxy --respond):
#      the floor for (e), for information
#   g. nginx over TLS, proxy_pass -> the origin         (kept-alive connections)
#   h. usher over TLS, admitted visitor -> the origin   (kept-alive connections)
#   i. nginx over TLS, a new connection per request     (full handshakes per second)
#   j. usher over TLS, a new connection per request     (full handshakes per second)
#   Both TLS servers use the same certificate (ECDSA P-256, made with openssl), TLS 1.2 and 1.3.
#
# Every request carries one usher cookie (about 300 bytes), so every server reads the same request
# size. For each case: req/s, p50/p99 latency, errors, and the CPU time per request of the server
# under test (and of the origin), read from /proc: on a noisy box that moves less than req/s.
#
# Prints a table and two ratios (targets: d/c >= 0.95, e/a >= 1.5; each the median of per-round
# ratios, the two sides of a ratio run back to back) and writes them as markdown to
# benches/load/results/latest.md. Needs: cargo, nginx, wrk, curl, python3 (installed with apt-get
# when run as root). Every process it starts is stopped by PID on exit, on errors and on Ctrl-C.
#
# Environment: DURATION (s, default 10), CONNECTIONS (default 64), RUNS (rounds, default 1; with
# more, each number is the median over rounds), WARMUP (s, default 2),
# KEEP_TMP=1 keeps the temporary directory (configs, logs), SKIP_BUILD=1 skips cargo build,
# EVENTS_LOG=1 runs usher with `[events_log]` on,
# IDLE_WAIT (s, default 300) how long each case waits for the machine to be idle (other processes
# using under IDLE_BUSY_PCT, default 15, of all CPUs) before it starts; on a shared 2-core box a
# concurrent compile halves every number. The busy share seen before each case is reported.

set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
RUNS=${RUNS:-1}
WARMUP=${WARMUP:-2}
IDLE_WAIT=${IDLE_WAIT:-300}
IDLE_BUSY_PCT=${IDLE_BUSY_PCT:-15}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS_DIR="$ROOT/benches/load/results"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '[run.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
missing=()
for tool in nginx wrk curl python3 openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt_pkgs=("${missing[@]}") # the Debian packages are named like the commands
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${apt_pkgs[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
    else
        die "missing ${missing[*]}; install with: sudo apt-get install -y ${apt_pkgs[*]}"
    fi
fi
NGINX=$(command -v nginx)

# --- build -------------------------------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building usher and bare_proxy (release)"
    (cd "$ROOT" && cargo build --release -j2 --bin usher --example bare_proxy)
fi
USHER="$TARGET_DIR/release/usher"
BARE="$TARGET_DIR/release/examples/bare_proxy"
[[ -x $USHER ]] || die "$USHER not built"
[[ -x $BARE ]] || die "$BARE not built"

# --- process bookkeeping -----------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/usher-load.XXXXXX")
# nginx workers drop to `nobody` when the master runs as root: let them read the document root.
chmod 755 "$TMP"
declare -A PID_SIGNAL=() # pid -> signal that stops it quickly
declare -A PID_OF=()     # name -> pid
PIDS=()

stop_pid() {
    local pid=$1 sig=${PID_SIGNAL[$1]:-TERM} children
    kill -0 "$pid" 2>/dev/null || return 0
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop on SIG$sig; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # nginx workers: gone with their master normally; make sure.
    for child in $children; do
        if kill -0 "$child" 2>/dev/null; then kill -KILL "$child" 2>/dev/null || true; fi
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    if [[ ${KEEP_TMP:-0} == 1 || $status -ne 0 ]]; then
        log "logs and configs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME SIGNAL CMD...: runs CMD in the background, logging to $TMP/NAME.log.
start() {
    local name=$1 sig=$2
    shift 2
    "$@" >"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID_SIGNAL[$pid]=$sig
    PID_OF[$name]=$pid
}

# wait_http NAME URL: until URL answers (any HTTP status), or fail after 15 s.
wait_http() {
    local name=$1 url=$2
    for _ in $(seq 150); do
        if curl -sk -o /dev/null --max-time 1 "$url"; then return 0; fi
        kill -0 "${PID_OF[$name]}" 2>/dev/null || {
            cat "$TMP/$name.log" >&2
            die "$name exited"
        }
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    die "$name did not answer at $url"
}

# --- ports -------------------------------------------------------------------------------------
read -r P_ORIGIN P_NGINX_PROXY P_BARE P_USHER P_BARE_PAGE P_NGINX_TLS P_USHER_TLS < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(7):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)

# --- origin content: one small static file, the same path everywhere ---------------------------
mkdir -p "$TMP/www/fast"
python3 - "$TMP/www/fast/index.html" <<'EOF'
import sys
# About 1 KiB of HTML: the size class of usher's waiting page.
body = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title></head><body><main>"
body += "<h1>The Big Show: checkout</h1>"
while len(body) < 1000:
    body += "<p>Seat map and cart would render here. Thank you for your patience.</p>"
body += "</main></body></html>\n"
open(sys.argv[1], "w").write(body)
EOF
chmod -R a+rX "$TMP/www"
STATIC_PATH=/fast/index.html

# --- nginx -------------------------------------------------------------------------------------
nginx_conf() { # nginx_conf NAME SERVER_BLOCK_BODY [HTTP_EXTRA]
    local name=$1 body=$2 extra=${3:-}
    local dir="$TMP/nginx-$name"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/html;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $extra
    server {
        $body
    }
}
EOF
    echo "$dir"
}

ORIGIN_DIR=$(nginx_conf origin "listen 127.0.0.1:$P_ORIGIN; root $TMP/www; location / { }")
PROXY_DIR=$(nginx_conf proxy "listen 127.0.0.1:$P_NGINX_PROXY;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" "upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }")

# One certificate for both TLS servers (g-j): ECDSA P-256, the common choice for a shop.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test >/dev/null 2>&1 || die "openssl could not make a certificate"
chmod -R a+rX "$TMP/tls"
TLS_PROXY_DIR=$(nginx_conf tls-proxy "listen 127.0.0.1:$P_NGINX_TLS ssl;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }" "upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }")

# --- usher config ------------------------------------------------------------------------------
mkdir -p "$TMP/usher"
"$USHER" keygen --out "$TMP/usher/keys/bench.pem" >/dev/null
cat >"$TMP/usher/usher.toml" <<EOF
# Generated by benches/load/run.sh.
[server]
listen = "127.0.0.1:$P_USHER"
threads = 1
grace_period = "1s"

[upstreams.origin]
addrs = ["127.0.0.1:$P_ORIGIN"]

# (d) the admitted path: room enough that the one benchmark visitor is let straight in, and a
# session long enough that it is never renewed during the run.
[zones.fast]
paths = ["/fast"]
capacity = 1000000
admit_per_minute = 1000000
session_ttl = "1h"

# (e) the waiting page: everybody queues; one admission per minute into one slot that stays
# reserved for an hour, so after the first decoy nobody else gets in.
[zones.wait]
paths = ["/wait"]
mode = "queue_all"
capacity = 1
admit_per_minute = 1
session_ttl = "1h"
claim_window = "1h"
abandon_after = "1h"

[tokens]
signing_key = { kid = "bench", file = "keys/bench.pem" }

[store]
data_dir = "data"
EOF
# EVENTS_LOG=1: with the event log on, as a node that keeps one runs.
if [[ ${EVENTS_LOG:-0} == 1 ]]; then
    printf '\n[events_log]\npath = "events/usher.jsonl"\n' >>"$TMP/usher/usher.toml"
fi
"$USHER" check --config "$TMP/usher/usher.toml" >/dev/null || die "generated usher config is invalid"
# (h, j) the same node over TLS, with a data directory of its own.
sed -e "s|^listen = .*|listen = \"127.0.0.1:$P_USHER_TLS\"\ntls = { cert = \"../tls/cert.pem\", key = \"../tls/key.pem\" }|" \
    -e 's|^data_dir = "data"|data_dir = "data-tls"|' -e 's|events/usher.jsonl|events/usher-tls.jsonl|' "$TMP/usher/usher.toml" >"$TMP/usher/usher-tls.toml"
"$USHER" check --config "$TMP/usher/usher-tls.toml" >/dev/null || die "generated usher TLS config is invalid"

# --- start everything --------------------------------------------------------------------------
log "ports: origin $P_ORIGIN, nginx proxy $P_NGINX_PROXY, bare pingora $P_BARE, usher $P_USHER, bare pingora page $P_BARE_PAGE"
start nginx-origin TERM "$NGINX" -p "$ORIGIN_DIR" -c "$ORIGIN_DIR/nginx.conf" -e "$ORIGIN_DIR/logs/error.log"
start nginx-proxy TERM "$NGINX" -p "$PROXY_DIR" -c "$PROXY_DIR/nginx.conf" -e "$PROXY_DIR/logs/error.log"
start bare-proxy INT "$BARE" --listen "127.0.0.1:$P_BARE" --upstream "127.0.0.1:$P_ORIGIN"
start usher INT env RUST_LOG="${RUST_LOG:-info}" "$USHER" run --config "$TMP/usher/usher.toml"
start nginx-tls-proxy TERM "$NGINX" -p "$TLS_PROXY_DIR" -c "$TLS_PROXY_DIR/nginx.conf" -e "$TLS_PROXY_DIR/logs/error.log"
start usher-tls INT env RUST_LOG="${RUST_LOG:-info}" "$USHER" run --config "$TMP/usher/usher-tls.toml"

wait_http nginx-origin "http://127.0.0.1:$P_ORIGIN$STATIC_PATH"
wait_http nginx-proxy "http://127.0.0.1:$P_NGINX_PROXY$STATIC_PATH"
wait_http bare-proxy "http://127.0.0.1:$P_BARE$STATIC_PATH"
wait_http usher "http://127.0.0.1:$P_USHER/"
wait_http nginx-tls-proxy "https://127.0.0.1:$P_NGINX_TLS$STATIC_PATH"
wait_http usher-tls "https://127.0.0.1:$P_USHER_TLS/"

# cookie_value JAR NAME: a cookie's value from a curl cookie jar (HttpOnly lines start with #HttpOnly_).
cookie_value() {
    awk -v name="$2" -F'\t' '(/^#HttpOnly_/ || !/^#/) && NF >= 7 && $6 == name { v = $7 } END { print v }' "$1"
}

# (d) one request through usher to get an access token.
status=$(curl -s -o "$TMP/admit.body" -w '%{http_code}' -c "$TMP/admit.jar" "http://127.0.0.1:$P_USHER$STATIC_PATH")
ACCESS=$(cookie_value "$TMP/admit.jar" usher_fast)
[[ $status == 200 && -n $ACCESS ]] || die "usher did not admit the benchmark visitor (status $status)"
cmp -s "$TMP/admit.body" "$TMP/www/fast/index.html" || die "usher's admitted response is not the origin's file"
status=$(curl -s -o /dev/null -w '%{http_code}' -c "$TMP/admit2.jar" -H "Cookie: usher_fast=$ACCESS" "http://127.0.0.1:$P_USHER$STATIC_PATH")
[[ $status == 200 ]] || die "usher refused its own access token (status $status)"
[[ -z $(cookie_value "$TMP/admit2.jar" usher_fast) ]] || log "warning: usher renews the access token on every request"

# (h, j) the TLS node's own access token.
status=$(curl -sk -o "$TMP/admit-tls.body" -w '%{http_code}' -c "$TMP/admit-tls.jar" "https://127.0.0.1:$P_USHER_TLS$STATIC_PATH")
ACCESS_TLS=$(cookie_value "$TMP/admit-tls.jar" usher_fast)
[[ $status == 200 && -n $ACCESS_TLS ]] || die "usher over TLS did not admit the benchmark visitor (status $status)"
cmp -s "$TMP/admit-tls.body" "$TMP/www/fast/index.html" || die "usher's admitted response over TLS is not the origin's file"

# is_waiting_page FILE: the body is usher's waiting page for a place in line.
is_waiting_page() { grep -qE 'You are in line|id="position"' "$1"; }

# (e) decoys join first (the first of them takes the only slot), then the benchmark visitor.
# Each comes back once with its place, as its page would: usher writes a place to the line only
# when its holder returns.
for i in 1 2 3; do
    curl -s -o /dev/null -c "$TMP/decoy$i.jar" "http://127.0.0.1:$P_USHER/wait/page"
    curl -s -o /dev/null -H "Cookie: usher_wait=$(cookie_value "$TMP/decoy$i.jar" usher_wait)" \
        "http://127.0.0.1:$P_USHER/_usher/status?zone=wait"
    sleep 0.05
done
status=$(curl -s -o "$TMP/wait.body" -w '%{http_code}' -c "$TMP/wait.jar" "http://127.0.0.1:$P_USHER/wait/page")
VISITOR=$(cookie_value "$TMP/wait.jar" usher_wait)
[[ $status == 200 && -n $VISITOR ]] || die "usher did not queue the benchmark visitor (status $status)"
sleep 1.5 # let the exchanger tick once: the first decoy is admitted, the rest wait
status=$(curl -s -o "$TMP/wait.body" -w '%{http_code}' -H "Cookie: usher_wait=$VISITOR" "http://127.0.0.1:$P_USHER/wait/page")
is_waiting_page "$TMP/wait.body" || die "the queued visitor did not get the waiting page (status $status)"
WAIT_BYTES=$(wc -c <"$TMP/wait.body")
start bare-page INT "$BARE" --listen "127.0.0.1:$P_BARE_PAGE" --respond "$WAIT_BYTES"
wait_http bare-page "http://127.0.0.1:$P_BARE_PAGE/wait/page"
STATIC_BYTES=$(wc -c <"$TMP/www/fast/index.html")

# --- measure -----------------------------------------------------------------------------------
CASES=(a b c d e f g h i j)
# Run order inside a round: the pairs behind the ratios run back to back (a, e; c, d; g, h; i, j),
# so that a slow spell on a shared machine hits both sides of a ratio alike.
RUN_ORDER=(a e f b c d g h i j)
declare -A NAME=(
    [a]="nginx static file"
    [b]="nginx proxy_pass -> nginx static"
    [c]="bare Pingora proxy -> nginx static"
    [d]="usher admitted (access cookie) -> nginx static"
    [e]="usher waiting page (queued visitor)"
    [f]="bare Pingora answering a same-size page itself"
    [g]="nginx TLS proxy_pass -> nginx static (kept alive)"
    [h]="usher TLS admitted -> nginx static (kept alive)"
    [i]="nginx TLS, new connection per request (handshakes)"
    [j]="usher TLS, new connection per request (handshakes)"
)
declare -A URL=(
    [a]="http://127.0.0.1:$P_ORIGIN$STATIC_PATH"
    [b]="http://127.0.0.1:$P_NGINX_PROXY$STATIC_PATH"
    [c]="http://127.0.0.1:$P_BARE$STATIC_PATH"
    [d]="http://127.0.0.1:$P_USHER$STATIC_PATH"
    [e]="http://127.0.0.1:$P_USHER/wait/page"
    [f]="http://127.0.0.1:$P_BARE_PAGE/wait/page"
    [g]="https://127.0.0.1:$P_NGINX_TLS$STATIC_PATH"
    [h]="https://127.0.0.1:$P_USHER_TLS$STATIC_PATH"
    [i]="https://127.0.0.1:$P_NGINX_TLS$STATIC_PATH"
    [j]="https://127.0.0.1:$P_USHER_TLS$STATIC_PATH"
)
# The process under test in each case (its CPU time per request is reported), and the origin's.
declare -A SUT=([a]=nginx-origin [b]=nginx-proxy [c]=bare-proxy [d]=usher [e]=usher [f]=bare-page
    [g]=nginx-tls-proxy [h]=usher-tls [i]=nginx-tls-proxy [j]=usher-tls)
# Every request carries the same kind of usher cookie (about 300 bytes), so that every server
# reads requests of the same size: the access token on the proxied path (b, c, d; nginx and the
# bare proxy pass it on, usher strips it), the visitor token on the answered path (a, e, f).
declare -A HDR=(
    [a]="Cookie: usher_wait=$VISITOR"
    [b]="Cookie: usher_fast=$ACCESS"
    [c]="Cookie: usher_fast=$ACCESS"
    [d]="Cookie: usher_fast=$ACCESS"
    [e]="Cookie: usher_wait=$VISITOR"
    [f]="Cookie: usher_wait=$VISITOR"
    [g]="Cookie: usher_fast=$ACCESS_TLS"
    [h]="Cookie: usher_fast=$ACCESS_TLS"
    [i]="Cookie: usher_fast=$ACCESS_TLS"
    [j]="Cookie: usher_fast=$ACCESS_TLS"
)
# The handshake cases close every connection after its request (wrk opens the next one).
declare -A CLOSE=([i]=1 [j]=1)
declare -A RPS=() P50=() P99=() ERRS=() BUSY=() CPU=() OCPU=() STEAL=()

# cpu_ticks PID: user+system clock ticks of PID and its child processes (nginx workers).
cpu_ticks() {
    local total=0 p f
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$f")))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

wrk_run() { # wrk_run CASE SECONDS OUTFILE
    local c=$1 secs=$2 out=$3
    local args=(-t1 "-c$CONNECTIONS" "-d${secs}s" --latency)
    args+=(-H "${HDR[$c]}")
    [[ -n ${CLOSE[$c]:-} ]] && args+=(-H "Connection: close")
    wrk "${args[@]}" "${URL[$c]}" >"$out" 2>&1
}

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.20s" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print "nan" }'
}

# cpu_busy: percent of all CPUs busy over the next second (our servers idle between cases).
cpu_busy() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ");
        for (i = 2; i <= n; i++) { t += y[i] - x[i]; if (i == 5 || i == 6) idle += y[i] - x[i] }
        printf "%d", (t > 0 ? 100 * (t - idle) / t : 0) }'
}

# wait_idle: until the machine is idle or IDLE_WAIT runs out; prints the last busy percent.
wait_idle() {
    local busy waited=0
    busy=$(cpu_busy)
    while ((busy > IDLE_BUSY_PCT && waited < IDLE_WAIT)); do
        ((waited % 30 == 0)) && log "machine busy (${busy}% CPU used by other processes); waiting for it to settle"
        sleep 4
        waited=$((waited + 5))
        busy=$(cpu_busy)
    done
    ((busy > IDLE_BUSY_PCT)) && log "warning: still ${busy}% busy after ${IDLE_WAIT}s; measuring anyway"
    echo "$busy"
}

# stat_line: the aggregate "cpu" line of /proc/stat.
stat_line() { head -1 /proc/stat; }
# steal_pct BEFORE AFTER: share of CPU time the hypervisor took away between two stat lines.
steal_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ");
        for (i = 2; i <= n; i++) t += y[i] - x[i];
        printf "%.1f", (t > 0 ? 100 * (y[9] - x[9]) / t : 0) }'
}
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
R_ADMIT_ROUNDS="" R_WAIT_ROUNDS="" R_TLS_ROUNDS="" R_HANDSHAKE_ROUNDS=""

for ((round = 1; round <= RUNS; round++)); do
    declare -A THIS=()
    for c in "${RUN_ORDER[@]}"; do
        busy=$(wait_idle)
        BUSY[$c]+="$busy "
        log "round $round/$RUNS: ($c) ${NAME[$c]}: ${WARMUP}s warm-up, ${DURATION}s measured (busy before: ${busy}%)"
        ((WARMUP > 0)) && wrk_run "$c" "$WARMUP" "$TMP/warmup-$c.txt"
        out="$TMP/wrk-$c-$round.txt"
        sut_pid=${PID_OF[${SUT[$c]}]}
        sut0=$(cpu_ticks "$sut_pid")
        origin0=$(cpu_ticks "${PID_OF[nginx-origin]}")
        stat0=$(stat_line)
        wrk_run "$c" "$DURATION" "$out"
        stat1=$(stat_line)
        STEAL[$c]+="$(steal_pct "$stat0" "$stat1") "
        sut1=$(cpu_ticks "$sut_pid")
        origin1=$(cpu_ticks "${PID_OF[nginx-origin]}")
        requests=$(awk '/requests in/ { print $1 }' "$out")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
        sockerr=$(awk -F'[ ,]+' '/Socket errors:/ { print $5 + $7 + $9 + $11 }' "$out")
        [[ -n $rps ]] || { cat "$out" >&2; die "wrk failed for case $c"; }
        RPS[$c]+="$rps "
        THIS[$c]=$rps
        P50[$c]+="$p50 "
        P99[$c]+="$p99 "
        ERRS[$c]=$((${ERRS[$c]:-0} + ${non2xx:-0} + ${sockerr:-0}))
        # CPU microseconds per request of the server under test and of the origin.
        CPU[$c]+="$(awk -v t=$((sut1 - sut0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }') "
        if [[ $c == [bcdghij] ]]; then
            OCPU[$c]+="$(awk -v t=$((origin1 - origin0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }') "
        fi
    done
    R_ADMIT_ROUNDS+="$(rate "${THIS[d]}" "${THIS[c]}") "
    R_WAIT_ROUNDS+="$(rate "${THIS[e]}" "${THIS[a]}") "
    R_TLS_ROUNDS+="$(rate "${THIS[h]}" "${THIS[g]}") "
    R_HANDSHAKE_ROUNDS+="$(rate "${THIS[j]}" "${THIS[i]}") "
done

# The benchmark visitor must still be waiting, and the admitted visitor still admitted.
curl -s -o "$TMP/wait.after" -H "Cookie: usher_wait=$VISITOR" "http://127.0.0.1:$P_USHER/wait/page"
is_waiting_page "$TMP/wait.after" ||
    log "warning: the queued visitor is no longer waiting; case (e) may have measured something else"

median() { # median of the whitespace-separated numbers on stdin; empty if none
    tr ' ' '\n' | awk 'NF { print $1 }' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
declare -A M_RPS=() M_P50=() M_P99=() M_CPU=() M_OCPU=() M_STEAL=()
for c in "${CASES[@]}"; do
    M_STEAL[$c]=$(median <<<"${STEAL[$c]}")
    M_CPU[$c]=$(median <<<"${CPU[$c]}")
    M_OCPU[$c]=$(median <<<"${OCPU[$c]:-}")
    M_RPS[$c]=$(median <<<"${RPS[$c]}")
    M_P50[$c]=$(median <<<"${P50[$c]}")
    M_P99[$c]=$(median <<<"${P99[$c]}")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print ((r >= t) ? "met" : "MISSED") }'; }
# The target ratios: median over rounds of each round's ratio (both sides measured back to back).
R_ADMIT=$(median <<<"$R_ADMIT_ROUNDS" | xargs printf '%.2f')
R_WAIT=$(median <<<"$R_WAIT_ROUNDS" | xargs printf '%.2f')
spread() { tr ' ' '\n' | awk 'NF' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
R_TLS=$(median <<<"$R_TLS_ROUNDS" | xargs printf '%.2f')
R_HANDSHAKE=$(median <<<"$R_HANDSHAKE_ROUNDS" | xargs printf '%.2f')
R_TLS_CPU=$(ratio "${M_CPU[g]}" "${M_CPU[h]}")
R_HANDSHAKE_CPU=$(ratio "${M_CPU[i]}" "${M_CPU[j]}")
R_ADMIT_NGINX=$(ratio "${M_RPS[d]}" "${M_RPS[b]}")
R_BARE_NGINX=$(ratio "${M_RPS[c]}" "${M_RPS[b]}")
# CPU cost per request, inverted so that higher is better like the throughput ratios.
R_ADMIT_CPU=$(ratio "${M_CPU[c]}" "${M_CPU[d]}")
R_WAIT_CPU=$(ratio "${M_CPU[a]}" "${M_CPU[e]}")
R_WAIT_FLOOR=$(ratio "${M_RPS[e]}" "${M_RPS[f]}")
R_FLOOR_NGINX=$(ratio "${M_RPS[f]}" "${M_RPS[a]}")

# --- report ------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
MD="$RESULTS_DIR/latest.md"
{
    echo "# usher load test: latest results"
    echo
    echo "Generated by \`benches/load/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- Machine: $(nproc) cores, $(lscpu 2>/dev/null | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(uname -sr)"
    echo "- Tools: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')"
    echo "- Load: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` on loopback, ${WARMUP}s warm-up per case, $RUNS round(s)$( ((RUNS > 1)) && echo ' (medians)')"
    echo "- Servers: one worker each (nginx \`worker_processes 1\`, \`access_log off\`; Pingora and usher \`threads = 1\`)"
    echo "- Bodies: static file $STATIC_BYTES bytes; usher waiting page $WAIT_BYTES bytes (and the bare Pingora page of case f)"
    echo "- Requests: every case sends one usher cookie (access token for b, c, d, g-j; visitor token for a, e, f)"
    echo "- TLS (g-j): one ECDSA P-256 certificate for both servers, TLS 1.2 and 1.3 offered, HTTP/1.1 (wrk); i and j send \`Connection: close\`, so each request is a new connection and a full handshake (req/s = handshakes/s)"
    echo "- server CPU µs/req: user+system CPU time of the server under test (nginx: master and worker) during the measured run, divided by the requests served; origin likewise"
    echo
    echo "| case | req/s | p50 ms | p99 ms | errors | server CPU µs/req | origin CPU µs/req | busy before (%) | steal during (%) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${CASES[@]}"; do
        ocpu=-
        [[ -n ${M_OCPU[$c]} ]] && ocpu=$(printf '%.1f' "${M_OCPU[$c]}")
        printf '| (%s) %s | %.0f | %.2f | %.2f | %s | %.1f | %s | %s | %.1f |\n' "$c" "${NAME[$c]}" "${M_RPS[$c]}" \
            "${M_P50[$c]}" "${M_P99[$c]}" "${ERRS[$c]}" "${M_CPU[$c]}" "$ocpu" "${BUSY[$c]% }" "${M_STEAL[$c]}"
    done
    echo
    echo "| ratio | value | target | |"
    echo "|---|---:|---:|---|"
    echo "| usher admitted / bare Pingora (d/c), req/s | $R_ADMIT | >= 0.95 | $(verdict "$R_ADMIT" 0.95); rounds $(spread <<<"$R_ADMIT_ROUNDS") |"
    echo "| usher waiting page / nginx static (e/a), req/s | $R_WAIT | >= 1.5 | $(verdict "$R_WAIT" 1.5); rounds $(spread <<<"$R_WAIT_ROUNDS") |"
    echo "| CPU per request: bare Pingora / usher admitted (c/d) | $R_ADMIT_CPU | (info) | |"
    echo "| CPU per request: nginx static / usher waiting page (a/e) | $R_WAIT_CPU | (info) | |"
    echo "| usher waiting page / bare Pingora page (e/f) | $R_WAIT_FLOOR | (info) | |"
    echo "| bare Pingora page / nginx static (f/a) | $R_FLOOR_NGINX | (info) | |"
    echo "| usher admitted / nginx proxy_pass (d/b) | $R_ADMIT_NGINX | (info) | |"
    echo "| bare Pingora / nginx proxy_pass (c/b) | $R_BARE_NGINX | (info) | |"
    echo "| usher TLS / nginx TLS, kept alive (h/g), req/s | $R_TLS | (info) | rounds $(spread <<<"$R_TLS_ROUNDS") |"
    echo "| usher TLS / nginx TLS, handshakes/s (j/i) | $R_HANDSHAKE | (info) | rounds $(spread <<<"$R_HANDSHAKE_ROUNDS") |"
    echo "| CPU per request: nginx TLS / usher TLS, kept alive (g/h) | $R_TLS_CPU | (info) | |"
    echo "| CPU per handshake: nginx TLS / usher TLS (i/j) | $R_HANDSHAKE_CPU | (info) | |"
    echo
    echo "The two target ratios are medians of per-round ratios (each pair runs back to back); the"
    echo "other ratios divide the medians in the first table. CPU ratios are inverted so that higher"
    echo "is better for usher, like the throughput ratios."
    if ((RUNS > 1)); then
        echo
        echo "Per-round req/s:"
        echo
        for c in "${CASES[@]}"; do echo "- ($c): ${RPS[$c]}"; done
    fi
} >"$MD"

echo
cat "$MD"
echo
log "written to ${MD#"$ROOT"/}"
