#!/usr/bin/env bash
# A/B of two percore binaries on HTTP/2: server CPU per request, the binaries alternating in one
# session so that a busy machine slows both alike.
#
#   bench/h2_ab.sh OLD_BINARY NEW_BINARY
#   ROUNDS=5 DUR=6 CASES="h2p h2s h2c" bench/h2_ab.sh old new
#   NEW_ENV="GLIBC_TUNABLES=..." bench/h2_ab.sh bin bin   # one binary, two environments
#
# Cases (h2load on CPU $CLIENT_CPU, each server `--shards 1` on CPU $SERVER_CPU with its default
# middleware, as bench/tls.sh runs them):
#   h2p  /plaintext over TLS, h2load -c16 -m100
#   h2s  a 4 KiB file over TLS, h2load -c16 -m100
#   h2c  /plaintext over cleartext h2 (prior knowledge), h2load -c16 -m100
#   h2m  a 1 MiB file over TLS, h2load -c1 -m1
#   h1s  a 4 KiB file over HTTPS/1.1, wrk -t1 -c64 (the TLS transport without HTTP/2)
#   h1p  /plaintext over cleartext HTTP/1.1 keep-alive, wrk -t1 -c64 (no TLS, no HTTP/2)
# CPU µs/req = the server's utime+stime (from /proc/PID/stat) over the requests h2load completed.
# Loopback only, bounded runs; only the two servers started here are stopped, by PID.
set -euo pipefail
OLD=${1:?old binary}; NEW=${2:?new binary}
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-6}; WARM=${WARM:-1}
SERVER_CPU=${SERVER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
CASES=${CASES:-"h2p h2s"}
W=$(mktemp -d /tmp/percore-h2ab.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/www"
head -c 4096 /dev/urandom >"$W/www/small.bin"
head -c 1048576 /dev/urandom >"$W/www/medium.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null

declare -A ENVS=([old]="${OLD_ENV:-}" [new]="${NEW_ENV:-}")
declare -A BIN=([old]=$OLD [new]=$NEW) PLAIN=([old]=8491 [new]=8493) TLS=([old]=8492 [new]=8494) SPID
for s in old new; do
  # shellcheck disable=SC2086  # PERCORE_ARGS is a list of flags
  # shellcheck disable=SC2086  # OLD_ENV/NEW_ENV are lists of VAR=value
  env ${ENVS[$s]} taskset -c "$SERVER_CPU" "${BIN[$s]}" serve --shards 1 --no-pin --listen 127.0.0.1:${PLAIN[$s]} \
    --tls-listen 127.0.0.1:${TLS[$s]} --cert "$W/cert.pem" --key "$W/key.pem" --root "$W/www" \
    ${PERCORE_ARGS:-} >"$W/$s.log" 2>&1 &
  PIDS+=($!); SPID[$s]=$!
  for _ in $(seq 1 50); do curl -skf -o /dev/null "https://127.0.0.1:${TLS[$s]}/small.bin" && break; sleep 0.2; done
done
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }   # ticks (1/100 s)
url() {
  case $1 in
    h2p) echo "https://127.0.0.1:${TLS[$2]}/plaintext" ;;
    h2s) echo "https://127.0.0.1:${TLS[$2]}/small.bin" ;;
    h2m) echo "https://127.0.0.1:${TLS[$2]}/medium.bin" ;;
    h2c) echo "http://127.0.0.1:${PLAIN[$2]}/plaintext" ;;
    h1s) echo "https://127.0.0.1:${TLS[$2]}/small.bin" ;;
    h1p) echo "http://127.0.0.1:${PLAIN[$2]}/plaintext" ;;
  esac
}
load() {   # CASE URL SECONDS -> "requests failed"
  local conc=(-c16 -m100) out
  if [[ $1 == h1? ]]; then
    out=$(taskset -c "$CLIENT_CPU" timeout $(($3 + 20)) wrk -t1 -c64 -d"$3"s "$2" 2>&1)
    awk '/requests in/ {n=$1} /Non-2xx/ {bad=$NF} END {print n, bad+0}' <<<"$out"
    return
  fi
  [[ $1 == h2m ]] && conc=(-c1 -m1)
  out=$(taskset -c "$CLIENT_CPU" timeout $(($3 + 20)) h2load "${conc[@]}" -D "$3" "$2" 2>&1)
  awk '/succeeded,/ {print $8, $10+$12}' <<<"$out"
}
printf '%-5s %-3s %-5s %12s %8s %10s\n' round srv case requests ticks "µs/req"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    for s in old new; do
      load "$c" "$(url "$c" "$s")" "$WARM" >/dev/null || true
      c0=$(cpu "${SPID[$s]}")
      read -r n bad <<<"$(load "$c" "$(url "$c" "$s")" "$DUR")"
      c1=$(cpu "${SPID[$s]}")
      printf '%-5s %-3s %-5s %12s %8s %10.3f%s\n' "$r" "$s" "$c" "$n" $((c1 - c0)) \
        "$(awk -v t=$((c1 - c0)) -v n="${n:-1}" 'BEGIN {print t * 10000 / n}')" "$( ((bad)) && echo "  ($bad failed)")"
    done
  done
done
