#!/usr/bin/env bash
# User-space instructions per HTTP/2 request (callgrind), for changes too small for CPU-time A/Bs
# on a shared machine: each binary serves N1 and then N2 requests under valgrind, and the
# difference of the two totals over N2 - N1 is the per-request figure (start-up cancels out).
#
#   bench/h2_callgrind.sh CASE N1 N2 BINARY...
#   bench/h2_callgrind.sh h2c 10000 40000 old/percore new/percore
#
# CASE: h2c (/plaintext, cleartext h2), h2p (/plaintext over TLS), h2s (a 4 KiB file over TLS);
# h2load -c16 -m100 against `percore serve --shards 1 --io-driver epoll` (valgrind does not run
# io_uring). Loopback only; the server is stopped by its PID after each run.
set -euo pipefail
CASE=${1:?case}; N1=${2:?n1}; N2=${3:?n2}; shift 3
W=$(mktemp -d /tmp/percore-h2cg.XXXXXX)
SP=""
cleanup() { [[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www"
head -c 4096 /dev/urandom >"$W/www/small.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
case $CASE in
  h2c) URL=http://127.0.0.1:8691/plaintext ;;
  h2p) URL=https://127.0.0.1:8692/plaintext ;;
  h2s) URL=https://127.0.0.1:8692/small.bin ;;
  *) echo "CASE: h2c, h2p or h2s" >&2; exit 2 ;;
esac
total() {   # BINARY N -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$1" serve --shards 1 --no-pin \
    --io-driver epoll --listen 127.0.0.1:8691 --tls-listen 127.0.0.1:8692 --cert "$W/cert.pem" \
    --key "$W/key.pem" --root "$W/www" >"$W/log" 2>&1 &
  SP=$!
  for _ in $(seq 1 200); do grep -q "listening on" "$W/log" && break; sleep 0.2; done
  sleep 0.5
  timeout 300 h2load -n "$2" -c16 -m100 "$URL" >"$W/h2load.txt" 2>&1 || true
  kill -TERM "$SP"; wait "$SP" 2>/dev/null || true; SP=""
  grep -q "$2 succeeded" "$W/h2load.txt" || { echo "h2load did not complete $2 requests" >&2; exit 1; }
  awk '/^summary:|^totals:/ {print $2; exit}' "$W/cg.out"
}
for bin in "$@"; do
  a=$(total "$bin" "$N1"); b=$(total "$bin" "$N2")
  echo "$CASE $bin $(((b - a) / (N2 - N1))) instructions/request"
done
