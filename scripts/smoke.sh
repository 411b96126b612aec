#!/usr/bin/env bash
# Smoke test of the release binary: start `percore serve` on 127.0.0.1:$PORT,
# check /plaintext, /json, /healthz, a 404 and a pipelined pair of requests,
# then stop it (SIGTERM, by PID) and check it exits 0.
#
#   scripts/smoke.sh                  # builds target/release/percore if missing
#   PORT=18080 PERCORE_BIN=/path/to/percore SERVE_ARGS="--shards 1" scripts/smoke.sh
#
# Exit status 0 = every check passed. Needs curl; uses nc for the pipelined
# pair when installed, else bash's /dev/tcp.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=${PORT:-18080}
PERCORE_BIN=${PERCORE_BIN:-$ROOT/target/release/percore}
SERVE_ARGS=${SERVE_ARGS:-}
LOG=$(mktemp /tmp/percore-smoke.XXXXXX.log)
BASE="http://127.0.0.1:$PORT"

fails=0
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }

if [[ ! -x $PERCORE_BIN ]]; then
  echo "building $PERCORE_BIN (cargo build --release)"
  (cd "$ROOT" && cargo build --release -q)
fi
if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
  echo "port $PORT is in use; pick another with PORT=" >&2
  exit 1
fi

# shellcheck disable=SC2086  # SERVE_ARGS is a list of flags
(cd "$ROOT" && exec "$PERCORE_BIN" serve --listen "127.0.0.1:$PORT" $SERVE_ARGS) >"$LOG" 2>&1 &
PID=$!
stopped=0
cleanup() {
  if [[ $stopped == 0 ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q 'listening on' "$LOG" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if grep -q 'listening on' "$LOG"; then
  pass "started (pid $PID): $(grep -m1 'listening on' "$LOG" | sed 's/^.*INFO *//')"
else
  fail "no 'listening on' line within 10 s"; cat "$LOG"; exit 1
fi

# check_get PATH STATUS BODY-REGEX [CONTENT-TYPE-REGEX]
check_get() {
  local path=$1 want=$2 body_re=$3 ct_re=${4:-} out status ct body
  out=$(curl -s -m 5 -o /dev/stdout -w '\n%{http_code} %{content_type}' "$BASE$path") || { fail "GET $path: curl failed"; return; }
  body=$(printf '%s' "$out" | sed '$d')
  read -r status ct <<<"$(printf '%s' "$out" | tail -n1)" || true
  if [[ $status != "$want" ]]; then fail "GET $path: status $status, want $want"; return; fi
  if ! [[ $body =~ $body_re ]]; then fail "GET $path: body '$body' does not match /$body_re/"; return; fi
  if [[ -n $ct_re ]] && ! [[ $ct =~ $ct_re ]]; then fail "GET $path: content-type '$ct' does not match /$ct_re/"; return; fi
  pass "GET $path -> $status ${ct:+($ct) }$body"
}

check_get /plaintext 200 '^Hello, World!$' '^text/plain'
check_get /json 200 '^\{"message":"Hello, World!"\}$' '^application/json'
check_get /healthz 200 '"status":"ok"'
check_get /no-such-path 404 '.*'

# Two requests in one write; the second says Connection: close so the server closes after it.
REQS='GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
if command -v nc >/dev/null; then
  # shellcheck disable=SC2059  # REQS holds the escapes printf should expand
  resp=$(printf "$REQS" | timeout 5 nc 127.0.0.1 "$PORT" || true)
else
  resp=$(exec 3<>"/dev/tcp/127.0.0.1/$PORT"
         # shellcheck disable=SC2059
         printf "$REQS" >&3
         timeout 5 cat <&3 || true)
fi
statuses=$(printf '%s' "$resp" | grep -o 'HTTP/1\.1 200 ' | wc -l)
if [[ $statuses == 2 ]] && [[ $resp == *"Hello, World!"*'{"message":"Hello, World!"}'* ]]; then
  pass "pipelined pair -> 2 x 200, answered in order, connection closed after the second"
else
  fail "pipelined pair: got $statuses x 'HTTP/1.1 200'; response was:"; printf '%s\n' "$resp" | sed 's/^/      /'
fi

kill -0 "$PID" 2>/dev/null || { fail "server died during the checks"; cat "$LOG"; exit 1; }
kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?
stopped=1
if [[ $rc == 0 ]]; then pass "SIGTERM -> exit 0"; else fail "SIGTERM -> exit status $rc"; fi

if ((fails)); then
  echo "smoke: $fails check(s) failed; server log: $LOG"
  exit 1
fi
rm -f "$LOG"
echo "smoke: all checks passed"
