#!/usr/bin/env bash
# Soak: percore (1 shard on CPU 1) under wrk keep-alive load (CPU 0) for DUR seconds, sampling the
# server's RSS and CPU time every STEP seconds. Flat RSS and flat CPU per interval = no leak, no
# slowdown. Traffic goes to 127.0.0.1 only; stops only what it started.
#   bench/soak.sh                 # 600 s, /plaintext, 64 connections
#   DUR=120 PATH_Q=/json bench/soak.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DUR=${DUR:-600}; STEP=${STEP:-30}; CONNS=${CONNS:-64}; PORT=${PORT:-8190}; PATH_Q=${PATH_Q:-/plaintext}
BIN=${PERCORE_BIN:-$ROOT/target/release/percore}
CLK_TCK=$(getconf CLK_TCK)
[[ -x "$BIN" ]] || (cd "$ROOT" && cargo build --release -q)
taskset -c 1 "$BIN" serve --shards 1 --no-pin --listen "127.0.0.1:$PORT" 2>/dev/null &
SPID=$!
WPID=
cleanup() { [[ -n "$WPID" ]] && kill "$WPID" 2>/dev/null; kill "$SPID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT$PATH_Q" && break; sleep 0.1; done
taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$PORT$PATH_Q" >/tmp/percore-soak-wrk.txt 2>&1 &
WPID=$!
cpu() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
rss() { awk '/^VmRSS:/{print $2}' "/proc/$SPID/status"; }
echo "| t (s) | VmRSS (KiB) | server CPU in interval (%) |"
echo "|---:|---:|---:|"
prev=$(cpu); t=0
while kill -0 "$WPID" 2>/dev/null && (( t < DUR )); do
  sleep "$STEP"; t=$((t + STEP))
  now=$(cpu)
  echo "| $t | $(rss) | $(( (now - prev) * 100 / CLK_TCK / STEP )) |"
  prev=$now
done
wait "$WPID" || true; WPID=
echo
grep -E "Requests/sec|requests in|Socket errors" /tmp/percore-soak-wrk.txt || true
