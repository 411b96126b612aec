#!/usr/bin/env bash
# TLS and HTTP/2, one core each: percore against nginx, h2o and Caddy (Debian packages), all on
# one self-signed ECDSA P-256 certificate made here with openssl.
#
#   bench/tls.sh                                   # 3 interleaved rounds, prints a markdown table
#   ROUNDS=5 SERVERS="percore nginx" CASES="h1 h2" bench/tls.sh
#   PERCORE_ARGS="--no-middleware" bench/tls.sh    # extra flags for percore
#
# Cases:
#   hs      full TLS handshakes (no resumption): `openssl s_time -new`, 1 client; CPU µs/handshake
#   h1      HTTPS/1.1 keep-alive GET of a 4 KiB file: wrk -t1 -c64
#   h1p     HTTPS/1.1 keep-alive GET /plaintext: wrk -t1 -c64
#   h2      HTTP/2 over TLS, 4 KiB file: h2load -c64 -m16 (the anchors' case j)
#   h2p     HTTP/2 over TLS, /plaintext, 100 concurrent streams: h2load -c16 -m100
#   h2s     HTTP/2 over TLS, 4 KiB file, 100 concurrent streams: h2load -c16 -m100
#   h2m     one 1 MiB download at a time over h2: h2load -c1 -m1 (MB/s)
# Every server is pinned to CPU $SERVER_CPU with one worker (percore --shards 1 with its
# default middleware), the client to CPU $CLIENT_CPU. CPU µs/req = the server's CPU time
# (user+sys from /proc, children included) per request. Loopback only; bounded runs; only
# processes started here are stopped, by PID. Needs wrk, nghttp2-client (h2load), openssl,
# nginx-light, h2o, caddy, curl (apt-get installs missing ones).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}
SERVER_CPU=${SERVER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
SERVERS=${SERVERS:-"percore nginx h2o caddy"}
CASES=${CASES:-"hs h1 h1p h2 h2p h2s h2m"}
PERCORE_BIN=${PERCORE_BIN:-$ROOT/target/release/percore}
W=/tmp/percore-bench-tls
declare -A PORT=([percore]=8391 [nginx]=8392 [h2o]=8393 [caddy]=8394)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

need=()
for s in $SERVERS; do case $s in nginx) command -v nginx >/dev/null || need+=(nginx-light);; h2o) command -v h2o >/dev/null || need+=(h2o);; caddy) command -v caddy >/dev/null || need+=(caddy);; esac; done
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; fi
[[ -x $PERCORE_BIN ]] || (cd "$ROOT" && cargo build --release -q)

