#!/usr/bin/env bash
# Instructions per request in percore's connection loop, counted by callgrind: a repeatable
# figure on a shared, noisy machine, for A/B comparisons of code changes (not a speed figure:
# it leaves out the kernel and does not weigh cache misses).
#
#   bench/callgrind.sh [BINARY] [-- extra `serve` flags]
#
# Runs `BINARY serve --shards 1 --no-pin --io-driver epoll` under callgrind (epoll: valgrind
# does not model io_uring), drives it with wrk from CPU 0 for DUR seconds (default 10) on PATH_
# (default /plaintext), pipelined DEPTH deep with bench/pipeline.lua unless DEPTH=1, then prints
# the requests wrk counted and the inclusive instructions of `H1Connection::run` (the whole
# per-connection loop: parse, app, encode, and our side of the I/O calls) divided by them.
# Start-up and the accept loop are outside that function, so the figure does not depend on the
# run's length. On epoll a read skips monoio's `Canceller` (src/serve/registry.rs), which io_uring
# shards pay per read (~800 instructions): this figure is that much below an io_uring shard's.
# Knobs: PORT (9399), CONNS (8), DUR, PATH_, DEPTH (16), HEADER (one more request
# field for wrk, e.g. HEADER='If-None-Match: "..."' for 304s), KEEP=1 keeps the callgrind output
# (its path is printed) for callgrind_annotate.
# Loopback only; the server is stopped by its PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${1:-$ROOT/target/release/percore}
shift || true
[[ ${1:-} == -- ]] && shift
PORT=${PORT:-9399}
CONNS=${CONNS:-8}
DUR=${DUR:-10}
PATH_=${PATH_:-/plaintext}
DEPTH=${DEPTH:-16}
for tool in valgrind callgrind_annotate wrk; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind wrk)" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 2; }

OUT=$(mktemp /tmp/percore-callgrind.XXXXXX)
LOG=$OUT.log
cd "$ROOT"
valgrind --tool=callgrind --callgrind-out-file="$OUT" \
  "$BIN" serve --shards 1 --no-pin --io-driver epoll --grace 1 --listen "127.0.0.1:$PORT" "$@" \
  >"$LOG" 2>&1 &
VPID=$!
trap 'kill "$VPID" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  grep -q "listening" "$LOG" && break
  kill -0 "$VPID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.5
done
grep -q "listening" "$LOG" || { echo "percore did not start under valgrind" >&2; exit 1; }

WRK=(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s")
[[ -n ${HEADER:-} ]] && WRK+=(-H "$HEADER")
if [[ $DEPTH -gt 1 ]]; then
  WRK_OUT=$("${WRK[@]}" -s "$ROOT/bench/pipeline.lua" "http://127.0.0.1:$PORT$PATH_" -- "$DEPTH" 2>&1)
else
  WRK_OUT=$("${WRK[@]}" "http://127.0.0.1:$PORT$PATH_" 2>&1)
fi
REQS=$(awk '/requests in/ {print $1}' <<<"$WRK_OUT")
kill -INT "$VPID"
wait "$VPID" 2>/dev/null || true
trap - EXIT

# awk reads to the end (a `grep -m1` would close the pipe early, and pipefail would end the script).
LOOP=$(callgrind_annotate --inclusive=yes "$OUT" 2>/dev/null |
  awk '!found && /H1Connection<S,T>::run::\{\{closure\}\} \[/ { gsub(",", "", $1); print $1; found = 1 }')
[[ -n $REQS && $REQS -gt 0 && -n $LOOP ]] || { echo "no figure (wrk: $WRK_OUT)" >&2; exit 1; }
echo "binary=$BIN path=$PATH_ depth=$DEPTH requests=$REQS loop_instructions=$LOOP per_request=$((LOOP / REQS))"
if [[ ${KEEP:-0} == 1 ]]; then echo "callgrind output: $OUT"; else rm -f "$OUT" "$LOG"; fi
