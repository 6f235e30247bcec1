#!/usr/bin/env bash
# e2e.port_preserving: two workers, each behind its own port-preserving NAT
# (nft "masquerade"), NAT A behind core router r1, NAT B behind r2. Expected:
# a direct connection from each to the other's public mapping (which keeps
# INTERNAL_TCP_PORT), exit 0 for both, greetings exchanged.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata preserving
lab_add_nat natb preserving
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="preserving-$$"
lab_run_worker a a "$room"
lab_run_worker b b "$room"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"

ma=$(lab_worker_mapping a)
mb=$(lab_worker_mapping b)
[[ $ma == "${LAB_IP[nata]}:8082" ]] || lab_fail "a's mapping is '$ma', expected ${LAB_IP[nata]}:8082 (port kept)"
[[ $mb == "${LAB_IP[natb]}:8082" ]] || lab_fail "b's mapping is '$mb', expected ${LAB_IP[natb]}:8082 (port kept)"
lab_expect_direct a b "$mb"
lab_expect_direct b a "$ma"
lab_pass "port_preserving: a <-> b direct ($ma <-> $mb)"
