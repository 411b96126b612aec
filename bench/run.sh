#!/usr/bin/env bash
# percore side-by-side benchmark: percore and its peers on ONE server core.
#
#   bench/run.sh                                  # build, run everything, append to bench/RESULTS.md
#   ROUNDS=5 DUR=10 bench/run.sh                  # more/longer interleaved rounds
#   SERVERS="percore nginx" CASES="plaintext churn" bench/run.sh
#   SKIP_BUILD=1 SKIP_MEM=1 bench/run.sh          # no cargo builds / no idle-memory test
#   SERVERS="floor nginx actix hyper" ROUNDS=1 DUR=3 WARM=1 OUT_MD=/tmp/x.md bench/run.sh   # quick check
#
# Every server runs pinned to CPU $SERVER_CPU (default 1) with ONE worker
# thread (percore: --shards 1; nginx: 1 worker process; actix: workers(1);
# hyper: tokio current_thread); wrk runs pinned to CPU $CLIENT_CPU (default 0)
# with one thread. Servers are interleaved round by round. All traffic goes to
# 127.0.0.1; every load run is bounded in time (wrk -d, plus a `timeout` guard).
# Only processes this script started are stopped (by PID) on exit.
# See bench/README.md for what each case measures and how to read the table.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8}              # seconds, measured run
WARM=${WARM:-2}            # seconds, warm-up run before every measured run (output discarded)
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}         # pipelining depth of case (b)
CHURN_EVERY=${CHURN_EVERY:-10}   # case (d): one request in CHURN_EVERY says Connection: close
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-10}
SERVERS=${SERVERS:-"percore floor actix hyper nginx"}
CASES=${CASES:-"plaintext pipeline json churn close"}
MEM_SERVERS=${MEM_SERVERS:-"percore floor nginx"}
NOTE=${NOTE:-}             # free text for the section title of RESULTS.md
PERCORE_ARGS=${PERCORE_ARGS:-}   # extra flags for `percore serve` (e.g. "--io-driver epoll")
# percore is built in its own default target dir; the peers in a separate one so
# they never race a build of percore.
PERCORE_BIN=${PERCORE_BIN:-$ROOT/target/release/percore}
PEER_TARGET=${PEER_TARGET:-/tmp/bench-target}
FLOOR_DIR=${FLOOR_DIR:-/work/shared/anchors/peers/floor}
# io_uring setup flags of the floor server ("none" = monoio's default ring); the
# anchors' default, and what percore's --uring-flags auto picks first.
export FLOOR_URING=${FLOOR_URING:-single,defer}
NGX_PREFIX=/tmp/percore-bench-nginx
RAW=${RAW:-/tmp/percore-bench-raw/$(date -u +%Y%m%dT%H%M%SZ)}
OUT_MD=${OUT_MD:-$HERE/RESULTS.md}
GUARD=$((DUR + WARM + 30))

declare -A PORT=([percore]=8090 [floor]=8091 [actix]=8093 [hyper]=8094 [nginx]=8096
                 [percore-bare]=8097 [percore-stack]=8098)
declare -A BIN=([floor]=$PEER_TARGET/release/anchor-floor
                [actix]=$PEER_TARGET/release/percore-bench-actix
                [hyper]=$PEER_TARGET/release/percore-bench-hyper
                [percore]=$PERCORE_BIN [percore-bare]=$PERCORE_BIN [percore-stack]=$PERCORE_BIN)
# percore variants for the middleware-overhead comparison (SERVERS="percore-bare percore-stack"):
# bare routes, and the production stack: access log to a file, request id, security headers,
# error pages and a rate limit every request passes (so it is consulted, never refuses).
STACK_ARGS=${STACK_ARGS:-"--access-log /tmp/percore-bench-access.log --rate-limit 1000000000 --rate-limit-burst 1000000"}
declare -A VARIANT_ARGS=([percore]="" [percore-bare]="--no-middleware" [percore-stack]="$STACK_ARGS")

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has() { [[ " $SERVERS " == *" $1 "* ]]; }
has_percore() { [[ " $SERVERS " == *" percore"* ]]; }   # percore or one of its variants
has_case() { [[ " $CASES " == *" $1 "* ]]; }
drop_server() { SERVERS=$(echo " $SERVERS " | sed "s/ $1 / /g"); }

