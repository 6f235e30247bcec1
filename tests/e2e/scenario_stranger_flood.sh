#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.stranger_flood: the punch port cannot be blocked with silent
# connections (issue 11 item 8). Worker c has a public address and a
# descriptor limit of 64 (prlimit); before its peer arrives, a stranger host
# opens 120 TCP connections to c's punch port and says nothing on them. On
# the old code every real peer connection then closed at once and c gave up
# with exit 5, without a word about descriptors.
# Expected: the real peer b (behind a NAT) and c connect (exit 0 both, the
# greetings); c logs the exhaustion / drop warning exactly once and the count
# of dropped connections at the end; the strangers never got a byte.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
command -v prlimit >/dev/null || lab_fail "prlimit (util-linux) is not installed"
lab_add_public_host c
lab_add_public_host s
lab_add_nat natb changing
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="flood-$$"
N=120
lab_run c c prlimit --nofile=64:64 env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" \
  INTERNAL_TCP_PORT=8082 PORT=8090 ROOM="$room" WORKER_ID=c P2P_CONNECT_TIMEOUT=10 \
  WS_OPEN_TIMEOUT=5 WS_RECV_TIMEOUT=40 P2P_MSG_TIMEOUT=5 LOG_FORMAT=json LOG_LEVEL=debug \
  "$HP_BUILD_DIR/holepunch"
lab_wait_log c '"message":"registered in room ' 10 || lab_fail "worker c did not register"
[[ $(awk '/^Max open files/ {print $4}' "/proc/${LAB_PID[c]}/limits") == 64 ]] ||
  lab_fail "worker c does not run with a descriptor limit of 64"

# The stranger: N connections, silent, held; afterwards it reports how many
# bytes arrived on them in all (must be 0: nothing ever goes to a stranger).
cat >"$LAB_DIR/strangers.py" <<'EOF'
import select, socket, sys, time
host, port, n, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    socks.append(s)
time.sleep(1)
ok = sum(1 for s in socks if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
print(f"connected {ok} of {n}", flush=True)
got, closed, end = 0, 0, time.time() + dur
live = list(socks)
while live and time.time() < end:
    r, _, _ = select.select(live, [], [], 0.5)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            got += len(data)
        else:
            closed += 1
            live.remove(s)
print(f"bytes {got} closed {closed}", flush=True)
EOF
lab_run strangers s "$LAB_PY" "$LAB_DIR/strangers.py" "${LAB_IP[c]}" 8082 "$N" 40
n=100
while ((n-- > 0)) && ! grep -q '^connected' "$LAB_DIR/strangers.out"; do sleep 0.1; done
grep -q '^connected' "$LAB_DIR/strangers.out" || lab_fail "the stranger host did not report"
lab_log "stranger: $(cat "$LAB_DIR/strangers.out")"

lab_run_worker b b "$room" WS_RECV_TIMEOUT=30
lab_wait_exit b 40 || lab_fail "worker b did not finish within 40 s"
lab_wait_exit c 20 || lab_fail "worker c did not finish within 20 s"
lab_expect_direct b c
lab_expect_direct c b
warn=$(lab_json_count c 'dropping the oldest connection that has not sent a valid hello')
[[ $warn == 1 ]] || lab_fail "c logged the drop warning $warn times, expected exactly once"
dropped=$(lab_json_field c '^dropped [0-9]+ connections' dropped)
if ! [[ $dropped =~ ^[0-9]+$ ]] || ((dropped == 0)); then
  lab_fail "c logged no count of dropped connections ('$dropped')"
fi
lab_log "ok: c warned once and dropped $dropped silent connections"
lab_stop strangers
grep -q '^bytes 0 ' "$LAB_DIR/strangers.out" ||
  lab_fail "a stranger received bytes: $(tail -n 1 "$LAB_DIR/strangers.out")"
lab_log "ok: strangers: $(tail -n 1 "$LAB_DIR/strangers.out")"
lab_pass "stranger_flood: $N silent connections at a limit of 64 descriptors did not block the punch"
