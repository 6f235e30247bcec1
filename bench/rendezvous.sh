#!/usr/bin/env bash
# bench/rendezvous.sh - resource cost of holepunch-rendezvous, printed (no
# pass/fail: a benchmark, not a test). See bench/README.md.
#
#   (a) user-space memory per idle registered WebSocket: server VmRSS after
#       start + idle, vs. after N_IDLE WebSockets each said hello in its own
#       room (so none pair) and got its welcome; (after - before) / N_IDLE.
#   (b) server CPU time per 1,000 complete pairings: utime + stime of the
#       server from /proc/PID/stat around N_PAIRS pairings, scaled to 1,000;
#       RUNS times, each printed, and the median.
#
# The server is pinned to CPU 0, the load generator (bench_loadgen) to CPU 1.
# As root, everything runs in a private network namespace (only "lo"), so that
# the benchmark neither sees nor disturbs other loopback users; without root,
# on 127.0.0.1 of the current namespace.
#
# Usage: bench/rendezvous.sh [BUILD_DIR]       (default: build-bench)
# Environment: N_IDLE (5000), N_PAIRS (5000), RUNS (3), CONC (64),
#   RDV_PORT (18080), RDV_ENV (extra VAR=VALUE words for the server),
#   HP_BENCH_NO_NETNS=1 (stay in the current namespace).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
RDV=$build/holepunch-rendezvous
LG=$build/bench/bench_loadgen
N_IDLE=${N_IDLE:-5000}
N_PAIRS=${N_PAIRS:-5000}
RUNS=${RUNS:-3}
CONC=${CONC:-64}
PORT=${RDV_PORT:-18080}
RDV_ENV=${RDV_ENV:-}
TICK=$(getconf CLK_TCK)
PAGE=$(getconf PAGESIZE)

# Reference: a FastAPI/uvicorn implementation of the same protocol, measured
# the same way (figures given with the task).
REF_KIB_PER_CONN=33
REF_CPU_PER_1000=1.3
TARGET_KIB_PER_CONN=4
TARGET_CPU_PER_1000=0.05

die() { echo "rendezvous.sh: $*" >&2; exit 1; }

[[ -x $RDV ]] || die "$RDV not built (scripts/build.sh $build)"
[[ -x $LG ]] || die "$LG not built (cmake --build $build --target bench_loadgen)"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v curl >/dev/null || die "curl missing"
(($(nproc) >= 2)) || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"

tmp=$(mktemp -d "/tmp/hp-bench-rdv.$$.XXXXXX")
NS=""
SRV_PID=""
LG_PID=""

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [[ -n $LG_PID ]] && kill "$LG_PID" 2>/dev/null
  [[ -n $SRV_PID ]] && kill "$SRV_PID" 2>/dev/null
  for _ in $(seq 30); do
    { [[ -n $LG_PID ]] && kill -0 "$LG_PID" 2>/dev/null; } ||
      { [[ -n $SRV_PID ]] && kill -0 "$SRV_PID" 2>/dev/null; } || break
    sleep 0.1
  done
  [[ -n $LG_PID ]] && kill -9 "$LG_PID" 2>/dev/null
  [[ -n $SRV_PID ]] && kill -9 "$SRV_PID" 2>/dev/null
  wait 2>/dev/null
  if [[ -n $NS ]]; then
    ip netns del "$NS" 2>/dev/null || echo "rendezvous.sh: could not delete netns $NS" >&2
  fi
  if ((rc != 0)); then
    echo "rendezvous.sh: failed; server log tail:" >&2
    tail -n 20 "$tmp/rdv.err" >&2 2>/dev/null
    echo "(logs kept in $tmp)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One fd per connection on each side: raise the limit for both processes.
if ! ulimit -n 65536 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  echo "note: cannot raise the fd limit to 65536 (no CAP_SYS_RESOURCE); using the hard limit $(ulimit -n)" >&2
fi
(($(ulimit -n) > N_IDLE + 100)) || die "fd limit $(ulimit -n) too low for $N_IDLE connections"

# in_ns CMD...: run CMD in the benchmark namespace (or here without one).
in_ns() {
  if [[ -n $NS ]]; then ip netns exec "$NS" "$@"; else "$@"; fi
}