for s in $SERVERS; do [[ -n ${PORT[$s]:-} ]] || die "unknown server '$s' (known: ${!PORT[*]})"; done
for c in $CASES; do
  case $c in plaintext|pipeline|json|churn|close) ;; *) die "unknown case '$c'";; esac
done

T_START=$(date +%s.%N)
mkdir -p "$RAW" "$NGX_PREFIX"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v curl >/dev/null || need_pkgs+=(curl)
if has nginx && ! command -v nginx >/dev/null; then need_pkgs+=(nginx-light); fi
command -v taskset >/dev/null || need_pkgs+=(util-linux)
command -v ss >/dev/null || need_pkgs+=(iproute2)
command -v python3 >/dev/null || need_pkgs+=(python3)
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]} (apt-get)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- build
if [[ -z "${SKIP_BUILD:-}" ]]; then
  if has_percore; then
    log "cargo build --release (percore, in $ROOT)"
    (cd "$ROOT" && env -u CARGO_TARGET_DIR cargo build --release -q) || die "percore did not build"
  fi
  for s in floor actix hyper; do
    has "$s" || continue
    if [[ $s == floor ]]; then dir=$FLOOR_DIR; else dir=$HERE/peers/$s; fi
    log "cargo build --release --locked ($s, from $dir, into $PEER_TARGET)"
    if ! CARGO_TARGET_DIR=$PEER_TARGET cargo build --release --locked -q --manifest-path "$dir/Cargo.toml"; then
      log "WARNING: $s failed to build; dropping it"; drop_server "$s"
    fi
  done
fi
for s in $SERVERS; do
  [[ $s == nginx || -x ${BIN[$s]} ]] || die "$s: ${BIN[$s]} is missing (run without SKIP_BUILD=1)"
done
T_BENCH=$(date +%s.%N)

# ---------------------------------------------------------------- servers
# Processes this script started and has not reaped yet: only these are signalled
# at exit (a reaped PID is forgotten, so a recycled PID is never hit).
declare -A ALIVE
declare -A SPID   # pid whose CPU time / RSS is measured (nginx: its worker)
started() { ALIVE[$1]=1; }
reap() { wait "$1" 2>/dev/null || true; unset "ALIVE[$1]"; }
cleanup() {
  local p
  for p in "${!ALIVE[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${!ALIVE[@]}"; do reap "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

: >"$RAW/commands.txt"
# record a command line for the report: repo-relative paths, arguments with spaces quoted
# (one string: as is; several words: those with a space get quoted, except a trailing "  # comment")
cmd() {
  local a out=()
  for a in "$@"; do
    a=${a//$HERE/bench}
    if (($# > 1)) && [[ $a == *" "* && $a != "  #"* ]]; then out+=("'$a'"); else out+=("$a"); fi
  done
  echo "${out[*]}" >>"$RAW/commands.txt"
}
port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
wait_http() { # port path
  local _
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$1$2" && return 0
    sleep 0.1
  done
  return 1
}
nginx_worker() { # master pid -> worker pid (waits for the fork)
  local w
  for _ in $(seq 1 50); do
    w=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null || true)
    [[ -n $w ]] && { echo "$w"; return 0; }
    sleep 0.1
  done
  return 1
}

start_server() {
  local s=$1 pid port=${PORT[$1]}
  port_busy "$port" && die "port $port for $s is already in use (left over from another run?)"
  case $s in
    nginx)
      taskset -c "$SERVER_CPU" nginx -p "$NGX_PREFIX/" -c "$HERE/nginx.conf" >"$RAW/nginx.log" 2>&1 &
      pid=$!
      cmd "taskset -c $SERVER_CPU nginx -p $NGX_PREFIX/ -c bench/nginx.conf   # port $port" ;;
    percore*)
      local extra="${VARIANT_ARGS[$s]} $PERCORE_ARGS"
      # shellcheck disable=SC2086  # the args are lists of flags
      (cd "$ROOT" && exec taskset -c "$SERVER_CPU" "${BIN[$s]}" serve --shards 1 --no-pin \
         --listen "127.0.0.1:$port" $extra) >"$RAW/$s.log" 2>&1 &
      pid=$!
      cmd "taskset -c $SERVER_CPU target/release/percore serve --shards 1 --no-pin --listen 127.0.0.1:$port $extra"
      for _ in $(seq 1 100); do
        grep -q 'listening on' "$RAW/$s.log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done ;;
    *)
      taskset -c "$SERVER_CPU" "${BIN[$s]}" "$port" >"$RAW/$s.log" 2>&1 &
      pid=$!
      if [[ $s == floor ]]; then
        cmd "FLOOR_URING=$FLOOR_URING taskset -c $SERVER_CPU $(basename "${BIN[$s]}") $port   # built from $FLOOR_DIR"
      else
        cmd "taskset -c $SERVER_CPU $(basename "${BIN[$s]}") $port   # built from bench/peers/$s"
      fi ;;
  esac
  started "$pid"
  wait_http "$port" /plaintext || { cat "$RAW/$s.log" >&2; die "$s did not come up on port $port"; }
  if [[ $s == nginx ]]; then SPID[$s]=$(nginx_worker "$pid") || die "no nginx worker"; else SPID[$s]=$pid; fi
  log "started $s pid=$pid (measured pid ${SPID[$s]}, threads=$(find "/proc/${SPID[$s]}/task" -mindepth 1 -maxdepth 1 | wc -l)) on 127.0.0.1:$port"
}

