#!/usr/bin/env bash
# percore behind the reverse proxies users put in front of it, from Debian's packages: Caddy
# (HTTP/1.1 to percore, h2c, and HTTPS with h2 by ALPN, Go's TLS verifying percore's development
# certificate) and nginx (HTTP/1.1 with upstream keep-alive, and its default upstream protocol,
# HTTP/1.0 with a connection per request). curl talks to each proxy; every check compares what
# arrives with the file or body that was sent, so a framing slip anywhere (Content-Length,
# chunked, 100-continue, HEAD, 304, ranges, compression, keep-alive) shows up as a mismatch, a
# proxy error (502) or a hung request.
#
#   scripts/proxy-interop.sh                  # uses target/debug/percore (built by cargo test;
#                                             # under $CARGO_TARGET_DIR when that is set)
#   PERCORE_BIN=target/release/percore BASE_PORT=19100 scripts/proxy-interop.sh
#
# Needs: curl, caddy, nginx (apt-get install -y curl caddy nginx-light). Ports BASE_PORT to
# BASE_PORT+6 on 127.0.0.1. Everything it starts is stopped by PID. Exit 0 = all passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PORT=${BASE_PORT:-18190}
UP=$BASE_PORT                  # percore
CADDY=$((BASE_PORT + 1))       # Caddy, HTTP/1.1 to percore
CADDY_H2C=$((BASE_PORT + 2))   # Caddy, h2c (prior knowledge) to percore
NGINX=$((BASE_PORT + 3))       # nginx, HTTP/1.1 with a keep-alive upstream pool
NGINX10=$((BASE_PORT + 4))     # nginx as configured by a bare `proxy_pass`: HTTP/1.0, no keep-alive
UP_TLS=$((BASE_PORT + 5))      # percore's TLS listener
CADDY_TLS=$((BASE_PORT + 6))   # Caddy, HTTPS (h2 by ALPN) to percore
PERCORE_BIN=${PERCORE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/percore}
WORK=$(mktemp -d /tmp/percore-proxy-interop.XXXXXX)
chmod 755 "$WORK"   # nginx's workers may run as another user

fails=0
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; fails=$((fails + 1)); }

for tool in curl caddy nginx; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install -y curl caddy nginx-light)" >&2; exit 1; }
done
[[ -x $PERCORE_BIN ]] || (cd "$ROOT" && cargo build -q --bin percore)

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for PORT LOG: until something answers HTTP on PORT (or give up, showing LOG).
wait_for() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/healthz" && return 0
    sleep 0.1
  done
  cat "$2" >&2
  echo "nothing answers on port $1" >&2
  exit 1
}

WWW=$WORK/www
mkdir -p "$WWW/dir with space"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$WWW/8m.bin"
head -c 1000 /dev/urandom >"$WWW/1k.bin"
for i in $(seq 1 3000); do echo "line $i of a compressible text file"; done >"$WWW/text.txt"
printf 'unicode\n' >"$WWW/dir with space/ünï.txt"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/upload.bin"

"$PERCORE_BIN" serve --listen "127.0.0.1:$UP" --tls-listen "127.0.0.1:$UP_TLS" \
  --dev-cert-out "$WORK/dev-cert.pem" --root "$WWW" --shards 2 --no-pin \
  --max-body 4MiB >"$WORK/percore.log" 2>&1 &
PIDS+=($!)
wait_for "$UP" "$WORK/percore.log"

cat >"$WORK/Caddyfile" <<EOF
{
	admin off
	auto_https off
	storage file_system $WORK/caddy-data
	servers {
		protocols h1 h2
	}
}
:$CADDY {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$UP
}
:$CADDY_H2C {
	bind 127.0.0.1
	reverse_proxy h2c://127.0.0.1:$UP
}
:$CADDY_TLS {
	bind 127.0.0.1
	reverse_proxy https://127.0.0.1:$UP_TLS {
		header_up Host localhost
		transport http {
			tls_trusted_ca_certs $WORK/dev-cert.pem
			tls_server_name localhost
		}
	}
}
EOF
XDG_CONFIG_HOME=$WORK XDG_DATA_HOME=$WORK caddy run --adapter caddyfile \
  --config "$WORK/Caddyfile" >"$WORK/caddy.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    client_max_body_size 8m;
    upstream percore {
        server 127.0.0.1:$UP;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$NGINX;
        location / {
            proxy_pass http://percore;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
    server {
        listen 127.0.0.1:$NGINX10;
        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
    }
}
EOF
nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)

wait_for "$CADDY" "$WORK/caddy.log"
wait_for "$CADDY_H2C" "$WORK/caddy.log"
wait_for "$CADDY_TLS" "$WORK/caddy.log"
wait_for "$NGINX" "$WORK/nginx/error.log"
wait_for "$NGINX10" "$WORK/nginx/error.log"
pass "started percore :$UP and :$UP_TLS (TLS), Caddy :$CADDY (h1), :$CADDY_H2C (h2c) and :$CADDY_TLS (https), nginx :$NGINX (1.1) and :$NGINX10 (1.0)"

