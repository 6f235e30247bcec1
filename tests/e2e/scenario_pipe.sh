#!/usr/bin/env bash
# e2e.pipe: `holepunch pipe --code` through two port-changing NATs (nft
# "masquerade to :20000-30000"): a file of 50 MiB of random bytes each way
# at once over the secure channel. Expected: both exit 0, each side's
# output has the sha256 of the other side's input, both logs say the peer
# proved it knows the code, and the connection was direct (the rendezvous
# is only the introducer).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

mib=50
head -c $((mib * 1024 * 1024)) /dev/urandom >"$LAB_DIR/a.in"
head -c $((mib * 1024 * 1024)) /dev/urandom >"$LAB_DIR/b.in"
code=$("$HP_BUILD_DIR/holepunch" code)

# pipe_worker PROC HOST: holepunch pipe with PROC.in as stdin; its stdout
# (what the peer sent) is LAB_DIR/PROC.out.
# shellcheck disable=SC2016 # the sh -c script expands its own arguments
pipe_worker() {
  lab_run "$1" "$2" env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8082 \
    WORKER_ID="$1" HOLEPUNCH_CODE="$code" P2P_CONNECT_TIMEOUT=10 WS_OPEN_TIMEOUT=5 \
    WS_RECV_TIMEOUT=20 LOG_FORMAT=json LOG_LEVEL=debug \
    sh -c 'exec "$0" pipe <"$1"' "$HP_BUILD_DIR/holepunch" "$LAB_DIR/$1.in"
  lab_log "started pipe $1 on $2 (${LAB_IP[$2]})"
}
pipe_worker a a
pipe_worker b b
lab_wait_exit a 120 || lab_fail "pipe a did not finish within 120 s"
lab_wait_exit b 120 || lab_fail "pipe b did not finish within 120 s"
lab_expect_rc a 0
lab_expect_rc b 0
for w in a b; do
  o=$([[ $w == a ]] && echo b || echo a)
  [[ $(sha256sum <"$LAB_DIR/$w.in") == "$(sha256sum <"$LAB_DIR/$o.out")" ]] ||
    lab_fail "$o received $(stat -c %s "$LAB_DIR/$o.out") bytes, not $w's ${mib} MiB (sha256 differs)"
  lab_expect_grep "$LAB_DIR/$w.err" 'proved it knows the code' "$w authenticated its peer"
  lab_expect_grep "$LAB_DIR/$w.err" '"message":"direct connection established"' "$w is direct"
  lab_log "ok: $w's $mib MiB arrived intact at $o"
done
lab_pass "pipe: ${mib} MiB each way through two port-changing NATs, sha256 equal, both exit 0"