cpu_ut_st() { awk '{print $14, $15}' "/proc/$1/stat"; }          # utime stime (ticks, all threads)
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
tcp_mem() { awk '/^TCP:/{print $NF}' /proc/net/sockstat; }
passive_opens() {
  awk '/^Tcp:/{ if (!h) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; h = 1 } else print $c }' /proc/net/snmp
}
cpu_busy_tot() { # cpuN -> "busy total" jiffies (busy = all but idle+iowait)
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
steal_tot() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }

for s in $SERVERS; do start_server "$s"; done
first_percore=$(for s in $SERVERS; do if [[ $s == percore* ]]; then echo "$s"; fi; done | head -1)
if [[ -n $first_percore ]]; then
  grep -iE 'driver|uring|epoll' "$RAW/$first_percore.log" | head -3 >"$RAW/percore_driver.txt" || true
else
  : >"$RAW/percore_driver.txt"
fi

# response headers + sizes on the wire (sanity check + context)
: >"$RAW/resp_sizes.txt"
for s in $SERVERS; do
  p=$(curl -s -i "http://127.0.0.1:${PORT[$s]}/plaintext" | wc -c)
  if [[ $s == nginx ]]; then j=n/a; else j=$(curl -s -i "http://127.0.0.1:${PORT[$s]}/json" | wc -c); fi
  echo "$s $p $j" >>"$RAW/resp_sizes.txt"
  { curl -s -i "http://127.0.0.1:${PORT[$s]}/plaintext"; echo
    [[ $s == nginx ]] || curl -s -i "http://127.0.0.1:${PORT[$s]}/json"; } >"$RAW/resp_$s.txt"
done

