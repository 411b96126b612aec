#!/usr/bin/env bash
# Idle keep-alive memory of one percore binary, sampled more often than bench/run.sh's memory case
# and with the mappings that grew: for A/B runs of changes that touch what an idle connection
# holds (bench/RESULTS.md, "Session 7").
#
#   bench/idle_rss.sh BINARY [epoll|io_uring] [OUTDIR]
#
# Starts `BINARY serve --shards 1 --io-driver DRIVER` on 127.0.0.1:$PORT (default 19399), runs
# bench/idle_conns.py (N connections, default 10,000, one GET /plaintext each, held HOLD seconds,
# default 20) and samples the server's VmRSS and /proc/PID/smaps before, 1 s after all are open
# (bench/run.sh's "after"), 4 s after (all parked), HOLD-2 s after (run.sh's "settled") and 2 s
# after the client closed them. Prints one line: the samples in KiB and the first
# two per connection. OUTDIR keeps the smaps files (compare mappings with `diff` or by their Rss
# and AnonHugePages lines). Extra environment for the server: SERVER_ENV="MIMALLOC_SHOW_STATS=1".
# Loopback only; the server and the client are stopped by their PIDs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${1:?usage: bench/idle_rss.sh BINARY [epoll|io_uring] [OUTDIR]}
DRIVER=${2:-io_uring}
OUT=${3:-$(mktemp -d /tmp/percore-idle-rss.XXXXXX)}
PORT=${PORT:-19399}
N=${N:-10000}
HOLD=${HOLD:-20}
mkdir -p "$OUT"
cd "$ROOT"

# shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
env ${SERVER_ENV:-} "$BIN" serve --shards 1 --listen "127.0.0.1:$PORT" --io-driver "$DRIVER" \
  >"$OUT/server.log" 2>&1 &
SPID=$!
CPID=
trap 'kill "$SPID" ${CPID:+"$CPID"} 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "listening" "$OUT/server.log" && break
  kill -0 "$SPID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
sleep 1

rss() { awk '/^VmRSS/ {print $2}' "/proc/$SPID/status"; }
sample() { cp "/proc/$SPID/smaps" "$OUT/smaps.$1"; rss; }

before=$(sample before)
python3 "$ROOT/bench/idle_conns.py" --port "$PORT" -n "$N" --hold "$HOLD" \
  --ready-file "$OUT/ready" 2>"$OUT/client.log" &
CPID=$!
for _ in $(seq 1 900); do [[ -s "$OUT/ready" ]] && break; sleep 0.1; done
sleep 1; after1=$(sample after1s)
sleep 3; after4=$(sample after4s)
sleep "$(awk -v h="$HOLD" 'BEGIN { s = h - 6; print (s > 0 ? s : 0) }')"
settled=$(sample settled)
wait "$CPID"; CPID=
sleep 2; closed=$(sample closed)
kill -INT "$SPID"; wait "$SPID" || true

n=$(cat "$OUT/ready")
per() { echo $(( ($1 - before) * 1024 / n )); }
echo "driver=$DRIVER n=$n rss_kib before=$before after1s=$after1 after4s=$after4" \
  "settled=$settled closed=$closed bytes_per_conn after1s=$(per "$after1")" \
  "after4s=$(per "$after4") settled=$(per "$settled") ($(tr -d '\n' <"$OUT/client.log")) out=$OUT"
