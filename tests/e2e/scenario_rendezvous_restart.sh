#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.rendezvous_restart: the rendezvous restarts while workers wait for a
# peer (issue 6 item 4; on the old code the worker logged the close and then
# never exited, and in service mode never retried).
#   1. a one-shot worker a (behind NAT A) and a service-mode worker s (public
#      host c) register in their rooms; the rendezvous is stopped (SIGTERM:
#      it closes every WebSocket with 1001);
#   2. a exits 3 by itself, its ERROR line naming the close while waiting;
#   3. s retries, registers again with each new rendezvous, three restarts
#      in all, with the same number of open descriptors after its 1st and
#      its 3rd re-registration (/proc/PID/fd);
#   4. the last rendezvous pairs s with a new one-shot worker b (behind
#      NAT A): both connect (s goes on in service mode);
#   5. s stops on SIGTERM with 143.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata preserving
lab_add_worker_host a nata
lab_add_worker_host b nata
lab_add_public_host c
lab_describe >&2

REG='^registered in room '
room_s="svc-$$"
gen=0
rdv_proc=rendezvous

# start_rdv: a rendezvous generation on the usual address.
start_rdv() {
  gen=$((gen + 1))
  rdv_proc="rendezvous$gen"
  lab_run "$rdv_proc" rdv env PORT="$LAB_RDV_PORT" LOG_FORMAT=json LOG_LEVEL=debug \
    "$HP_BUILD_DIR/holepunch-rendezvous"
  lab_wait_http rdv "$LAB_RDV_URL/healthz" 10 "$rdv_proc" ||
    lab_fail "rendezvous generation $gen did not answer within 10 s"
}

# stop_rdv: SIGTERM, a clean exit.
stop_rdv() {
  kill -TERM "${LAB_PID[$rdv_proc]}"
  lab_wait_exit "$rdv_proc" 15 || lab_fail "$rdv_proc did not stop within 15 s"
  lab_expect_rc "$rdv_proc" 0
}

# wait_reg PROC N: PROC has logged N registrations (bounded).
wait_reg() {
  local n=600
  while ((n-- > 0)) && (($(lab_json_count "$1" "$REG") < $2)); do
    _lab_alive "${LAB_PID[$1]}" || lab_fail "$1 exited: $(tail -n 3 "$LAB_DIR/$1.err")"
    sleep 0.1
  done
  (($(lab_json_count "$1" "$REG") >= $2)) || lab_fail "$1 did not register ($2) within 60 s"
}

start_rdv
lab_run_worker a a "oneshot-$$" WS_RECV_TIMEOUT=60
lab_run_worker s c "$room_s" SERVICE_MODE=1 WS_RECV_TIMEOUT=60
wait_reg a 1
wait_reg s 1
spid=${LAB_PID[s]}
fds() { find "/proc/$spid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# 1-2. the rendezvous goes away: the one-shot worker exits 3 by itself
stop_rdv
lab_wait_exit a 10 || lab_fail "worker a did not exit within 10 s of the rendezvous' shutdown (hangs)"
lab_expect_rc a 3
msg=$(lab_json_field a 'closed the WebSocket' message)
[[ $msg == *"close code 1001"*"while we waited for a peer"* ]] ||
  lab_fail "worker a's reason: '$msg', expected the close (1001) while waiting"
lab_log "ok: worker a exited 3: $msg"

# 3. the service-mode worker comes back with every new generation
start_rdv
wait_reg s 2
sleep 0.3
f1=$(fds)
for want in 3 4; do
  stop_rdv
  start_rdv
  wait_reg s "$want"
done
sleep 0.3
f3=$(fds)
((f3 <= f1)) || lab_fail "descriptors grew over the restarts: $f1 after the 1st re-registration, $f3 after the 3rd"
lab_log "ok: s re-registered after 3 restarts; descriptors $f1, then $f3"

# 4. it still pairs
lab_run_worker b b "$room_s" WS_RECV_TIMEOUT=30
lab_wait_exit b 40 || lab_fail "worker b did not finish"
lab_expect_direct b s
lab_wait_log s '"message":"message exchange complete"' 10 || lab_fail "s logged no completed exchange"
lab_log "ok: s paired with b after the restarts"

# 5. SIGTERM
kill -TERM "$spid"
lab_wait_exit s 10 || lab_fail "s ignored SIGTERM"
lab_expect_rc s 143
stop_rdv
lab_pass "rendezvous_restart: one-shot exits 3, service mode comes back with bounded descriptors"