if [[ $(id -u) -eq 0 && ${HP_BENCH_NO_NETNS:-0} != 1 ]]; then
  NS="hpbench$$"
  ip netns add "$NS" || die "ip netns add $NS failed"
  ip -n "$NS" link set lo up
  # Our own namespace: a wide ephemeral range (30k+ short connections per
  # run); the server port stays below it.
  ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="20000 65000" >/dev/null
  ((PORT < 20000)) || die "RDV_PORT must be below 20000 (ephemeral range of the namespace)"
fi

healthz() { in_ns curl -fsS -m 2 "http://127.0.0.1:$PORT/healthz"; }

# rss_kib PID, cpu_ticks PID (utime + stime; fields 14 and 15 of stat, counted
# after the ") " that ends the command name).
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
utime_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 }'; }
# shellcheck disable=SC2016 # awk program
tcp_mem_pages() { in_ns awk '/^TCP:/ { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
slab_kib() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }

echo "holepunch-rendezvous benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
echo "binary: $RDV"
echo "namespace: ${NS:-none (current)}; fd limit $(ulimit -n); server CPU 0, load CPU 1"
echo

# --- start the server -------------------------------------------------------
# shellcheck disable=SC2086 # RDV_ENV is a list of VAR=VALUE words
if [[ -n $NS ]]; then
  # ip netns exec execs the command: $! is the server itself.
  env PORT="$PORT" LOG_LEVEL=warning LOG_FORMAT=json $RDV_ENV \
    taskset -c 0 ip netns exec "$NS" "$RDV" 2>"$tmp/rdv.err" >"$tmp/rdv.out" </dev/null &
else
  env PORT="$PORT" LOG_LEVEL=warning LOG_FORMAT=json $RDV_ENV \
    taskset -c 0 "$RDV" 2>"$tmp/rdv.err" >"$tmp/rdv.out" </dev/null &
fi
SRV_PID=$!
for _ in $(seq 100); do
  healthz >/dev/null 2>&1 && break
  kill -0 "$SRV_PID" 2>/dev/null || die "the server exited at start-up"
  sleep 0.1
done
healthz >/dev/null || die "no /healthz answer within 10 s"
[[ $(readlink "/proc/$SRV_PID/exe") == "$(readlink -f "$RDV")" ]] ||
  die "pid $SRV_PID is not the server ($(readlink "/proc/$SRV_PID/exe"))"
echo "server pid $SRV_PID, fd limit $(awk '/Max open files/ { print $4 }' "/proc/$SRV_PID/limits"), affinity $(taskset -pc "$SRV_PID" | sed 's/.*: //')"

# lg_run ARGS...: the load generator on CPU 1, in the namespace.
lg_run() {
  in_ns taskset -c 1 "$LG" --port "$PORT" "$@"
}

# --- (a) memory per idle registered WebSocket --------------------------------
sleep 2 # let start-up allocations settle
rss0=$(rss_kib "$SRV_PID")
tcp0=$(tcp_mem_pages)
slab0=$(slab_kib)
echo
echo "(a) memory: server VmRSS idle = $rss0 KiB; opening $N_IDLE idle WebSockets..."
# A plain command (not a function) in the background: bash execs it, so $!
# is the load generator itself (ip netns exec and taskset exec too).
if [[ -n $NS ]]; then
  ip netns exec "$NS" taskset -c 1 "$LG" --port "$PORT" --timeout 120 --hold 300 --quiet \
    idle "$N_IDLE" >"$tmp/idle.out" 2>"$tmp/idle.err" </dev/null &
else
  taskset -c 1 "$LG" --port "$PORT" --timeout 120 --hold 300 --quiet \
    idle "$N_IDLE" >"$tmp/idle.out" 2>"$tmp/idle.err" </dev/null &
fi
LG_PID=$!
for _ in $(seq 1200); do
  grep -q '^ready\|^timeout' "$tmp/idle.out" 2>/dev/null && break
  kill -0 "$LG_PID" 2>/dev/null || break
  sleep 0.1
