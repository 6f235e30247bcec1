#!/usr/bin/env bash
# shellcheck disable=SC2034 # the R_* tables are read through the namerefs of row()
# bench/store.sh - the rendezvous with its rooms in memory and in Redis, side
# by side in one run, with the same binary and the same load generator
# (figures only, no pass/fail; see bench/README.md):
#
#   (a) user-space memory per idle registered WebSocket: server VmRSS before
#       and after N_IDLE WebSockets each said hello in its own room (so each
#       waits) and got its welcome; (after - before) / N_IDLE. In Redis mode
#       also Redis's used_memory (INFO memory) per waiting worker.
#   (b) server CPU per 1,000 complete pairings (utime + stime of the server
#       around N_PAIRS pairings, CONC in flight, both workers of a pairing on
#       this one instance); RUNS runs, each printed, and the median. In Redis
#       mode also redis-server's CPU per 1,000 pairings.
#   (c) capacity: N_MAX idle registered (waiting) WebSockets on one
#       instance, the count /healthz reports, the server's VmRSS and, in
#       Redis mode, Redis's used_memory then.
#
# redis-server (Debian's) on a unix socket in a temporary directory, no
# persistence, pinned with the load generator to CPU 1; the server to CPU 0.
# As root everything runs in a private network namespace (only "lo"), as in
# bench/rendezvous.sh. Bounded; the EXIT trap stops every process by PID and
# removes the namespace and the directory.
#
# Usage: nice bench/store.sh [BUILD_DIR]     (default build-bench)
# Environment: N_IDLE (5000), N_PAIRS (5000), RUNS (3), CONC (64),
#   N_MAX (19500), RDV_PORT (18090), MODES ("memory redis"),
#   BENCH_REDIS_TIMEOUT (5: REDIS_TIMEOUT of the service; on a shared
#   machine a nice'd redis-server can be starved for over a second by
#   other users' jobs, and the service would then drop and refuse, which
#   is not what this measures), HP_BENCH_NO_NETNS=1.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
LG=$build/bench/bench_loadgen
RDV=$build/holepunch-rendezvous
N_IDLE=${N_IDLE:-5000}
N_PAIRS=${N_PAIRS:-5000}
RUNS=${RUNS:-3}
CONC=${CONC:-64}
N_MAX=${N_MAX:-19500}
PORT=${RDV_PORT:-18090}
MODES=${MODES:-memory redis}
TICK=$(getconf CLK_TCK)
ENV_COMMON="LOG_LEVEL=warning LOG_FORMAT=json MAX_CONNECTIONS_PER_IP=1000000 MAX_HELLOS_PER_MINUTE=10000000"

