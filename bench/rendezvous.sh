#!/usr/bin/env bash
# bench/rendezvous.sh - resource cost of holepunch-rendezvous, printed (no
# pass/fail: a benchmark, not a test), for two builds side by side in one
# run: this tree ("new", HTTP/WebSocket on src/net: libuv + http-parser +
# wslay) and the libwebsockets 4.1.6 version of commit e85adc6 ("lws",
# built from `git archive` into bench/out/, never committed). See
# bench/README.md.
#
#   (a) user-space memory per idle registered WebSocket: server VmRSS after
#       start + idle, vs. after N_IDLE WebSockets each said hello in its own
#       room (so none pair) and got its welcome; (after - before) / N_IDLE.
#   (b) server CPU time per 1,000 complete pairings: utime + stime of the
#       server from /proc/PID/stat around N_PAIRS pairings, scaled to 1,000;
#       RUNS times, each printed, and the median.
#   (c) system calls per connection: strace -c -f on the server during
#       N_STRACE pairings (2 connections each); total calls / connections,
#       and the five most frequent.
#   (d) how many idle registered WebSockets one instance holds: N_MAX
#       connections (19,500 with the 20,000 descriptors of this machine),
#       the count that got their welcome, and the server's VmRSS then.
#
# The server is pinned to CPU 0, the load generator (bench_loadgen) to CPU 1.
# As root, everything runs in a private network namespace (only "lo"), so that
# the benchmark neither sees nor disturbs other loopback users; without root,
# on 127.0.0.1 of the current namespace.
#
# Usage: bench/rendezvous.sh [BUILD_DIR]       (default: build-bench, built
#        from this tree if missing)
# Environment: N_IDLE (5000), N_PAIRS (5000), RUNS (3), CONC (64),
#   N_STRACE (1000), N_MAX (19500), RDV_PORT (18080), RDV_ENV (extra
#   VAR=VALUE words for both servers), OLD_COMMIT (e85adc6), ONLY=new|lws,
#   HP_BENCH_NO_NETNS=1 (stay in the current namespace).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
LG=$build/bench/bench_loadgen
N_IDLE=${N_IDLE:-5000}
N_PAIRS=${N_PAIRS:-5000}
RUNS=${RUNS:-3}
CONC=${CONC:-64}
N_STRACE=${N_STRACE:-1000}
N_MAX=${N_MAX:-19500}
PORT=${RDV_PORT:-18080}
RDV_ENV=${RDV_ENV:-}
OLD_COMMIT=${OLD_COMMIT:-e85adc6}
ONLY=${ONLY:-}
TICK=$(getconf CLK_TCK)
PAGE=$(getconf PAGESIZE)
# The new service limits connections and hellos per client address; the
# load comes from one address, so both are lifted for the benchmark (the
# lws build ignores these variables).
NEW_ENV="MAX_CONNECTIONS_PER_IP=1000000 MAX_HELLOS_PER_MINUTE=10000000"

# Reference: a FastAPI/uvicorn implementation of the same protocol, measured
# the same way (figures given with the task).
REF_KIB_PER_CONN=33
REF_CPU_PER_1000=1.3
TARGET_KIB_PER_CONN=4
TARGET_CPU_PER_1000=0.05

die() { echo "rendezvous.sh: $*" >&2; exit 1; }

command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v curl >/dev/null || die "curl missing"
command -v strace >/dev/null || die "strace missing (scripts/deps.sh)"
(($(nproc) >= 2)) || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"

# --- the two builds -----------------------------------------------------------
if [[ ! -x $build/holepunch-rendezvous || ! -x $LG ]]; then
  echo "building this tree into $build ..."
  "$top/scripts/build.sh" "$build" -DHP_BUILD_TESTS=OFF >/dev/null
