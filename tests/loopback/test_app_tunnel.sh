#!/usr/bin/env bash
# loopback.test_app_tunnel: `forward` / `expose` (src/lib/app/tunnel.c over
# the multiplexer) between two processes joined by one loopback TCP
# connection (the TCP carrier; hp_app_loop), no punching. Asserts:
#   1. 8 concurrent connections through forward -> expose -> an echo
#      server, each ~256 KiB both ways, all echoes exact; then 8 more (the
#      tunnel stays up for new streams);
#   2. a slow stream does not stall another: stream A sends and never reads
#      until its send blocks (bounded: under 64 MiB taken), stream B then
#      does a full 1 MiB echo; A is still alive;
#   3. a target that refuses: the forwarded connection is closed without
#      data, the forward side logs the reason from the RST, and the tunnel
#      still works for the next stream (a second expose to a live target is
#      not needed: the same refused tunnel keeps running and accepting);
#   4. SIGINT on the forward side: exit 130; the expose side sees the
#      channel end and exits 0.
# Loopback only; every process bounded by timeout(1) and killed on exit.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
CHECK="$(dirname "$0")/../lib/tunnel_check.py"
[[ -x $B/hp_app_loop ]] || { echo "FAIL: $B/hp_app_loop is missing; build first" >&2; exit 1; }
tmp=$(mktemp -d "/tmp/hp-tunnel-$$-XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }

# wait_listen PORT: until something listens on 127.0.0.1:PORT (5 s).
wait_listen() {
  for _ in $(seq 100); do [[ -n $(ss -Hltn "sport = :$1") ]] && return 0; sleep 0.05; done
  return 1
}

# start_pair TARGET_PORT FWD_PORT TAG: expose to TARGET_PORT, forward on
# FWD_PORT; sets XP, FP (pids).
start_pair() {
  local chan
  chan=$(lo_free_port)
  timeout 120 "$B/hp_app_loop" listen "$chan" expose "127.0.0.1:$1" 2>"$tmp/x-$3.err" &
  XP=$!
  pids+=("$XP")
  timeout 120 "$B/hp_app_loop" connect "$chan" forward "$2" 2>"$tmp/f-$3.err" &
  FP=$!
  pids+=("$FP")
  wait_listen "$2"
}

echo_port=$(lo_free_port)
"$LO_PY" "$CHECK" serve "$echo_port" 120 &
pids+=("$!")
wait_listen "$echo_port" || { echo "FAIL: the echo server did not start" >&2; exit 1; }

fwd=$(lo_free_port)
if ! start_pair "$echo_port" "$fwd" a; then
  bad "forward side not listening on $fwd: $(cat "$tmp/f-a.err" "$tmp/x-a.err")"
else
  # 1. concurrent streams, twice
  for round in 1 2; do
    if out=$("$LO_PY" "$CHECK" concurrent "$fwd" 8 262144 2>&1); then ok; else bad "concurrent round $round: $out"; fi
  done
  # 2. a slow stream does not stall another
  if out=$("$LO_PY" "$CHECK" slow "$fwd" 1048576 $((64 * 1024 * 1024)) 2>&1); then
    ok
    echo "slow stream A was held at $(cut -d' ' -f2 <<<"$out") bytes"
  else
    bad "slow reader: $out"
  fi
  # 4. SIGINT on the forward side
  kill -INT "$FP"
  if lo_wait "$FP" 10 && [[ $LO_RC -eq 130 ]]; then ok; else bad "forward after SIGINT: exit ${LO_RC:-none}, expected 130: $(cat "$tmp/f-a.err")"; fi
  if lo_wait "$XP" 10 && [[ $LO_RC -eq 0 ]]; then ok; else bad "expose after the channel ended: exit ${LO_RC:-none}, expected 0: $(cat "$tmp/x-a.err")"; fi
fi

# 3. a target that refuses
dead=$(lo_free_port)
fwd=$(lo_free_port)
if ! start_pair "$dead" "$fwd" b; then
  bad "forward side not listening on $fwd: $(cat "$tmp/f-b.err")"
else
  for i in 1 2; do
    if out=$("$LO_PY" "$CHECK" refused "$fwd" 2>&1); then ok; else bad "refused target, stream $i: $out"; fi
  done
  if grep -q "reset by the peer: cannot connect to 127.0.0.1:$dead: connection refused" "$tmp/f-b.err"; then
    ok
  else
    bad "the forward side did not log the target's refusal: $(cat "$tmp/f-b.err")"
  fi
  if lo_alive "$FP" && lo_alive "$XP"; then ok; else bad "a refused target ended the tunnel"; fi
  lo_stop "$FP" 10
  lo_stop "$XP" 10
fi

echo "app tunnel: $passed passed, $failed failed"
((failed == 0))
