#!/usr/bin/env bash
# bench/relay.sh - what the rendezvous' relay costs, printed (a benchmark, no
# pass/fail), side by side with a plain TCP copy in the same run. See
# bench/README.md.
#
#   (a) throughput and CPU per relayed GiB: the rendezvous pinned to CPU 0,
#       the two ends (bench_relay_peer relay: the worker's relay carrier,
#       src/lib/chan/relay.c) on CPU 1, BYTES each way at once through one
#       relayed session; CPU = utime + stime of the rendezvous from
#       /proc/PID/stat around the copy, per GiB relayed (both directions
#       counted). The same copy through bench_relay_peer tcp-proxy (accept two
#       connections, read, write, stop reading above 256 KiB queued: a plain
#       user-space TCP copy on libuv) in the middle. RUNS times each.
#   (b) memory per idle relayed session: the rendezvous' VmRSS before and
#       after N_IDLE pairings whose two workers both joined the relay and
#       got ready (2 WebSockets each, nothing relayed), / N_IDLE.
#
# Usage: bench/relay.sh [BUILD_DIR]     (default: build/, built if missing)
# Environment: BYTES (1073741824 = 1 GiB each way), RUNS (2), N_IDLE (1000).
# Everything on 127.0.0.1, bounded in time; the processes started are stopped
# at the end, also on failure.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
BYTES=${BYTES:-1073741824}
RUNS=${RUNS:-2}
N_IDLE=${N_IDLE:-1000}
PY=/usr/bin/python3
PEER=$build/bench/bench_relay_peer
RDV=$build/holepunch-rendezvous
TICK=$(getconf CLK_TCK)

die() { echo "relay.sh: $*" >&2; exit 1; }
command -v taskset >/dev/null || die "taskset missing (util-linux)"
(($(nproc) >= 2)) || die "needs 2 CPUs (middle on CPU 0, ends on CPU 1)"
if [[ ! -x $RDV || ! -x $PEER ]]; then
  echo "building into $build ..."
  "$top/scripts/build.sh" "$build" >/dev/null
fi

