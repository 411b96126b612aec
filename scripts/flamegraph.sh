#!/usr/bin/env bash
# CPU flamegraph of percore (1 shard, pinned to one core) under a wrk workload.
#
#   scripts/flamegraph.sh CASE [SECONDS]
#     CASE     plaintext | pipeline | json | churn | close   (the workloads of bench/run.sh)
#              h2s | h2p   (HTTP/2 over TLS, h2load -c16 -m100: a 4 KiB file / /plaintext,
#                           the workloads of bench/tls.sh; needs h2load from nghttp2-client)
#     SECONDS  how long perf samples (default 10); wrk runs 1 s warm-up + that + 2 s
#
# Writes flamegraphs/CASE.svg and, next to it, flamegraphs/CASE.txt with the
# workload, the exact commands, the machine and wrk's output.
#
# How: percore is started as `taskset -c 1 percore serve --shards 1 --no-pin
# --listen 127.0.0.1:PORT`, wrk runs on CPU 0 (-t1 -c64), and
# `perf record -e cpu-clock -F 999 -g -p PID` samples the server's threads (user
# and kernel stacks). The stacks are folded and drawn with inferno
# (`cargo install inferno`; Debian bookworm packages no flamegraph tool).
#
# -g walks frame pointers, which a normal release build omits, so by default the
# script builds a second copy of percore with `-C force-frame-pointers=yes`
# (same release profile) into $FP_TARGET, leaving target/ alone.
# Knobs: CALLGRAPH=dwarf (perf --call-graph dwarf on the normal release binary
# instead; bigger and slower), PERCORE_BIN=... (use this binary as is),
# PORT (8099), CONNS (64), DEPTH (16), CHURN_EVERY (10), SERVER_CPU (1), CLIENT_CPU (0),
# PERCORE_ARGS (extra `serve` flags) with NAME (the output's name instead of CASE).
# Loopback only; the load is bounded in time; only processes this script
# started are stopped, by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CASE=${1:-}
SECS=${2:-10}
case $CASE in
  plaintext|pipeline|json|churn|close|h2s|h2p) ;;
  *) echo "usage: $0 plaintext|pipeline|json|churn|close|h2s|h2p [SECONDS]" >&2; exit 2 ;;
esac
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || { echo "SECONDS must be a positive integer" >&2; exit 2; }

PORT=${PORT:-8099}
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}
CHURN_EVERY=${CHURN_EVERY:-10}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
CALLGRAPH=${CALLGRAPH:-fp}
FP_TARGET=${FP_TARGET:-/tmp/percore-fp-target}
OUT=$ROOT/flamegraphs
NAME=${NAME:-$CASE}   # output file name (flamegraphs/NAME.svg), e.g. for a run with PERCORE_ARGS
WORK=$(mktemp -d /tmp/percore-flame.XXXXXX)
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- tools
pkgs=()
command -v wrk >/dev/null || pkgs+=(wrk)
command -v curl >/dev/null || pkgs+=(curl)
command -v perf >/dev/null || pkgs+=(linux-perf)
[[ $CASE != h2* ]] || command -v h2load >/dev/null || pkgs+=(nghttp2-client)
if ((${#pkgs[@]})); then
  log "installing ${pkgs[*]} (apt-get)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
  log "cargo install --locked inferno"
  cargo install --locked -q inferno
fi

# ---------------------------------------------------------------- binary
if [[ -n ${PERCORE_BIN:-} ]]; then
  BIN=$PERCORE_BIN
  BUILD_NOTE="given binary $BIN"
elif [[ $CALLGRAPH == dwarf ]]; then
  (cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --release -q)
  BIN=$ROOT/target/release/percore
  BUILD_NOTE="cargo build --release (target/release/percore)"
else
  log "building percore with frame pointers into $FP_TARGET (first time: a few minutes)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$FP_TARGET RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" cargo build --release -q)
  BIN=$FP_TARGET/release/percore
  BUILD_NOTE="RUSTFLAGS='-C force-frame-pointers=yes' CARGO_TARGET_DIR=$FP_TARGET cargo build --release"
fi
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }
if [[ $CALLGRAPH == dwarf ]]; then PERF_CG=(--call-graph "dwarf,16384"); else PERF_CG=(-g); fi

# ---------------------------------------------------------------- server
SPID=""; WPID=""
cleanup() {
  if [[ -n $WPID ]]; then kill -TERM "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; fi
  if [[ -n $SPID ]]; then kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ss -Hltn "sport = :$PORT" | grep -q .; then echo "port $PORT is in use (PORT=...)" >&2; exit 1; fi
# shellcheck disable=SC2206  # PERCORE_ARGS is a list of flags
SERVE=(taskset -c "$SERVER_CPU" "$BIN" serve --shards 1 --no-pin --listen "127.0.0.1:$PORT" ${PERCORE_ARGS:-})
TLS_PORT=$((PORT + 1))
if [[ $CASE == h2* ]]; then
  # A 4 KiB file under its own root, and a TLS listener with the development certificate.
  mkdir -p "$WORK/www" && head -c 4096 /dev/urandom >"$WORK/www/small.bin"
  SERVE+=(--tls-listen "127.0.0.1:$TLS_PORT" --root "$WORK/www")
fi
(cd "$ROOT" && exec "${SERVE[@]}") >"$WORK/percore.log" 2>&1 &
SPID=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$WORK/percore.log" && break
  kill -0 "$SPID" 2>/dev/null || break
  sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$PORT/plaintext" || { cat "$WORK/percore.log" >&2; echo "percore did not come up" >&2; exit 1; }
log "percore pid $SPID on 127.0.0.1:$PORT ($(grep -m1 -o 'driver=[^ ]*.*' "$WORK/percore.log" || echo 'driver: ?'))"

# ---------------------------------------------------------------- load + perf
URL="http://127.0.0.1:$PORT/plaintext"
OPTS=(); POST=()
case $CASE in
  pipeline) OPTS=(-s "$ROOT/bench/pipeline.lua"); POST=(-- "$DEPTH") ;;
  json) URL="http://127.0.0.1:$PORT/json" ;;
  churn) OPTS=(-s "$ROOT/bench/churn.lua"); POST=(-- "$CHURN_EVERY") ;;
  close) OPTS=(-H "Connection: close") ;;