die() { echo "store.sh: $*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v curl >/dev/null || die "curl missing"
command -v redis-server >/dev/null || die "redis-server missing (scripts/deps.sh)"
command -v redis-cli >/dev/null || die "redis-cli missing (scripts/deps.sh)"
(($(nproc) >= 2)) || die "needs 2 CPUs (server on CPU 0, load and Redis on CPU 1)"
if [[ ! -x $RDV || ! -x $LG ]]; then
  echo "building this tree into $build ..."
  "$top/scripts/build.sh" "$build" -DHP_BUILD_TESTS=OFF >/dev/null
fi

tmp=$(mktemp -d "/tmp/hp-bench-store.$$.XXXXXX")
SOCK=$tmp/redis.sock
NS="" SRV_PID="" LG_PID="" REDIS_PID=""

stop_pid() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_pid "$LG_PID"
  stop_pid "$SRV_PID"
  stop_pid "$REDIS_PID"
  if [[ -n $NS ]]; then
    ip netns del "$NS" 2>/dev/null || echo "store.sh: could not delete netns $NS" >&2
  fi
  if ((rc != 0)); then
    echo "store.sh: failed; logs:" >&2
    tail -n 10 "$tmp"/rdv-*.err "$tmp/redis.log" >&2 2>/dev/null
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! ulimit -n 65536 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
if (($(ulimit -n) < N_MAX + 100)); then
  N_MAX=$(($(ulimit -n) - 100))
  echo "note: N_MAX lowered to $N_MAX (fd limit $(ulimit -n))" >&2
fi

in_ns() {
  if [[ -n $NS ]]; then ip netns exec "$NS" "$@"; else "$@"; fi
}
if [[ $(id -u) -eq 0 && ${HP_BENCH_NO_NETNS:-0} != 1 ]]; then
  NS="hpbenchst$$"
  ip netns add "$NS" || die "ip netns add $NS failed"
  ip -n "$NS" link set lo up
  ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="20000 65000" >/dev/null
  ((PORT < 20000)) || die "RDV_PORT must be below 20000 (ephemeral range of the namespace)"
fi

healthz() { in_ns curl -fsS -m 3 "http://127.0.0.1:$PORT/healthz"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
rcli() { timeout 10 redis-cli -s "$SOCK" "$@"; }
used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

start_redis() {
  taskset -c 1 redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$tmp" --loglevel warning >>"$tmp/redis.log" 2>&1 </dev/null &
  REDIS_PID=$!
  for _ in $(seq 100); do
    [[ $(rcli ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  die "redis-server did not answer within 5 s"
}

# start_server MODE: SRV_PID, /healthz "ok" (Redis: the store is available).
start_server() {
  local mode=$1 extra=""
  [[ $mode == redis ]] && extra="REDIS_URL=unix:$SOCK REDIS_TIMEOUT=${BENCH_REDIS_TIMEOUT:-5}"
  # shellcheck disable=SC2086 # lists of VAR=VALUE words
  if [[ -n $NS ]]; then
    env PORT="$PORT" $ENV_COMMON $extra taskset -c 0 ip netns exec "$NS" "$RDV" \
      2>>"$tmp/rdv-$mode.err" >/dev/null </dev/null &
  else
    env PORT="$PORT" $ENV_COMMON $extra taskset -c 0 "$RDV" 2>>"$tmp/rdv-$mode.err" >/dev/null </dev/null &
  fi
  SRV_PID=$!
  for _ in $(seq 100); do
    [[ $(healthz 2>/dev/null) == *'"status":"ok"'* ]] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || die "$mode: the server exited at start-up"
    sleep 0.1
  done
  die "$mode: /healthz not ok within 10 s"
}

idle_open() {
  local n=$1 out=$2
  if [[ -n $NS ]]; then
    ip netns exec "$NS" taskset -c 1 "$LG" --port "$PORT" --timeout 600 --hold 900 --quiet \
      idle "$n" >"$out" 2>"$out.err" </dev/null &
  else
    taskset -c 1 "$LG" --port "$PORT" --timeout 600 --hold 900 --quiet idle "$n" >"$out" 2>"$out.err" </dev/null &
  fi
  LG_PID=$!
  for _ in $(seq 6200); do
    grep -q '^ready\|^timeout' "$out" 2>/dev/null && break
    kill -0 "$LG_PID" 2>/dev/null || break
    sleep 0.1
  done
}

idle_close() {
  [[ -n $LG_PID ]] || return 0
  kill -TERM "$LG_PID" 2>/dev/null || true
  wait "$LG_PID" 2>/dev/null || true
  LG_PID=""
}

declare -A R_RSS R_RMEM R_CPU R_RCPU R_MAX R_MAXRSS R_MAXRMEM

measure() {
  local mode=$1 rss0 rss1 m0 m1 ready hz cpus=() rcpus=() t0 t1 r0 r1 out line
  echo
  echo "=== $mode"
  [[ $mode == redis ]] && { start_redis; rcli flushall >/dev/null; }
  start_server "$mode"
  sleep 2
  rss0=$(rss_kib "$SRV_PID")
  m0=0
  [[ $mode == redis ]] && m0=$(used_memory)
  idle_open "$N_IDLE" "$tmp/idle-$mode.out"
  ready=$(grep '^ready' "$tmp/idle-$mode.out" || true)
  [[ $ready == *" errors=0 "* ]] || { head "$tmp/idle-$mode.out.err" >&2; die "$mode: idle connections failed: $ready"; }
  sleep 2
  rss1=$(rss_kib "$SRV_PID")
  hz=$(healthz)
  R_RSS[$mode]=$(awk -v a="$rss0" -v b="$rss1" -v n="$N_IDLE" 'BEGIN { printf "%.2f", (b - a) / n }')
  R_RMEM[$mode]="-"
  if [[ $mode == redis ]]; then
    m1=$(used_memory)
    R_RMEM[$mode]=$(((m1 - m0) / N_IDLE))
    echo "(a) Redis used_memory $m0 -> $m1 bytes: ${R_RMEM[$mode]} bytes per waiting worker"
  fi
  echo "(a) server VmRSS $rss0 -> $rss1 KiB with $N_IDLE waiting: ${R_RSS[$mode]} KiB per idle WebSocket; /healthz $hz"
  idle_close
  sleep 1

  for r in $(seq "$RUNS"); do
    t0=$(cpu_ticks "$SRV_PID")
    r0=0
    [[ $mode == redis ]] && r0=$(cpu_ticks "$REDIS_PID")
    out=$(in_ns taskset -c 1 "$LG" --port "$PORT" --timeout 300 --quiet pairs "$N_PAIRS" concurrency "$CONC" \
      </dev/null 2>"$tmp/pairs-$mode-$r.err") || true
    t1=$(cpu_ticks "$SRV_PID")
    r1=0
    [[ $mode == redis ]] && r1=$(cpu_ticks "$REDIS_PID")
    line=$(grep '^pairs' <<<"$out" || true)
    [[ $line == *" errors=0 "* && $line == *" done=$N_PAIRS "* && $line == *" mismatches=0"* ]] ||
      { head "$tmp/pairs-$mode-$r.err" >&2; die "$mode run $r: not every pairing completed: $line"; }
    cpus+=("$(awk -v d=$((t1 - t0)) -v hz="$TICK" -v n="$N_PAIRS" 'BEGIN { printf "%.4f", d / hz * 1000 / n }')")
    rcpus+=("$(awk -v d=$((r1 - r0)) -v hz="$TICK" -v n="$N_PAIRS" 'BEGIN { printf "%.4f", d / hz * 1000 / n }')")
    echo "(b) run $r: server ${cpus[-1]} s per 1,000 pairings$([[ $mode == redis ]] && echo ", redis-server ${rcpus[-1]} s"); $line"
    sleep 1
  done
  R_CPU[$mode]=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  R_RCPU[$mode]="-"
  [[ $mode == redis ]] && R_RCPU[$mode]=$(printf '%s\n' "${rcpus[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

  idle_open "$N_MAX" "$tmp/max-$mode.out"
  echo "(c) loadgen: $(grep '^ready\|^timeout' "$tmp/max-$mode.out" || echo nothing)"
  R_MAX[$mode]=$(healthz 2>/dev/null | sed -n 's/.*"connections":\([0-9]*\).*/\1/p' || true)
  R_MAX[$mode]=${R_MAX[$mode]:-0}
  R_MAXRSS[$mode]=$(awk -v k="$(rss_kib "$SRV_PID")" 'BEGIN { printf "%.1f", k / 1024 }')
  R_MAXRMEM[$mode]="-"
  [[ $mode == redis ]] && R_MAXRMEM[$mode]=$(awk -v b="$(used_memory)" 'BEGIN { printf "%.1f", b / 1048576 }')
  echo "(c) held ${R_MAX[$mode]} (/healthz), server VmRSS ${R_MAXRSS[$mode]} MiB, Redis used_memory ${R_MAXRMEM[$mode]} MiB"
  idle_close
  stop_pid "$SRV_PID"
  SRV_PID=""
  if [[ $mode == redis ]]; then
    stop_pid "$REDIS_PID"
    REDIS_PID=""
  fi
}

echo "rendezvous rooms: memory vs Redis, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
echo "binary $RDV; namespace ${NS:-none}; fd limit $(ulimit -n); server CPU 0, loadgen + redis CPU 1; $(redis-server --version | cut -d' ' -f1-3)"
for m in $MODES; do measure "$m"; done

echo
printf '%-52s' "figure"
for m in $MODES; do printf ' %10s' "$m"; done
echo
row() {
  local label=$1 arr=$2 m
  local -n a=$arr
  printf '%-52s' "$label"
  for m in $MODES; do printf ' %10s' "${a[$m]}"; done
  echo
}
row "user RSS per idle registered WebSocket (KiB)" R_RSS
row "Redis used_memory per waiting worker (bytes)" R_RMEM
row "server CPU s per 1,000 pairings (median)" R_CPU
row "redis-server CPU s per 1,000 pairings (median)" R_RCPU
row "idle registered WebSockets held (of $N_MAX)" R_MAX
row "server VmRSS holding them (MiB)" R_MAXRSS
row "Redis used_memory then (MiB)" R_MAXRMEM
