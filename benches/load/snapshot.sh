#!/usr/bin/env bash
# Snapshot stalls at a long queue: join latency with and without snapshots, at about 1 M queued.
#
#   bash benches/load/snapshot.sh            # QUEUED=1000000 DURATION=30
#
# 1. usher (release build) with a queue_all zone and snapshots off (`snapshot_every = "1h"`):
#    cookieless joins from wrk until the line holds QUEUED visitors; SIGTERM (final snapshot).
# 2. Restart on that data with `snapshot_every = "2s"`: DURATION seconds of joins (wrk -t1 -c16),
#    so about DURATION/2 snapshots of 1 M+ entries fall inside the run.
# 3. Restart with `snapshot_every = "1h"`: the same run without snapshots.
# Prints p50/p99/max of both runs and their p99 ratio (the issue's bound: at most 2), and the
# snapshot durations usher logged. Every process it starts is stopped by PID on exit.
QUEUED=${QUEUED:-1000000}
DURATION=${DURATION:-30}
NAME=snapshot.sh
source "$(dirname "${BASH_SOURCE[0]}")/queue_node.sh"

start() {
  write_config "snapshot_every = \"$1\""
  spawn env RUST_LOG=info,usher::service::background=debug "$USHER" run --config "$TMP/usher.toml" 2>>"$TMP/usher.log"
  USHER_PID=$SPAWNED
  wait_ready
}
stop() { kill -TERM "$USHER_PID"; while kill -0 "$USHER_PID" 2>/dev/null; do sleep 0.1; done; }
waiting() { curl -s "http://127.0.0.1:$METRICS/metrics" | awk '/^usher_queue_waiting/ {print $2}'; }

start 1h
log "filling the line to $QUEUED"
while (( $(waiting | cut -d. -f1) < QUEUED )); do
  wrk -t2 -c64 -d10s -s "$ROOT/benches/load/join_and_return.lua" "http://127.0.0.1:$PORT/checkout" >/dev/null
  log "queued: $(waiting)"
done
stop

measure() {
  start "$1"
  wrk -t1 -c16 -d"${DURATION}s" --latency -s "$ROOT/benches/load/join_and_return.lua" "http://127.0.0.1:$PORT/checkout" > "$TMP/wrk-$1.txt"
  stop
  awk '/ 50%/ {p50=$2} / 99%/ {p99=$2} /Latency/ && !max {max=$4} /Requests\/sec/ {rps=$2}
       END {printf "p50 %s  p99 %s  max %s  req/s %s\n", p50, p99, max, rps}' "$TMP/wrk-$1.txt"
}
echo "with snapshots every 2s:  $(measure 2s)"
echo "without snapshots:        $(measure 1h)"
grep -o 'snapshot written.*' "$TMP/usher.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -5 || true