esac
WRK=(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$((SECS + 3))s" "${OPTS[@]}" "$URL" "${POST[@]}")
case $CASE in
  h2s) WRK=(taskset -c "$CLIENT_CPU" h2load -c16 -m100 -D "$((SECS + 3))" "https://127.0.0.1:$TLS_PORT/small.bin") ;;
  h2p) WRK=(taskset -c "$CLIENT_CPU" h2load -c16 -m100 -D "$((SECS + 3))" "https://127.0.0.1:$TLS_PORT/plaintext") ;;
esac
PERF=(perf record -e cpu-clock -F 999 "${PERF_CG[@]}" -p "$SPID" -o "$WORK/perf.data" -- sleep "$SECS")

timeout -k 5 $((SECS + 30)) "${WRK[@]}" >"$WORK/wrk.txt" 2>&1 &
WPID=$!
sleep 1   # warm-up: connections open, caches warm
log "perf record for ${SECS}s under '$CASE'"
"${PERF[@]}" 2>"$WORK/perf-record.log"
wait "$WPID" || true; WPID=""
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""

# ---------------------------------------------------------------- render
# No "period" field: inferno then counts samples rather than cpu-clock nanoseconds.
perf script -i "$WORK/perf.data" -F comm,pid,tid,time,event,ip,sym,dso 2>"$WORK/perf-script.log" >"$WORK/perf.script"
inferno-collapse-perf --all <"$WORK/perf.script" >"$WORK/folded.txt"
SAMPLES=$(awk '{n += $NF} END {print n + 0}' "$WORK/folded.txt")
RPS=$(sed -n -e 's/^Requests\/sec: *//p' -e 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$WORK/wrk.txt")
TITLE="percore, 1 shard on CPU $SERVER_CPU: $CASE ($RPS req/s under perf)"
inferno-flamegraph --title "$TITLE" --subtitle "perf record -e cpu-clock -F 999 ${PERF_CG[*]}, ${SECS}s, $SAMPLES samples" \
  <"$WORK/folded.txt" >"$OUT/$NAME.svg"

q() { local a out=(); for a in "$@"; do a=${a//$ROOT\//}; [[ $a == *" "* ]] && a="'$a'"; out+=("$a"); done; echo "${out[*]}"; }
{
  echo "flamegraphs/$NAME.svg: percore CPU profile under the '$CASE' workload${PERCORE_ARGS:+ (serve flags: $PERCORE_ARGS)}"
  echo
  echo "date (UTC):  $(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "machine:     $(uname -r), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) vCPUs"
  dirty=$(git -C "$ROOT" status --porcelain -- src shards Cargo.toml Cargo.lock 2>/dev/null | wc -l)
  echo "percore:     commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$( ((dirty)) && echo " + $dirty uncommitted paths"); built with: $BUILD_NOTE"
  echo "driver:      $(grep -m1 -o 'driver=.*' "$WORK/percore.log" || echo '?')"
  echo "samples:     $SAMPLES (perf: $(grep -m1 -o 'Captured and wrote[^]]*' "$WORK/perf-record.log" || true))"
  echo
  echo "server:      $(q "${SERVE[@]}")"
  echo "load:        $(q "${WRK[@]}")   # started 1 s before perf"
  echo "profile:     $(q "${PERF[@]}")"
  echo "render:      perf script -F comm,pid,tid,time,event,ip,sym,dso | inferno-collapse-perf --all | inferno-flamegraph > flamegraphs/$NAME.svg"
  echo
  echo "wrk output (the whole run, perf attached for ${SECS}s of it):"
  sed 's/^/    /' "$WORK/wrk.txt"
} >"$OUT/$NAME.txt"
rm -rf "$WORK"
log "wrote $OUT/$NAME.svg and $OUT/$NAME.txt ($SAMPLES samples)"
