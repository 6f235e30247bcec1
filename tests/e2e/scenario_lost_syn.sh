#!/usr/bin/env bash
# e2e.lost_syn: one lost packet at the worst moment. Both workers behind
# port-changing NATs; each NAT loses the first SYN from the other NAT that
# it forwards, i.e. the crossing SYN of the simultaneous open, right after
# its conntrack entry went to SYN_SENT2 (lab_nat_lose_first_syn). This
# happens on any lossy path (e2e.lossy hits it now and then by chance).
# Recovery is ordinary TCP: the kernel retransmits the same SYN after ~1 s,
# which conntrack accepts. A SYN with a new ISN from a fresh socket on the
# same 4-tuple is INVALID for Linux conntrack in that state and is dropped
# for as long as the entry lives (120 s), as on every Linux-based router.
#
# First the lab proves the condition is survivable: the python stand-in
# puncher (which keeps its connecting socket) connects through it. Then the
# workers must too: exit 0 both, greetings, direct connection to the peer's
# mapping. The NATs' counters of lost and INVALID packets are printed.
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

arm() {
  lab_nat_lose_first_syn natb nata
  lab_nat_lose_first_syn nata natb
}
counters() {
  echo "lost SYNs natA=$(lab_nat_counter nata hp-first-syn) natB=$(lab_nat_counter natb hp-first-syn)," \
    "conntrack-INVALID drops natA=$(lab_nat_counter nata invalid) natB=$(lab_nat_counter natb invalid)"
}

# 1. The stand-in, from port 8083 (its conntrack entries do not touch 8082's).
arm
lab_start_reflector 9000
S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")
for side in a b; do
  other=$([[ $side == a ]] && echo b || echo a)
  lab_run "py_$side" "$side" "${S[@]}" punch --name "py_$side" --port 8083 --reflector "$LAB_RDV_IP:9000" \
    --me "$LAB_DIR/py_$side.addr" --peer "$LAB_DIR/py_$other.addr" --timeout 10
done
lab_wait_exit py_a 20 || lab_fail "stand-in a did not stop"
lab_wait_exit py_b 20 || lab_fail "stand-in b did not stop"
lab_log "stand-in: $(counters)"
lost=$(($(lab_nat_counter nata hp-first-syn) + $(lab_nat_counter natb hp-first-syn)))
((lost >= 1)) || lab_fail "the stand-in run lost no SYN: the lab did not create the condition"
lab_expect_rc py_a 0
lab_expect_rc py_b 0
lab_log "ok: the stand-in survived the lost SYN: $(tr '\n' ' ' <"$LAB_DIR/py_a.out")"

# 2. The workers, on a freshly armed lab.
arm
lab_start_rendezvous
room="lostsyn-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=10
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=10
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_log "workers: $(counters)"
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
lab_pass "lost_syn: direct connection despite the lost crossing SYN"