read -r S0_0 T0_0 < <(steal_tot "$CLIENT_CPU"); read -r S1_0 T1_0 < <(steal_tot "$SERVER_CPU")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- (f) idle keep-alive memory
echo "server,n_open,rss_before_kb,rss_after_kb,rss_settled_kb,tcpmem_before,tcpmem_after,client_log" >"$RAW/mem.csv"
mem_test() { # server
  local s=$1 pid=${SPID[$1]} ready="$RAW/idle_$1.ready" before after settled tb ta n cpid
  rm -f "$ready"
  before=$(rss_kb "$pid"); tb=$(tcp_mem)
  taskset -c "$CLIENT_CPU" python3 "$HERE/idle_conns.py" --port "${PORT[$s]}" -n "$IDLE_CONNS" \
    --hold "$IDLE_HOLD" --ready-file "$ready" 2>"$RAW/idle_$s.log" &
  cpid=$!; started "$cpid"
  for _ in $(seq 1 900); do [[ -s "$ready" ]] && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  sleep 1
  after=$(rss_kb "$pid"); ta=$(tcp_mem); n=$(cat "$ready" 2>/dev/null || echo 0)
  # A second sample near the end of the hold: servers that release memory from idle
  # connections (percore parks them after a second or two) show it only then.
  sleep "$(awk -v h="$IDLE_HOLD" 'BEGIN { s = h - 3; print (s > 0 ? s : 0) }')"
  settled=$(rss_kb "$pid")
  reap "$cpid"
  echo "$s,$n,$before,$after,$settled,$tb,$ta,\"$(tr -d '\n",' <"$RAW/idle_$s.log")\"" >>"$RAW/mem.csv"
  log "idle conns $s: $(cat "$RAW/idle_$s.log"); RSS ${before} -> ${after} -> ${settled} KiB"
  sleep 2   # let the server tear the connections down before the next test
}
# nginx touches all of its per-slot connection/event structs at start-up, so its
# "before" RSS already holds worker_connections (20000) slots. A second worker
# with 1024 slots expresses that pre-allocation per slot.
nginx_prealloc() {
  local d=/tmp/percore-bench-nginx-1024 pid w
  mkdir -p "$d"
  sed -e 's/worker_connections 20000/worker_connections 1024/' -e 's/:8096 /:9196 /' \
      -e "s#/tmp/percore-bench-nginx/#$d/#g" "$HERE/nginx.conf" >"$d/nginx.conf"
  port_busy 9196 && { log "WARNING: port 9196 busy, skipping nginx slot measurement"; return 0; }
  taskset -c "$SERVER_CPU" nginx -p "$d/" -c "$d/nginx.conf" >"$RAW/nginx-1024.log" 2>&1 &
  pid=$!; started "$pid"
  wait_http 9196 /plaintext || { log "WARNING: nginx-1024 did not come up"; return 0; }
  w=$(nginx_worker "$pid") || return 0
  echo "1024 $(rss_kb "$w") 20000 $NGX_RSS_FRESH" >"$RAW/nginx_prealloc.txt"
  kill -TERM "$pid"; reap "$pid"
}
if [[ -z "${SKIP_MEM:-}" ]]; then
  cmd "taskset -c $CLIENT_CPU python3 bench/idle_conns.py --port PORT -n $IDLE_CONNS --hold $IDLE_HOLD --ready-file F   # VmRSS of the server from /proc/PID/status before, 1 s after all are open, and HOLD-2 s after"
  if has nginx && [[ " $MEM_SERVERS " == *" nginx "* ]]; then NGX_RSS_FRESH=$(rss_kb "${SPID[nginx]}"); nginx_prealloc; fi
  for s in $MEM_SERVERS; do has "$s" && mem_test "$s"; done
fi

# ---------------------------------------------------------------- load runs (a)-(e)
echo "round,case,server,utime,stime,wall_s,cpu0_busy_pct,cpu1_busy_pct,passive_opens,raw" >"$RAW/runs.csv"
declare -A LOGGED

measure() { # round case server
  local r=$1 c=$2 s=$3 pid=${SPID[$3]} f="r${1}_${2}_${3}.txt"
  local url="http://127.0.0.1:${PORT[$3]}/plaintext" t0 t1 u0 s0 u1 s1 b0 a0 b1 a1 po0 po1 wall busy_c busy_s
  local -a opts=()
  case $c in
    plaintext) ;;
    pipeline) opts=(-s "$HERE/pipeline.lua") ;;
    json) url="http://127.0.0.1:${PORT[$s]}/json" ;;
    churn) opts=(-s "$HERE/churn.lua") ;;
    close) opts=(-H "Connection: close") ;;
  esac
  local -a post=()
  [[ $c == pipeline ]] && post=(-- "$DEPTH")
  [[ $c == churn ]] && post=(-- "$CHURN_EVERY")
  local -a warm=(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARM}s" "${opts[@]}" "$url" "${post[@]}")
  local -a meas=(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "${opts[@]}" "$url" "${post[@]}")
  timeout -k 5 "$GUARD" "${warm[@]}" >/dev/null 2>&1 || true
  read -r u0 s0 < <(cpu_ut_st "$pid"); read -r b0 a0 < <(cpu_busy_tot "$CLIENT_CPU")
  read -r b1 a1 < <(cpu_busy_tot "$SERVER_CPU"); po0=$(passive_opens); t0=$(date +%s.%N)
  timeout -k 5 "$GUARD" "${meas[@]}" >"$RAW/$f" 2>&1 || true
  t1=$(date +%s.%N); po1=$(passive_opens); read -r u1 s1 < <(cpu_ut_st "$pid")
  busy_c=$(cpu_busy_tot "$CLIENT_CPU" | awk -v b="$b0" -v a="$a0" '{printf "%.1f", ($1-b)/($2-a)*100}')
  busy_s=$(cpu_busy_tot "$SERVER_CPU" | awk -v b="$b1" -v a="$a1" '{printf "%.1f", ($1-b)/($2-a)*100}')
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  echo "$r,$c,$s,$((u1 - u0)),$((s1 - s0)),$wall,$busy_c,$busy_s,$((po1 - po0)),$f" >>"$RAW/runs.csv"
  if [[ -z ${LOGGED[$c]:-} ]]; then
    cmd "${meas[@]}" "  # case $c (after a ${WARM}s warm-up run of the same command, output discarded)"
    LOGGED[$c]=1
  fi
  kill -0 "$pid" 2>/dev/null || die "$s (pid $pid) died during case $c round $r; see $RAW/$s.log"
  local rps
  rps=$(sed -n 's/^Requests\/sec: *//p' "$RAW/$f")
  log "round $r  $c  $s: ${rps:-?} req/s, server CPU $(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v w="$wall" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (u+s)/hz/w*100}')%"
}

