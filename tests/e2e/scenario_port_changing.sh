#!/usr/bin/env bash
# e2e.port_changing: both workers behind NATs that map to another port
# (nft "masquerade to :20000-30000", endpoint-independent). Expected: the
# mapping each worker learnt from its punch port is in 20000-30000 (so it is
# NOT INTERNAL_TCP_PORT), and each worker connected directly to exactly the
# peer's learnt mapping: the mapping discovery from the punch port is what
# made it work ("public IP + internal port" would have dialled a dead port).
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

internal=8082
room="changing-$$"
lab_run_worker a a "$room" INTERNAL_TCP_PORT=$internal
lab_run_worker b b "$room" INTERNAL_TCP_PORT=$internal
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"

for w in a b; do
  nat=nat$w
  m=$(lab_worker_mapping $w)
  [[ $m == "${LAB_IP[$nat]}:"* ]] || lab_fail "$w's mapping is '$m', expected ${LAB_IP[$nat]}:<port>"
  port=${m##*:}
  ((port != internal)) || lab_fail "$w's mapped port equals INTERNAL_TCP_PORT ($internal): the NAT did not change it?"
  ((port >= 20000 && port <= 30000)) || lab_fail "$w's mapped port $port is outside the NAT's 20000-30000"
  lab_log "ok: $w's punch port $internal is mapped to $m"
done
ma=$(lab_worker_mapping a)
mb=$(lab_worker_mapping b)
lab_expect_direct a b "$mb"
lab_expect_direct b a "$ma"
lab_pass "port_changing: a <-> b direct ($ma <-> $mb)"
