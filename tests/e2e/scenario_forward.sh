#!/usr/bin/env bash
# e2e.forward: `holepunch forward --code` on a, `holepunch expose --code
# 127.0.0.1:E` on b, through two port-changing NATs. b runs an echo server on
# its own loopback (reachable only from b); clients on a connect to a's
# forward port. Expected: 8 concurrent connections of 256 KiB each, every
# echo exact; again 8 (the tunnel stays up for new streams); a second
# expose-side target that refuses resets the forwarded connection and the
# forward side logs why; SIGTERM on a: exit 143, b then exits 0. Then a
# second pair (a fresh code) to a real service, python3 -m http.server on
# b's loopback: 8 concurrent GETs of a 1 MiB file through a, all bodies
# exact.
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
# A real local service: http.server on b, 8 concurrent GETs from a.
mkdir -p "$LAB_DIR/www"
head -c 1048576 /dev/urandom >"$LAB_DIR/www/blob"
code=$("$HP_BUILD_DIR/holepunch" code) # a fresh pair
lab_run http b "$LAB_PY" -m http.server --bind 127.0.0.1 --directory "$LAB_DIR/www" 8000
lab_wait_listen b 8000 10 http || lab_fail "http.server on b did not start"
tunnel_worker b2 b expose 127.0.0.1:8000
tunnel_worker a2 a forward "$fwd_port"
lab_wait_listen a "$fwd_port" 40 a2 || lab_fail "the second forward does not listen on $fwd_port"
out=$(lab_exec a timeout 60 "$LAB_PY" - "$fwd_port" "$LAB_DIR/www/blob" <<'PY' 2>&1
import sys, threading, urllib.request
port, want = int(sys.argv[1]), open(sys.argv[2], "rb").read()
res = [None] * 8
def get(i):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/blob" % port, timeout=30) as r:
            res[i] = r.read() == want
    except Exception as e:
        res[i] = repr(e)
ts = [threading.Thread(target=get, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
bad = [r for r in res if r is not True]
print("ok" if not bad else "FAIL %s" % bad)
PY
) || true
[[ $out == ok ]] || lab_fail "8 concurrent GETs through forward/expose: $out"
lab_log "ok: 8 concurrent GETs of 1 MiB from http.server on b, all bodies exact"
lab_stop a2
lab_stop b2
lab_stop http
lab_pass "forward: 16 echo streams and 8 HTTP GETs through two port-changing NATs, a refused target reported, clean stop"
