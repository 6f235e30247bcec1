#!/usr/bin/env bash
# e2e.public_peer: worker c on a host with a public address (no NAT, behind
# r2), worker a behind a port-changing NAT (behind r1). Expected: direct
# connection; a reaches c at c's own address and port, c sees a at a's
# public mapping; exit 0 for both, greetings exchanged.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing r1
lab_add_worker_host a nata
lab_add_public_host c
lab_describe >&2
lab_start_rendezvous

room="public-$$"
lab_run_worker a a "$room"
lab_run_worker c c "$room"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit c 30 || lab_fail "worker c did not finish within 30 s"

ma=$(lab_worker_mapping a)
mc=$(lab_worker_mapping c)
[[ $mc == "${LAB_IP[c]}:8082" ]] || lab_fail "c's mapping is '$mc', expected its own address ${LAB_IP[c]}:8082"
[[ $ma == "${LAB_IP[nata]}:"* ]] || lab_fail "a's mapping is '$ma', expected ${LAB_IP[nata]}:<port>"
lab_expect_direct a c "${LAB_IP[c]}:8082"
lab_expect_direct c a "$ma"
lab_pass "public_peer: a ($ma) <-> c ($mc) direct"
