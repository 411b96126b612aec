#!/usr/bin/env bash
# Interop of TLS and HTTP/2 with independent clients from Debian (curl, nghttp, h2load, openssl):
# starts `percore serve` with a plain and a TLS listener (self-signed development certificate,
# written out so the clients can trust it), runs each check, and stops the server by PID.
#
#   scripts/h2-interop.sh                       # uses target/debug/percore (built by cargo test;
#                                               # under $CARGO_TARGET_DIR when that is set)
#   PERCORE_BIN=target/release/percore PORT=18090 TLS_PORT=18453 scripts/h2-interop.sh
#
# Needs: curl, nghttp, h2load (apt-get install -y curl nghttp2-client). Exit 0 = all passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=${PORT:-18090}
TLS_PORT=${TLS_PORT:-18453}
PERCORE_BIN=${PERCORE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/percore}
WORK=$(mktemp -d /tmp/percore-h2-interop.XXXXXX)
LOG=$WORK/server.log
CERT=$WORK/dev-cert.pem
PLAIN="http://127.0.0.1:$PORT"
TLS="https://localhost:$TLS_PORT"

fails=0
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }

for tool in curl nghttp h2load; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install -y curl nghttp2-client)" >&2; exit 1; }
done
[[ -x $PERCORE_BIN ]] || (cd "$ROOT" && cargo build -q --bin percore)

mkdir -p "$WORK/www"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/www/1m.bin"
head -c 4096 /dev/urandom >"$WORK/www/4k.bin"
printf 'interop\n' >"$WORK/www/index.html"

"$PERCORE_BIN" serve --listen "127.0.0.1:$PORT" --tls-listen "127.0.0.1:$TLS_PORT" \
  --dev-cert-out "$CERT" --root "$WORK/www" --shards 2 --no-pin --max-body 2MiB >"$LOG" 2>&1 &
