#!/usr/bin/env bash
# e2e.reset_nat_lowttl_icmp: e2e.reset_nat_lowttl on a path whose core
# routers answer an expired packet with ICMP Time Exceeded (the lab's
# default, as most internet routers do). Linux aborts role b's connecting
# socket on that ICMP, so a's SYN, 10 ms later, finds no connecting socket
# behind NAT B and reaches b's listener, whose SYN-ACK carries a new initial
# sequence number; NAT B's conntrack accepts that only within the peer's
# window of its last SYN (about 4 ms of the kernel's ISN clock). Role b
# therefore re-sends its low-TTL SYN every millisecond after each abort
# (punch_dial.c, ttl_again). Asserted: both exit 0, direct to each other's
# mapping; b logged its TTL-2 first SYN and at least one connect aborted as
# "unreachable" (the ICMP did come back); neither NAT sent a reset.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
lab_create
lab_require_binaries
lab_add_nat nata changing r1 --filter reject
lab_add_nat natb changing r2 --filter reject
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous
room="lowttl-icmp-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=4 LOW_TTL_SYN=2 LOG_LEVEL=debug
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=4 LOW_TTL_SYN=2 LOG_LEVEL=debug
lab_wait_exit a 20 || lab_fail "worker a did not finish within 4+16 s"
lab_wait_exit b 20 || lab_fail "worker b did not finish within 4+16 s"
role_b=a
[[ $(lab_json_field a '^paired with' role) == b ]] || role_b=b
[[ $(lab_json_field "$role_b" '^first SYN to .* with TTL' ttl) == 2 ]] ||
  lab_fail "$role_b (role b) logged no first SYN with TTL 2"
role_a=b
[[ $role_b == a ]] || role_a=a
# Only connects to a's mapping count (the LAN candidate is unreachable too).
map_a=$(lab_worker_mapping "$role_a")
[[ -n $map_a ]] || lab_fail "$role_a logged no mapping"
aborted=$(lab_json_count "$role_b" "^connect to ${map_a//./\\.}: unreachable\$")
((aborted > 0)) || lab_fail "$role_b (role b) saw no connect to $map_a end as unreachable: did no Time Exceeded come back?"
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
ra=$(lab_nat_resets nata) rb=$(lab_nat_resets natb)
((ra == 0 && rb == 0)) || lab_fail "the NATs sent resets ($ra + $rb): a SYN arrived unsolicited"
lab_log "ok: no reset from either NAT; role b's low-TTL SYN was aborted by Time Exceeded $aborted time(s) and re-sent"
lab_pass "reset_nat_lowttl_icmp: direct with reset NATs, no delay and routers that send Time Exceeded"