fi
NEW_RDV=$build/holepunch-rendezvous
oldsrc=$top/bench/out/lws-$OLD_COMMIT
OLD_RDV=$oldsrc/build/holepunch-rendezvous
if [[ $ONLY != new && ! -x $OLD_RDV ]]; then
  echo "building the libwebsockets version ($OLD_COMMIT) into $oldsrc ..."
  pkg-config --exists libwebsockets ||
    die "the old build needs libwebsockets-dev (apt-get install libwebsockets-dev libwebsockets-evlib-uv; scripts/deps.sh no longer installs it)"
  rm -rf "$oldsrc"
  mkdir -p "$oldsrc"
  git -C "$top" archive "$OLD_COMMIT" | tar -x -C "$oldsrc"
  cmake -S "$oldsrc" -B "$oldsrc/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$oldsrc/build" -j"$(nproc)" --target holepunch-rendezvous >/dev/null
fi

tmp=$(mktemp -d "/tmp/hp-bench-rdv.$$.XXXXXX")
NS=""
SRV_PID=""
LG_PID=""

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
  wait 2>/dev/null
  if [[ -n $NS ]]; then
    ip netns del "$NS" 2>/dev/null || echo "rendezvous.sh: could not delete netns $NS" >&2
  fi
  if ((rc != 0)); then
    echo "rendezvous.sh: failed; server log tail:" >&2
    tail -n 20 "$tmp"/rdv-*.err >&2 2>/dev/null
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
if (($(ulimit -n) < N_MAX + 100)); then
  N_MAX=$(($(ulimit -n) - 100))
  echo "note: N_MAX lowered to $N_MAX (fd limit $(ulimit -n))" >&2
fi

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
echo "new: $NEW_RDV"
[[ $ONLY == new ]] || echo "lws: $OLD_RDV (commit $OLD_COMMIT)"
echo "namespace: ${NS:-none (current)}; fd limit $(ulimit -n); server CPU 0, load CPU 1"

# lg_run ARGS...: the load generator on CPU 1, in the namespace.
lg_run() {
  in_ns taskset -c 1 "$LG" --port "$PORT" "$@"
}

# start_server NAME BINARY: start it, wait for /healthz; sets SRV_PID.
start_server() {
  local name=$1 bin=$2 env_words=$RDV_ENV
  [[ $name == new ]] && env_words="$NEW_ENV $RDV_ENV"
  # shellcheck disable=SC2086 # env_words is a list of VAR=VALUE words
  if [[ -n $NS ]]; then
    # ip netns exec execs the command: $! is the server itself.
    env PORT="$PORT" LOG_LEVEL=warning LOG_FORMAT=json $env_words \
      taskset -c 0 ip netns exec "$NS" "$bin" 2>>"$tmp/rdv-$name.err" >"$tmp/rdv-$name.out" </dev/null &
  else
    env PORT="$PORT" LOG_LEVEL=warning LOG_FORMAT=json $env_words \
      taskset -c 0 "$bin" 2>>"$tmp/rdv-$name.err" >"$tmp/rdv-$name.out" </dev/null &
  fi
  SRV_PID=$!
  for _ in $(seq 100); do
    healthz >/dev/null 2>&1 && break
    kill -0 "$SRV_PID" 2>/dev/null || die "$name: the server exited at start-up"
    sleep 0.1
  done
  healthz >/dev/null || die "$name: no /healthz answer within 10 s"
  [[ $(readlink "/proc/$SRV_PID/exe") == "$(readlink -f "$bin")" ]] ||
    die "pid $SRV_PID is not the server ($(readlink "/proc/$SRV_PID/exe"))"
  echo "    server pid $SRV_PID, fd limit $(awk '/Max open files/ { print $4 }' "/proc/$SRV_PID/limits"), affinity $(taskset -pc "$SRV_PID" | sed 's/.*: //')"
}

