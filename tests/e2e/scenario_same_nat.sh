#!/usr/bin/env bash
# e2e.same_nat: workers a and a2 on two hosts of the same LAN behind one
# port-changing NAT. The lab's NAT does not hairpin (a SYN from the LAN to the
# NAT's own WAN mapping is not translated back into the LAN), so only the
# host candidates can work. Expected: direct connection between the two LAN
# addresses, exit 0 for both, greetings exchanged.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_worker_host a nata
lab_add_worker_host a2 nata
lab_describe >&2
lab_start_rendezvous

room="samenat-$$"
lab_run_worker a a "$room"
lab_run_worker a2 a2 "$room"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit a2 30 || lab_fail "worker a2 did not finish within 30 s"

lab_expect_direct a a2 "${LAB_IP[a2]}:8082"
lab_expect_direct a2 a "${LAB_IP[a]}:8082"
lab_pass "same_nat: a (${LAB_IP[a]}) <-> a2 (${LAB_IP[a2]}) direct inside the LAN"
