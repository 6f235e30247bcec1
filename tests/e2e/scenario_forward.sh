#!/usr/bin/env bash
# e2e.forward: `holepunch forward --code` on a, `holepunch expose --code
# 127.0.0.1:E` on b, through two port-changing NATs. b runs an echo server on
# its own loopback (reachable only from b); clients on a connect to a's
# forward port. Expected: 8 concurrent connections of 256 KiB each, every
# echo exact; again 8 (the tunnel stays up for new streams); a second
# expose-side target that refuses resets the forwarded connection and the
# forward side logs why; SIGTERM on a: exit 143, b then exits 0.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
CHECK="$LAB_SOURCE_DIR/tests/lib/tunnel_check.py"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

code=$("$HP_BUILD_DIR/holepunch" code)
echo_port=7007
fwd_port=9009
lab_run echo b "$LAB_PY" "$CHECK" serve "$echo_port" 150
lab_wait_listen b "$echo_port" 10 echo || lab_fail "the echo server on b did not start"

# tunnel_worker PROC HOST SUBCOMMAND ARG
tunnel_worker() {
  lab_run "$1" "$2" env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8082 \
    WORKER_ID="$1" HOLEPUNCH_CODE="$code" P2P_CONNECT_TIMEOUT=10 WS_OPEN_TIMEOUT=5 \
    WS_RECV_TIMEOUT=20 LOG_FORMAT=json LOG_LEVEL=debug "$HP_BUILD_DIR/holepunch" "$3" "$4"
  lab_log "started $3 $4 as $1 on $2 (${LAB_IP[$2]})"
}
tunnel_worker b b expose "127.0.0.1:$echo_port"
tunnel_worker a a forward "$fwd_port"
lab_wait_listen a "$fwd_port" 40 a || lab_fail "the forward side does not listen on $fwd_port"
lab_expect_grep "$LAB_DIR/a.err" 'proved it knows the code' "a authenticated b"
lab_expect_grep "$LAB_DIR/a.err" '"message":"direct connection established"' "a is direct"

for round in 1 2; do
  out=$(lab_exec a timeout 60 "$LAB_PY" "$CHECK" concurrent "$fwd_port" 8 262144 2>&1) ||
    lab_fail "round $round of 8 concurrent streams: $out"
  lab_log "ok: round $round: 8 concurrent streams echoed exactly"
done
lab_expect_grep "$LAB_DIR/b.err" 'exposing 127.0.0.1:7007 to the peer' "b exposes its echo server"

lab_stop echo
out=$(lab_exec a timeout 20 "$LAB_PY" "$CHECK" refused "$fwd_port" 2>&1) ||
  lab_fail "a stream to a refusing target: $out"
lab_wait_log a 'reset by the peer: cannot connect to 127.0.0.1:7007: connection refused' 10 ||
  lab_fail "the forward side did not log the target's refusal"
lab_log "ok: a refused target reset the forwarded connection, with the reason"

kill -TERM "${LAB_PID[a]}"
lab_wait_exit a 10 || lab_fail "forward did not stop within 10 s of SIGTERM"
lab_expect_rc a 143
lab_wait_exit b 10 || lab_fail "expose did not stop within 10 s of its peer"
lab_expect_rc b 0
lab_pass "forward: 16 streams through two port-changing NATs, a refused target reported, clean stop"