serves() { # case server -> does this server take part in this case?
  case $1 in
    json) [[ $2 != floor && $2 != nginx ]] ;;     # floor: no parsing (canned reply); nginx: no JSON
    churn|close) [[ $2 != floor ]] ;;             # floor never sends Connection: close nor closes
    *) true ;;
  esac
}

for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    for s in $SERVERS; do serves "$c" "$s" && measure "$r" "$c" "$s"; done
  done
done

# ---------------------------------------------------------------- report
read -r S0_1 T0_1 < <(steal_tot "$CLIENT_CPU"); read -r S1_1 T1_1 < <(steal_tot "$SERVER_CPU")
T_END=$(date +%s.%N)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "none")
dirty=$(git -C "$ROOT" status --porcelain -- src shards Cargo.toml Cargo.lock 2>/dev/null | wc -l)
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "note=$NOTE"
  echo "kernel=$(uname -r)"
  echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  echo "ncpu=$(nproc)"
  echo "virt=$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)"
  echo "rustc=$(rustc --version)"
  echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2, $3}')"
  if [[ $dirty == 0 ]]; then echo "percore_commit=$commit"
  else echo "percore_commit=$commit + $dirty uncommitted paths under src/ shards/ Cargo.*"; fi
  echo "percore_driver=$(tr '\n' ' ' <"$RAW/percore_driver.txt")"
  echo "rounds=$ROUNDS"; echo "dur=${DUR}s"; echo "warm=${WARM}s"; echo "conns=$CONNS"
  echo "depth=$DEPTH"; echo "churn_every=$CHURN_EVERY"; echo "clk_tck=$CLK_TCK"
  echo "server_cpu=$SERVER_CPU"; echo "client_cpu=$CLIENT_CPU"
  echo "steal_client=$(awk -v a="$S0_0" -v b="$S0_1" -v x="$T0_0" -v y="$T0_1" 'BEGIN{printf "%.1f %%", (b-a)/(y-x)*100}')"
  echo "steal_server=$(awk -v a="$S1_0" -v b="$S1_1" -v x="$T1_0" -v y="$T1_1" 'BEGIN{printf "%.1f %%", (b-a)/(y-x)*100}')"
  echo "load_start=$LOAD_START"; echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "elapsed_s=$(awk -v a="$T_BENCH" -v b="$T_END" 'BEGIN{printf "%.0f", b-a}')"
  echo "floor_uring=$FLOOR_URING"
  echo "idle_conns=$IDLE_CONNS"; echo "idle_hold=$IDLE_HOLD"
  echo "tcp_cc=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo '?')"
  echo "locks=percore:$ROOT/Cargo.lock actix:$HERE/peers/actix/Cargo.lock hyper:$HERE/peers/hyper/Cargo.lock floor:$FLOOR_DIR/Cargo.lock"
} >"$RAW/meta.txt"
python3 "$HERE/report.py" "$RAW" "$OUT_MD"
log "appended a section to $OUT_MD (raw outputs in $RAW); wall time $(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s"