PID=$!
cleanup() {
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q 'listening on https' "$LOG" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
grep -q 'listening on https' "$LOG" || { cat "$LOG"; echo "percore did not start" >&2; exit 1; }
pass "started (pid $PID), plain :$PORT, TLS :$TLS_PORT"

# check NAME EXPECTED-REGEX COMMAND...: the command's stdout+stderr must match.
check() {
  local name=$1 want=$2 out
  shift 2
  if out=$("$@" 2>&1) && [[ $out =~ $want ]]; then
    pass "$name"
  else
    fail "$name: wanted /$want/, got: $(printf '%s' "$out" | tail -n 5)"
  fi
}

CURL=(curl -sS -m 10 --cacert "$CERT")
check "curl --http2 over TLS: ALPN h2, body" $'^Hello, World!\n2 200$' \
  "${CURL[@]}" --http2 -w '\n%{http_version} %{http_code}' "$TLS/plaintext"
check "curl --http1.1 over TLS" '^1.1 200$' "${CURL[@]}" --http1.1 -o /dev/null -w '%{http_version} %{http_code}' "$TLS/json"
check "curl --http2-prior-knowledge (h2c)" '^2 200$' "${CURL[@]}" --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "$PLAIN/plaintext"
# Upgrade: h2c (RFC 7540 §3.2; deprecated by RFC 9113 §3.1, still what curl --http2 does on http://):
# a 101, the request answered on stream 1, then more requests on the same connection.
check "curl --http2 cleartext: Upgrade: h2c, 101, answered over h2" $'^Hello, World!\n2 200$' \
  "${CURL[@]}" --http2 -w '\n%{http_version} %{http_code}' "$PLAIN/plaintext"
check "curl --http2 cleartext: 101 Switching Protocols seen" '< HTTP/1.1 101 Switching Protocols' \
  "${CURL[@]}" --http2 -v -o /dev/null "$PLAIN/plaintext"
check "curl --http2 cleartext: a second request goes on the upgraded connection" $'^2 200 1\n2 200 0$' \
  "${CURL[@]}" --http2 -o /dev/null -o /dev/null -w '%{http_version} %{http_code} %{num_connects}\n' "$PLAIN/plaintext" "$PLAIN/json"
check "curl --http2 cleartext HEAD: 2 200, no body" '^2 200 0$' \
  "${CURL[@]}" --http2 -I -o /dev/null -w '%{http_version} %{http_code} %{size_download}' "$PLAIN/plaintext"
check "curl --http2 cleartext 404 through the upgrade" '^2 404$' \
  "${CURL[@]}" --http2 -o /dev/null -w '%{http_version} %{http_code}' "$PLAIN/no/such/path"
check "curl --http2 cleartext POST with a body: not upgraded, 1.1" $'^hello\n1.1 200$' \
  "${CURL[@]}" --http2 --data-binary hello -w '\n%{http_version} %{http_code}' "$PLAIN/echo"

want=$(sha256sum "$WORK/www/1m.bin" | cut -d' ' -f1)
check "1 MiB download over h2 (TLS), same bytes" "^$want\$" \
  bash -c "curl -sS -m 20 --cacert '$CERT' --http2 '$TLS/1m.bin' | sha256sum | cut -d' ' -f1"
check "1 MiB upload over h2 (TLS) echoed" "^$want\$" \
  bash -c "curl -sS -m 20 --cacert '$CERT' --http2 --data-binary @'$WORK/www/1m.bin' '$TLS/echo' | sha256sum | cut -d' ' -f1"
check "1 MiB download over h2c, same bytes" "^$want\$" \
  bash -c "curl -sS -m 20 --http2-prior-knowledge '$PLAIN/1m.bin' | sha256sum | cut -d' ' -f1"
status=$("${CURL[@]}" --http2-prior-knowledge -X OPTIONS --request-target '*' -D "$WORK/options.txt" \
  -o /dev/null -w '%{http_version} %{http_code}' "$PLAIN" || true)
allow=$(awk -F': ' 'tolower($1)=="allow" {print $2}' "$WORK/options.txt" | tr -d '\r')
check "OPTIONS * over h2c: 204 with the server's methods" '^2 204 GET, HEAD, POST, PUT, OPTIONS$' \
  printf '%s %s' "$status" "$allow"
check "range over h2" '^206 4$' "${CURL[@]}" --http2 -r 0-3 -o /dev/null -w '%{http_code} %{size_download}' "$TLS/4k.bin"

check "nghttp over TLS: SETTINGS and 200" ':status: 200' nghttp -v --cert= "$TLS/plaintext"
check "nghttp h2c prior knowledge: 200" ':status: 200' nghttp -v "$PLAIN/plaintext"
check "nghttp -u (HTTP Upgrade): 101, then 200 on stream 1" 'HTTP Upgrade success.*:status: 200' \
  bash -c "nghttp -uv '$PLAIN/plaintext' | tr '\n' ' '"
printf 'hello\n' >"$WORK/hello.txt"
# With a body nghttp upgrades with `OPTIONS *` (stream 1), then sends the POST on a stream of its own.
check "nghttp -u -d: upgrade by OPTIONS *, then the POST echoed over h2" 'HTTP Upgrade success.*hello' \
  bash -c "nghttp -uv -d '$WORK/hello.txt' '$PLAIN/echo' | tr '\n' ' '"
check "nghttp: 20 requests on one connection, all 200" '^20$' \
  bash -c "nghttp -v '$TLS/4k.bin' $(for i in $(seq 2 20); do printf "'%s/4k.bin?%s' " "$TLS" "$i"; done) 2>/dev/null | grep -c ':status: 200'"
check "h2load: 100 concurrent streams on one TLS connection" '2000 succeeded, 0 failed, 0 errored' \
  h2load -n 2000 -c 1 -m 100 "$TLS/plaintext"
check "h2load: 10 connections x 10 streams, 4 KiB file (h2c)" '5000 succeeded, 0 failed, 0 errored' \
  h2load -n 5000 -c 10 -m 10 "$PLAIN/4k.bin"
check "h2load: 1 MiB x 20 over one connection" '20 succeeded, 0 failed, 0 errored' \
  h2load -n 20 -c 1 -m 20 "$TLS/1m.bin"

# OpenSSL's client, an independent TLS stack: versions, ALPN, and resumption for TLS 1.2 (session
# id or ticket) and TLS 1.3 (tickets, which arrive after the handshake: the first connection reads a
# response to its end, so it has them before it saves the session).
ossl() { timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost -CAfile "$CERT" "$@" 2>&1; }
GET_CLOSE=$'GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
for v in tls1_2 tls1_3; do
  printf '%s' "$GET_CLOSE" | ossl "-$v" -ign_eof -sess_out "$WORK/sess-$v.pem" >/dev/null || true
  out=$(printf '%s' "$GET_CLOSE" | ossl "-$v" -ign_eof -sess_in "$WORK/sess-$v.pem" |
    grep -a -E '^(New|Reused),|Verify return code|Hello' | tr '\n' ' ' || true)
  check "openssl s_client -$v: verified, then resumed with the saved session" \
    '^Reused, TLSv1\.[23].*Verify return code: 0 \(ok\).*Hello, World!' printf '%s' "$out"
done
for alpn in h2 http/1.1; do
  check "openssl s_client -alpn $alpn: ALPN $alpn" "ALPN protocol: $alpn" \
    printf '%s' "$(echo | ossl -alpn "$alpn" | grep -a ALPN || true)"
done
check "openssl s_client -tls1_1: refused" '^refused$' \
  printf '%s' "$(if echo | ossl -tls1_1 >/dev/null; then echo accepted; else echo refused; fi)"

if [[ $fails -gt 0 ]]; then
  echo "--- server log"
  tail -n 30 "$LOG"
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed"
