#!/usr/bin/env bash
# Static files, one core each: percore against nginx, h2o and Caddy (Debian packages).
#
#   bench/static.sh                          # 3 interleaved rounds, prints a markdown table
#   ROUNDS=5 DUR=10 SERVERS="percore nginx" bench/static.sh
#   PERCORE_ARGS="--small-file-max 16KiB" CASES="64k" bench/static.sh   # extra flags for percore
#
# Cases: GET a 4 KiB, a 64 KiB and a 1 MiB file (wrk -t1 -c64, keep-alive), a 304
# revalidation of the 4 KiB file (If-None-Match with its own ETag), and one 64 MiB file
# (wrk -t1 -c4: MB/s). Every server runs pinned to CPU $SERVER_CPU with one worker (percore
# --shards 1 with its default middleware; nginx 1 worker with sendfile and open_file_cache;
# h2o num-threads 1; Caddy GOMAXPROCS=1), wrk pinned to CPU $CLIENT_CPU. CPU µs/req is the
# server's own CPU time (user+sys from /proc) per request: the figure that does not depend
# on the client keeping up. Loopback only; bounded runs; only processes started here are
# stopped, by PID. Needs wrk, nginx-light, h2o, caddy, curl (apt-get installs missing ones).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}
SERVER_CPU=${SERVER_CPU:-1}; CLIENT_CPU=${CLIENT_CPU:-0}
SERVERS=${SERVERS:-"percore nginx h2o caddy"}
CASES=${CASES:-"4k 64k 1m 304 64m"}
PERCORE_BIN=${PERCORE_BIN:-$ROOT/target/release/percore}
W=/tmp/percore-bench-static
declare -A PORT=([percore]=8290 [nginx]=8291 [h2o]=8292 [caddy]=8293)
declare -A FILE=([4k]=small.bin [64k]=64k.bin [1m]=medium.bin [304]=small.bin [64m]=huge.bin)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

need=()
for s in $SERVERS; do case $s in nginx) command -v nginx >/dev/null || need+=(nginx-light);; h2o) command -v h2o >/dev/null || need+=(h2o);; caddy) command -v caddy >/dev/null || need+=(caddy);; esac; done
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; fi
[[ -x $PERCORE_BIN ]] || (cd "$ROOT" && cargo build --release -q)

mkdir -p $W/www $W/nginx $W/caddy
mk() { [[ -f $W/www/$1 && $(stat -c %s "$W/www/$1") -eq $2 ]] || head -c "$2" /dev/urandom >"$W/www/$1"; }
mk small.bin 4096; mk 64k.bin 65536; mk medium.bin 1048576; mk huge.bin 67108864

start() {
  case $1 in
    # shellcheck disable=SC2086  # PERCORE_ARGS is a list of flags
    percore) taskset -c "$SERVER_CPU" "$PERCORE_BIN" serve --shards 1 --no-pin --listen 127.0.0.1:${PORT[percore]} --root $W/www ${PERCORE_ARGS:-} >$W/percore.log 2>&1 & ;;
    nginx) taskset -c "$SERVER_CPU" nginx -p $W/nginx/ -c "$HERE/static/nginx.conf" >$W/nginx.log 2>&1 & ;;
    h2o) taskset -c "$SERVER_CPU" h2o -c "$HERE/static/h2o.conf" >$W/h2o.log 2>&1 & ;;
    caddy) GOMAXPROCS=1 XDG_CONFIG_HOME=$W/caddy XDG_DATA_HOME=$W/caddy taskset -c "$SERVER_CPU" caddy run --adapter caddyfile --config "$HERE/static/Caddyfile" >$W/caddy.log 2>&1 & ;;
  esac
  PIDS+=($!); SPID[$1]=$!
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:${PORT[$1]}/small.bin" && break; sleep 0.2; done
  # nginx: measure its worker, not the master.
  if [[ $1 == nginx ]]; then sleep 0.3; SPID[$1]=$(awk '{print $1}' /proc/${SPID[$1]}/task/${SPID[$1]}/children); fi
}
declare -A SPID
for s in $SERVERS; do start "$s"; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }   # ticks (1/100 s)
tree_cpu() { local t; t=$(cpu "$1"); for c in $(cat /proc/$1/task/*/children 2>/dev/null); do t=$((t + $(cpu "$c"))); done; echo "$t"; }

OUT=$W/results.txt; : >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    for s in $SERVERS; do
      url="http://127.0.0.1:${PORT[$s]}/${FILE[$c]}"; hdr=(); conns=64
      if [[ $c == 304 ]]; then
        etag=$(curl -sI "$url" | awk -F': ' 'tolower($1)=="etag"{print $2}' | tr -d '\r'); hdr=(-H "If-None-Match: $etag")
      fi
      [[ $c == 64m ]] && conns=4
      taskset -c "$CLIENT_CPU" timeout $((WARM + 20)) wrk -t1 -c$conns -d${WARM}s "${hdr[@]}" "$url" >/dev/null 2>&1 || true
      c0=$(tree_cpu "${SPID[$s]}")
      out=$(taskset -c "$CLIENT_CPU" timeout $((DUR + 20)) wrk -t1 -c$conns -d${DUR}s "${hdr[@]}" "$url" 2>&1)
      c1=$(tree_cpu "${SPID[$s]}")
      n=$(awk '/requests in/ {print $1}' <<<"$out"); mbs=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
      non=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); echo "$r $c $s $n $((c1 - c0)) $mbs ${non:-0}" >>"$OUT"
    done
  done
done
python3 - "$OUT" "$DUR" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
dur = float(sys.argv[2])
def mb(x):
    v = float(x[:-2]); u = x[-2:]
    return v * {"KB": 1/1024, "MB": 1, "GB": 1024}.get(u, 1)
cases = list(dict.fromkeys(r[1] for r in rows)); servers = list(dict.fromkeys(r[2] for r in rows))
print("| case | server | req/s (median) | CPU µs/req | MB/s | req/s vs nginx | CPU vs nginx | non-2xx |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for c in cases:
    agg = {}
    for s in servers:
        rs = [r for r in rows if r[1] == c and r[2] == s]
        if not rs: continue
        agg[s] = (st.median(int(r[3]) / dur for r in rs), st.median(int(r[4]) * 10000 / max(int(r[3]), 1) for r in rs),
                  st.median(mb(r[5]) for r in rs), sum(int(r[6]) for r in rs))
    ref = agg.get("nginx")
    for s, (rps, us, mbs, non) in agg.items():
        vs = f"{rps / ref[0]:.2f}" if ref else "—"; cv = f"{ref[1] / us:.2f}" if ref else "—"
        print(f"| {c} | {s} | {rps:,.0f} | {us:.1f} | {mbs:,.0f} | {vs} | {cv} | {non} |")
PY