# idle_open N OUTFILE: open N idle registered WebSockets in the background
# (LG_PID) and wait until the load generator says ready (or gives up).
idle_open() {
  local n=$1 out=$2
  # A plain command (not a function) in the background: bash execs it, so $!
  # is the load generator itself (ip netns exec and taskset exec too).
  if [[ -n $NS ]]; then
    ip netns exec "$NS" taskset -c 1 "$LG" --port "$PORT" --timeout 180 --hold 600 --quiet \
      idle "$n" >"$out" 2>"$out.err" </dev/null &
  else
    taskset -c 1 "$LG" --port "$PORT" --timeout 180 --hold 600 --quiet \
      idle "$n" >"$out" 2>"$out.err" </dev/null &
  fi
  LG_PID=$!
  for _ in $(seq 2000); do
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

# measure NAME BINARY: (a)-(d) for one build; fills R_MEM, R_CPU, R_SYS,
# R_MAX and R_MAXRSS (associative arrays keyed by NAME).
measure() {
  local name=$1 bin=$2
  echo
  echo "=== $name: $bin"
  start_server "$name" "$bin"

  # --- (a) memory per idle registered WebSocket --------------------------------
  sleep 2 # let start-up allocations settle
  rss0=$(rss_kib "$SRV_PID")
  tcp0=$(tcp_mem_pages)
  slab0=$(slab_kib)
  echo
  echo "(a) memory: server VmRSS idle = $rss0 KiB; opening $N_IDLE idle WebSockets..."
  idle_open "$N_IDLE" "$tmp/idle-$name.out"
  ready=$(grep '^ready' "$tmp/idle-$name.out" || true)
  [[ -n $ready ]] || { cat "$tmp/idle-$name.out" "$tmp/idle-$name.out.err" >&2; die "the load generator never became ready"; }
  echo "    loadgen: $ready"
  [[ $ready == *" errors=0 "* ]] || { head -20 "$tmp/idle-$name.out.err" >&2; die "idle connections failed (see above)"; }
  sleep 2 # let the last welcomes and any lazy per-connection work finish
  rss1=$(rss_kib "$SRV_PID")
  tcp1=$(tcp_mem_pages)
  slab1=$(slab_kib)
  hz=$(healthz)
  echo "    server VmRSS with $N_IDLE idle = $rss1 KiB; /healthz: $hz"
  idle_close
  grep -v '^ready' "$tmp/idle-$name.out" | sed 's/^/    loadgen: /' || true
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
    out=$(lg_run --timeout 300 --quiet pairs "$N_PAIRS" concurrency "$CONC" </dev/null 2>"$tmp/pairs-$name-$r.err") || true
    t1=$(cpu_ticks "$SRV_PID")
    u1=$(utime_ticks "$SRV_PID")
    line=$(grep '^pairs' <<<"$out" || true)
    [[ -n $line ]] || { cat "$tmp/pairs-$name-$r.err" >&2; die "run $r: no result from the load generator"; }
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$TICK" -v n="$N_PAIRS" 'BEGIN { printf "%.4f", d / hz * 1000 / n }')
    echo "    run $r: server CPU $(awk -v d=$((t1 - t0)) -v u=$((u1 - u0)) -v hz="$TICK" \
      'BEGIN { printf "%.2f s (user %.2f, system %.2f)", d / hz, u / hz, (d - u) / hz }')" \
      "=> $cpu s per 1,000 pairings"
    echo "           loadgen: $line"
    if [[ $line != *" errors=0 "* || $line != *" done=$N_PAIRS "* ]]; then
      head -20 "$tmp/pairs-$name-$r.err" >&2
      die "run $r: not every pairing completed (see above)"
    fi
    cpus+=("$cpu")
    sleep 1
  done
  median=$(printf '%s\n' "${cpus[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  echo "    => median server CPU per 1,000 pairings: $median s (runs: ${cpus[*]})"
  kill -0 "$SRV_PID" 2>/dev/null || die "the server died during the benchmark"
  echo "    server VmRSS after the pairing runs: $(rss_kib "$SRV_PID") KiB;" \
    "warnings/errors logged: $(wc -l <"$tmp/rdv-$name.err")"


  # --- (c) system calls per connection ---------------------------------------
  echo
  echo "(c) system calls: strace -c -f during $N_STRACE pairings ($((2 * N_STRACE)) connections)"
  strace -c -f -q -p "$SRV_PID" -o "$tmp/strace-$name.txt" &
  local st_pid=$!
  sleep 1
  local out
  out=$(lg_run --timeout 300 --quiet pairs "$N_STRACE" concurrency "$CONC" </dev/null 2>"$tmp/strace-pairs-$name.err") || true
  sleep 0.5
  kill -INT "$st_pid" 2>/dev/null || true
  wait "$st_pid" 2>/dev/null || true
  echo "    loadgen: $(grep '^pairs' <<<"$out" || echo "no result")"
  local total=0
  total=$(awk '$NF == "total" { print $4 }' "$tmp/strace-$name.txt")
  R_SYS[$name]=$(awk -v t="$total" -v n=$((2 * N_STRACE)) 'BEGIN { printf "%.1f", t / n }')
  echo "    => ${R_SYS[$name]} system calls per connection ($total in all); most frequent:"
  awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print }' "$tmp/strace-$name.txt" | sort -k4,4 -n -r | head -6 |
    awk -v n=$((2 * N_STRACE)) '{ printf "       %-16s %6.2f per connection\n", $NF, $4 / n }'

  # --- (d) how many idle registered WebSockets one instance holds ------------
  echo
  echo "(d) capacity: $N_MAX idle registered WebSockets"
  idle_open "$N_MAX" "$tmp/max-$name.out"
  local ready held
  ready=$(grep '^ready\|^timeout' "$tmp/max-$name.out" || true)
  echo "    loadgen: ${ready:-nothing}"
  # A server that cannot keep up may not answer /healthz in time: report 0
  # then (the load generator's line above says how far it got).
  held=$(healthz 2>/dev/null | sed -n 's/.*"connections":\([0-9]*\).*/\1/p' || true)
  R_MAX[$name]=${held:-0}
  R_MAXRSS[$name]=$(rss_kib "$SRV_PID")
  echo "    => held ${R_MAX[$name]} registered WebSockets (/healthz), server VmRSS ${R_MAXRSS[$name]} KiB"
  idle_close
  R_MEM[$name]=$mem_kib
  R_CPU[$name]=$median
  stop_pid "$SRV_PID"
  SRV_PID=""
}

declare -A R_MEM R_CPU R_SYS R_MAX R_MAXRSS
names=()
[[ $ONLY == lws ]] || names+=(new)
[[ $ONLY == new ]] || names+=(lws)
for n in "${names[@]}"; do
  if [[ $n == new ]]; then measure new "$NEW_RDV"; else measure lws "$OLD_RDV"; fi
done

# --- summary -------------------------------------------------------------------
echo
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "meets" : "MISSES" }'; }
printf '%-44s' "figure"
for n in "${names[@]}"; do printf ' %12s' "$n"; done
printf ' %12s %10s\n' "FastAPI ref" "target"
row() {
  local label=$1 arr=$2 ref=$3 target=$4 n
  printf '%-44s' "$label"
  for n in "${names[@]}"; do
    local -n a=$arr
    printf ' %12s' "${a[$n]}"
  done
  printf ' %12s %10s\n' "$ref" "$target"
}
row "user RSS per idle WebSocket (KiB)" R_MEM "$REF_KIB_PER_CONN" "<= $TARGET_KIB_PER_CONN"
row "server CPU s per 1,000 pairings" R_CPU "$REF_CPU_PER_1000" "<= $TARGET_CPU_PER_1000"
row "system calls per connection" R_SYS "-" "-"
row "idle registered WebSockets held (of $N_MAX)" R_MAX "-" "$N_MAX"
row "server VmRSS with them (KiB)" R_MAXRSS "-" "-"
for n in "${names[@]}"; do
  echo "$n: memory $(verdict "${R_MEM[$n]}" $TARGET_KIB_PER_CONN), CPU $(verdict "${R_CPU[$n]}" $TARGET_CPU_PER_1000)"
done