sha() { sha256sum | cut -d' ' -f1; }
# check NAME WANT GOT: equal strings.
check() {
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: wanted '$2', got '$(printf '%s' "$3" | head -c 300)'"; fi
}
CURL=(curl -sS -m 20)

for proxy in "caddy:$CADDY" "caddy-h2c:$CADDY_H2C" "caddy-https:$CADDY_TLS" "nginx:$NGINX" "nginx-http1.0:$NGINX10"; do
  name=${proxy%%:*}
  base="http://127.0.0.1:${proxy#*:}"

  check "$name: /plaintext" "Hello, World! 200" \
    "$("${CURL[@]}" -w ' %{http_code}' "$base/plaintext")"
  check "$name: 8 MiB file, byte for byte" "$(sha <"$WWW/8m.bin")" \
    "$("${CURL[@]}" "$base/8m.bin" | sha)"
  check "$name: a file whose name has a space and non-ASCII letters" "unicode" \
    "$("${CURL[@]}" "$base/dir%20with%20space/%C3%BCn%C3%AF.txt")"
  check "$name: HEAD is 200 with the file's length" "200 8388608" \
    "$("${CURL[@]}" -I -o "$WORK/head.txt" -w '%{http_code} ' "$base/8m.bin")$(
      awk 'tolower($1)=="content-length:" {printf "%d", $2}' "$WORK/head.txt")"
  check "$name: a range is 206 with exactly those bytes" "206 $(tail -c +1000001 "$WWW/8m.bin" | head -c 5000 | sha)" \
    "$("${CURL[@]}" -r 1000000-1004999 -o "$WORK/range.bin" -w '%{http_code}' "$base/8m.bin") $(sha <"$WORK/range.bin")"
  etag=$("${CURL[@]}" -I "$base/1k.bin" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
  check "$name: If-None-Match with the ETag is 304 without a body" "304 0" \
    "$("${CURL[@]}" -H "If-None-Match: $etag" -o /dev/null -w '%{http_code} %{size_download}' "$base/1k.bin")"
  check "$name: gzip or br on the fly decodes to the file" "$(sha <"$WWW/text.txt")" \
    "$("${CURL[@]}" --compressed "$base/text.txt" | sha)"
  check "$name: a 3 MiB upload (Content-Length) echoes back" "$(sha <"$WORK/upload.bin")" \
    "$("${CURL[@]}" --data-binary @"$WORK/upload.bin" -H 'Content-Type: application/octet-stream' "$base/echo" | sha)"
  check "$name: a chunked upload echoes back" "$(sha <"$WORK/upload.bin")" \
    "$("${CURL[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/upload.bin" "$base/echo" | sha)"
  check "$name: an upload with Expect: 100-continue echoes back" "$(sha <"$WORK/upload.bin")" \
    "$("${CURL[@]}" -H 'Expect: 100-continue' --data-binary @"$WORK/upload.bin" "$base/echo" | sha)"
  check "$name: a body over --max-body is 413" "413" \
    "$(head -c $((5 * 1024 * 1024)) /dev/zero | "${CURL[@]}" --data-binary @- -o /dev/null -w '%{http_code}' "$base/echo")"
  check "$name: an unknown path is 404" "404" \
    "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$base/no/such/file")"
  # Many requests at once, through the proxy's own connection pool to percore.
  args=()
  for i in $(seq 1 300); do args+=(-o /dev/null "$base/json?n=$i"); done
  check "$name: 300 requests, 30 at a time, all 200" "300" \
    "$("${CURL[@]}" --parallel --parallel-max 30 -w '%{http_code}\n' "${args[@]}" 2>/dev/null | grep -c '^200$')"
done

# The proxies keep their connections to percore open between requests: after all of the
# above (well over 1,000 requests), percore holds a handful of connections, not hundreds.
tls_conns=$(ss -Htn state established "( sport = :$UP_TLS )" | wc -l)
upstream=$(ss -Htn state established "( sport = :$UP )" | wc -l)
if [[ $upstream -ge 1 && $upstream -le 80 ]]; then
  pass "proxies reuse their connections to percore ($upstream open)"
else
  fail "proxies reuse their connections to percore: $upstream open"
fi
# Caddy speaks h2 over the TLS connection (ALPN): its 300 parallel requests share one or two.
if [[ $tls_conns -ge 1 && $tls_conns -le 2 ]]; then
  pass "Caddy multiplexes its HTTPS requests to percore over h2 ($tls_conns connection(s))"
else
  fail "Caddy multiplexes its HTTPS requests to percore over h2: $tls_conns connections"
fi
grep -q 'panicked' "$WORK/percore.log" && fail "percore logged a panic: $(grep -m1 panicked "$WORK/percore.log")"

if [[ $fails -gt 0 ]]; then
  echo "--- percore log (tail)"; tail -n 20 "$WORK/percore.log"
  echo "--- caddy log (tail)"; tail -n 20 "$WORK/caddy.log"
  echo "--- nginx error log (tail)"; tail -n 20 "$WORK/nginx/error.log" 2>/dev/null || true
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "all proxy checks passed"