done
ready=$(grep '^ready' "$tmp/idle.out" || true)
[[ -n $ready ]] || { cat "$tmp/idle.out" "$tmp/idle.err" >&2; die "the load generator never became ready"; }
echo "    loadgen: $ready"
[[ $ready == *" errors=0 "* ]] || { head -20 "$tmp/idle.err" >&2; die "idle connections failed (see above)"; }
sleep 2 # let the last welcomes and any lazy per-connection work finish
rss1=$(rss_kib "$SRV_PID")
tcp1=$(tcp_mem_pages)
slab1=$(slab_kib)
hz=$(healthz)
echo "    server VmRSS with $N_IDLE idle = $rss1 KiB; /healthz: $hz"
kill -TERM "$LG_PID"
wait "$LG_PID" || true
LG_PID=""
grep -v '^ready' "$tmp/idle.out" | sed 's/^/    loadgen: /' || true
mem_bytes=$(((rss1 - rss0) * 1024 / N_IDLE))
mem_kib=$(awk -v b="$mem_bytes" 'BEGIN { printf "%.2f", b / 1024 }')
slab_bytes=$(((slab1 - slab0) * 1024 / (2 * N_IDLE)))
echo "    => user-space RSS per idle WebSocket: $mem_kib KiB ($mem_bytes bytes)"
echo "    kernel, not counted above (host-wide counters, other processes add noise):"
echo "       slab (/proc/meminfo Slab) per TCP socket, both ends counted: ~$slab_bytes bytes"
echo "       queued TCP buffers (/proc/net/sockstat mem): $tcp0 -> $tcp1 pages of $PAGE bytes" \
  "(idle sockets queue nothing)"

# --- (b) CPU per 1,000 pairings ----------------------------------------------
sleep 1
echo
echo "(b) CPU: $RUNS runs of $N_PAIRS pairings, $CONC in flight"
cpus=()
for r in $(seq "$RUNS"); do
  t0=$(cpu_ticks "$SRV_PID")
  u0=$(utime_ticks "$SRV_PID")
  out=$(lg_run --timeout 300 --quiet pairs "$N_PAIRS" concurrency "$CONC" </dev/null 2>"$tmp/pairs$r.err") || true
  t1=$(cpu_ticks "$SRV_PID")
  u1=$(utime_ticks "$SRV_PID")
  line=$(grep '^pairs' <<<"$out" || true)
  [[ -n $line ]] || { cat "$tmp/pairs$r.err" >&2; die "run $r: no result from the load generator"; }
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$TICK" -v n="$N_PAIRS" 'BEGIN { printf "%.4f", d / hz * 1000 / n }')
  echo "    run $r: server CPU $(awk -v d=$((t1 - t0)) -v u=$((u1 - u0)) -v hz="$TICK" \
    'BEGIN { printf "%.2f s (user %.2f, system %.2f)", d / hz, u / hz, (d - u) / hz }')" \
    "=> $cpu s per 1,000 pairings"
  echo "           loadgen: $line"
  if [[ $line != *" errors=0 "* || $line != *" done=$N_PAIRS "* ]]; then
    head -20 "$tmp/pairs$r.err" >&2
    die "run $r: not every pairing completed (see above)"
  fi
  cpus+=("$cpu")
  sleep 1
done
median=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "    => median server CPU per 1,000 pairings: $median s (runs: ${cpus[*]})"
kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the benchmark"
echo "    server VmRSS after the pairing runs: $(rss_kib "$SRV_PID") KiB;" \
  "warnings/errors logged: $(wc -l <"$tmp/rdv.err")"

# --- summary -------------------------------------------------------------------
echo
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "meets" : "MISSES" }'; }
ratio() { awk -v r="$1" -v v="$2" 'BEGIN { if (v > 0) printf "%.0fx less", r / v; else print "-" }'; }
printf '%-40s %14s %14s %10s %s\n' "figure" "holepunch (C)" "FastAPI ref" "target" ""
printf '%-40s %14s %14s %10s %s\n' "user RSS per idle WebSocket (KiB)" "$mem_kib" "$REF_KIB_PER_CONN" \
  "<= $TARGET_KIB_PER_CONN" "$(verdict "$mem_kib" $TARGET_KIB_PER_CONN), $(ratio $REF_KIB_PER_CONN "$mem_kib")"
printf '%-40s %14s %14s %10s %s\n' "server CPU s per 1,000 pairings" "$median" "$REF_CPU_PER_1000" \
  "<= $TARGET_CPU_PER_1000" "$(verdict "$median" $TARGET_CPU_PER_1000), $(ratio $REF_CPU_PER_1000 "$median")"
