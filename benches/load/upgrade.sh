#!/usr/bin/env bash
# A zero-downtime upgrade under load: wrk against usher (release build), `usher upgrade` two
# seconds in, and what wrk saw (any socket error or non-2xx/3xx answer is a failed request).
#
#   bash benches/load/upgrade.sh            # PATHS="/checkout /" CONNECTIONS=64 DURATION=8
#   PREFILL=60 bash benches/load/upgrade.sh # first fill the line for 60 s (the pause grows with
#                                            # the state: the old process saves it, the new loads it)
#
# `/checkout` is a queue_all zone: every request is a newcomer joining the line (a signed place;
# the store is written when a place comes back, which PREFILL does); `/` is forwarded to nginx.
# Prints wrk's summary, the new process's wait for the store (the pause in store work during
# the handover) and how long the upgrade took. Every process it starts is stopped by PID on
# exit.
PATHS=${PATHS:-"/checkout /"}
PREFILL=${PREFILL:-0}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-8}
NAME=upgrade.sh
source "$(dirname "${BASH_SOURCE[0]}")/queue_node.sh"
write_config

if (( PREFILL > 0 )); then
  spawn env RUST_LOG=warn "$USHER" run --config "$TMP/usher.toml" 2>"$TMP/fill.log"
  FILL=$SPAWNED
  wait_ready
  wrk -t2 -c64 -d"${PREFILL}s" -s "$ROOT/benches/load/join_and_return.lua" "http://127.0.0.1:$PORT/checkout" >/dev/null
  kill -TERM "$FILL"; while kill -0 "$FILL" 2>/dev/null; do sleep 0.1; done
fi

for path in $PATHS; do
  spawn env RUST_LOG=info "$USHER" run --config "$TMP/usher.toml" 2>"$TMP/old.log"
  wait_ready
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