mkdir -p $W/www $W/nginx $W/caddy
mk() { [[ -f $W/www/$1 && $(stat -c %s "$W/www/$1") -eq $2 ]] || head -c "$2" /dev/urandom >"$W/www/$1"; }
mk small.bin 4096; mk medium.bin 1048576
printf 'Hello, World!' >$W/www/plaintext
if [[ ! -f $W/cert.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout $W/key.pem -out $W/cert.pem 2>/dev/null
fi

start() {
  case $1 in
    # shellcheck disable=SC2086  # PERCORE_ARGS is a list of flags
    percore) taskset -c "$SERVER_CPU" "$PERCORE_BIN" serve --shards 1 --no-pin --listen 127.0.0.1:8390 \
               --tls-listen 127.0.0.1:${PORT[percore]} --cert $W/cert.pem --key $W/key.pem \
               --root $W/www ${PERCORE_ARGS:-} >$W/percore.log 2>&1 & ;;
    nginx) taskset -c "$SERVER_CPU" nginx -p $W/nginx/ -c "$HERE/tls/nginx.conf" >$W/nginx.log 2>&1 & ;;
    h2o) taskset -c "$SERVER_CPU" h2o -c "$HERE/tls/h2o.conf" >$W/h2o.log 2>&1 & ;;
    caddy) GOMAXPROCS=1 XDG_CONFIG_HOME=$W/caddy XDG_DATA_HOME=$W/caddy taskset -c "$SERVER_CPU" caddy run --adapter caddyfile --config "$HERE/tls/Caddyfile" >$W/caddy.log 2>&1 & ;;
  esac
  PIDS+=($!); SPID[$1]=$!
  for _ in $(seq 1 50); do curl -skf -o /dev/null "https://127.0.0.1:${PORT[$1]}/small.bin" && break; sleep 0.2; done
  if [[ $1 == nginx ]]; then sleep 0.3; SPID[$1]=$(awk '{print $1}' /proc/${SPID[$1]}/task/${SPID[$1]}/children); fi
}
declare -A SPID
for s in $SERVERS; do start "$s"; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }   # ticks (1/100 s)
tree_cpu() { local t; t=$(cpu "$1"); for c in $(cat /proc/$1/task/*/children 2>/dev/null); do t=$((t + $(cpu "$c"))); done; echo "$t"; }

# load CASE URL SECONDS -> prints "requests bytes"
load() {
  local c=$1 url=$2 d=$3 out
  case $c in
    hs)  out=$(taskset -c "$CLIENT_CPU" timeout $((d + 20)) openssl s_time -connect "${url#https://}" -new -time "$d" 2>&1 || true)
         awk '/connections in .* real seconds/ {print $1, 0; exit}' <<<"$out" ;;
    h1|h1p) out=$(taskset -c "$CLIENT_CPU" timeout $((d + 20)) wrk -t1 -c64 -d${d}s "$url" 2>&1)
         awk '/requests in/ {n=$1} /Non-2xx/ {bad=$NF} END {print n, 0, bad+0}' <<<"$out" ;;
    h2)  out=$(taskset -c "$CLIENT_CPU" timeout $((d + 20)) h2load -c64 -m16 -D "$d" "$url" 2>&1)
         awk '/succeeded,/ {print $8, 0, $10+$12}' <<<"$out" ;;
    h2p|h2s) out=$(taskset -c "$CLIENT_CPU" timeout $((d + 20)) h2load -c16 -m100 -D "$d" "$url" 2>&1)
         awk '/succeeded,/ {print $8, 0, $10+$12}' <<<"$out" ;;
    h2m) out=$(taskset -c "$CLIENT_CPU" timeout $((d + 20)) h2load -c1 -m1 -D "$d" "$url" 2>&1)
         awk '/succeeded,/ {n=$8} /^traffic:/ {b=$2} END {print n, b, 0}' <<<"$out" ;;
  esac
}
path() { case $1 in hs|h1|h2|h2s) echo small.bin;; h1p|h2p) echo plaintext;; h2m) echo medium.bin;; esac; }

OUT=$W/results.txt; : >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    for s in $SERVERS; do
      url="https://127.0.0.1:${PORT[$s]}/$(path "$c")"
      [[ $c == hs ]] && url="https://127.0.0.1:${PORT[$s]}"
      load "$c" "$url" "$WARM" >/dev/null || true
      c0=$(tree_cpu "${SPID[$s]}")
      read -r n bytes bad <<<"$(load "$c" "$url" "$DUR") 0"
      c1=$(tree_cpu "${SPID[$s]}")
      echo "$r $c $s ${n:-0} $((c1 - c0)) ${bytes:-0} ${bad:-0}" >>"$OUT"
    done
  done
done
python3 - "$OUT" "$DUR" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
dur = float(sys.argv[2])
def size(x):
    m = {"KB": 1/1024, "MB": 1, "GB": 1024}
    for u, f in m.items():
        if x.endswith(u): return float(x[:-2]) * f
    return float(x) / 2**20
cases = list(dict.fromkeys(r[1] for r in rows)); servers = list(dict.fromkeys(r[2] for r in rows))
print("| case | server | req/s (median) | CPU µs/req | MB/s | req/s vs nginx | CPU vs nginx | failed/non-2xx |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for c in cases:
    agg = {}
    for s in servers:
        rs = [r for r in rows if r[1] == c and r[2] == s]
        if not rs: continue
        agg[s] = (st.median(int(r[3]) / dur for r in rs),
                  st.median(int(r[4]) * 10000 / max(int(r[3]), 1) for r in rs),
                  st.median(size(r[5]) / dur for r in rs), sum(int(r[6]) for r in rs))
    ref = agg.get("nginx")
    for s, (rps, us, mbs, bad) in agg.items():
        vs = f"{rps / ref[0]:.2f}" if ref and ref[0] else "—"; cv = f"{ref[1] / us:.2f}" if ref and us else "—"
        mb = f"{mbs:,.0f}" if c == "h2m" else "—"
        print(f"| {c} | {s} | {rps:,.0f} | {us:.1f} | {mb} | {vs} | {cv} | {bad} |")
PY