tmp=$(mktemp -d "/tmp/hp-bench-relay.$$.XXXXXX")
RDV_PID="" PROXY_PID="" HOLD_PID=""
cleanup() {
  set +e
  for p in $HOLD_PID $PROXY_PID $RDV_PID; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in $HOLD_PID $PROXY_PID $RDV_PID; do
    timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the rendezvous, on CPU 0 ------------------------------------------------
: >"$tmp/rdv.log"
env PORT=0 BIND=127.0.0.1 LOG_FORMAT=json LOG_LEVEL=warning RELAY_RATE=0 RELAY_MAX_BYTES=0 \
  RELAY_MAX_SESSIONS=100000 MAX_HELLOS_PER_MINUTE=10000000 MAX_CONNECTIONS_PER_IP=1000000 \
  taskset -c 0 "$RDV" --log-level info >>"$tmp/rdv.log" 2>&1 </dev/null &
RDV_PID=$!
for _ in $(seq 200); do
  port=$(sed -n 's/.*"message":"listening on[^"]*".*"port":\([1-9][0-9]*\).*/\1/p' "$tmp/rdv.log" | head -n1)
  [[ -n ${port:-} ]] && break
  sleep 0.05
done
[[ -n ${port:-} ]] || die "the rendezvous did not start: $(tail -n 5 "$tmp/rdv.log")"
base=http://127.0.0.1:$port

pairing() {
  timeout 30 "$PY" -c '
import asyncio, sys
sys.path.insert(0, sys.argv[2])
import relay_client as rc
p = asyncio.run(rc.pair(sys.argv[1]))
print(p.session, p.id_a, p.id_b)' "$base" "$top/tests/tools"
}

# One copy through the middle; prints "seconds cpu_seconds".
relay_copy() {
  local s a b t0 t1 pa pb
  read -r s a b < <(pairing)
  t0=$(cpu_ticks "$RDV_PID")
  taskset -c 1 "$PEER" relay 127.0.0.1 "$port" "$s" "$a" "$b" "$BYTES" >"$tmp/pa.out" &
  pa=$!
  taskset -c 1 "$PEER" relay 127.0.0.1 "$port" "$s" "$b" "$a" "$BYTES" >"$tmp/pb.out" &
  pb=$!
  wait "$pa" || die "relay end a failed"
  wait "$pb" || die "relay end b failed"
  t1=$(cpu_ticks "$RDV_PID")
  echo "$(sed -n 's/.*seconds=//p' "$tmp/pa.out" "$tmp/pb.out" | sort -n | tail -n1) $((t1 - t0))"
}

tcp_copy() {
  local pp t1 pa pb
  pp=$(free_port)
  : >"$tmp/proxy.out"
  taskset -c 0 "$PEER" tcp-proxy "$pp" >"$tmp/proxy.out" &
  PROXY_PID=$!
  for _ in $(seq 100); do grep -q listening "$tmp/proxy.out" && break; sleep 0.05; done
  taskset -c 1 "$PEER" tcp-peer 127.0.0.1 "$pp" "$BYTES" >"$tmp/pa.out" &
  pa=$!
  taskset -c 1 "$PEER" tcp-peer 127.0.0.1 "$pp" "$BYTES" >"$tmp/pb.out" &
  pb=$!
  wait "$pa" || die "tcp end a failed"
  wait "$pb" || die "tcp end b failed"
  timeout 10 tail --pid="$PROXY_PID" -f /dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
  # The proxy's whole life is the copy (plus an accept): its own rusage.
  t1=$(awk -F= -v hz="$TICK" '/^cpu_seconds=/ {printf "%d", $2 * hz}' "$tmp/proxy.out")
  [[ -n $t1 ]] || die "the TCP copy did not report its CPU time"
  echo "$(sed -n 's/.*seconds=//p' "$tmp/pa.out" "$tmp/pb.out" | sort -n | tail -n1) $t1"
}

gib=$(awk -v b="$BYTES" 'BEGIN {printf "%.3f", 2 * b / 2^30}')
echo "== (a) $((BYTES / 1048576)) MiB each way at once ($gib GiB through the middle), middle on CPU 0, ends on CPU 1"
printf '%-26s %4s %9s %11s %16s\n' middle run seconds "MiB/s" "CPU s per GiB"
for run in $(seq "$RUNS"); do
  for kind in relay tcp; do
    if [[ $kind == relay ]]; then read -r secs ticks < <(relay_copy); name="rendezvous relay"
    else read -r secs ticks < <(tcp_copy); name="plain TCP copy (libuv)"; fi
    awk -v n="$name" -v r="$run" -v s="$secs" -v t="$ticks" -v hz="$TICK" -v b="$BYTES" -v g="$gib" \
      'BEGIN {printf "%-26s %4d %9.2f %11.0f %16.3f\n", n, r, s, 2 * b / 2^20 / s, t / hz / g}'
  done
done

# --- (b) memory per idle relayed session --------------------------------------
echo "== (b) $N_IDLE idle relayed sessions (both workers joined, ready, nothing sent)"
rss0=$(rss_kib "$RDV_PID")
mkfifo "$tmp/hold.in"
timeout 300 "$PY" - "$base" "$N_IDLE" "$top/tests/tools" <"$tmp/hold.in" >"$tmp/hold.out" 2>&1 <<'EOF' &
import asyncio, sys
sys.path.insert(0, sys.argv[3])
import relay_client as rc
base, n = sys.argv[1], int(sys.argv[2])

async def main():
    held = []
    for i in range(0, n, 50):
        ps = await asyncio.gather(*(rc.pair(base) for _ in range(min(50, n - i))))
        for p in ps:
            a = await rc.join(base, p.session, p.id_a)
            b = await rc.join(base, p.session, p.id_b)
            await rc.ready(a)
            await rc.ready(b)
            held += [a, b]
    print("ready", len(held) // 2, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
EOF
HOLD_PID=$!
exec 9>"$tmp/hold.in"
for _ in $(seq 1200); do
  grep -q '^ready' "$tmp/hold.out" && break
  lo=$(kill -0 "$HOLD_PID" 2>/dev/null && echo up || echo down)
  [[ $lo == up ]] || die "the idle holder failed: $(tail -n 5 "$tmp/hold.out")"
  sleep 0.1
done
grep -q '^ready' "$tmp/hold.out" || die "the idle sessions were not ready within 120 s"
sleep 1
rss1=$(rss_kib "$RDV_PID")
open=$(curl -fsS "$base/metrics" | awk '/^holepunch_relay_sessions_relaying / {print $2}')
exec 9>&-
awk -v a="$rss0" -v b="$rss1" -v n="$N_IDLE" -v o="$open" 'BEGIN {
  printf "rendezvous VmRSS %d KiB -> %d KiB with %s sessions relaying: %.2f KiB per idle relayed session (2 WebSockets)\n",
         a, b, o, (b - a) / n }'
