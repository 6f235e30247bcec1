#!/usr/bin/env bash
# e2e.reset_nat: both workers behind port-changing NATs that answer
# unsolicited inbound TCP with a reset (filter "reject"), no delay. The punch
# cannot rely on the two SYNs crossing between the NATs: their one-way delay
# here is microseconds (the reset even comes back inside connect()). After
# the first refusal from such a near NAT, role b opens its own NAT with a
# SYN of TTL 2 (it expires at the core router, before the peer's NAT) and
# role a dials 10 ms later into it (punch_dial.c, fast_retry); the re-SYN
# run and the common retry grid follow if that guess fails
# (bench/traversal.sh "reset0": 30/30; docs/lab.md).
#
# Asserted: both exit 0, direct to each other's mapping (before issue 9's
# work most runs gave up here). Printed: resets, refusals, near openings.
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

room="reset-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=4 LOG_LEVEL=debug
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=4 LOG_LEVEL=debug
lab_wait_exit a 20 || lab_fail "worker a did not finish within 4+16 s"
lab_wait_exit b 20 || lab_fail "worker b did not finish within 4+16 s"
ra=$(lab_nat_resets nata) rb=$(lab_nat_resets natb)
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
refused=$(($(lab_json_count a '^connect to .*: refused$') + $(lab_json_count b '^connect to .*: refused$')))
near=$(($(lab_json_count a '^refused by a near NAT: opening ours') + $(lab_json_count b '^refused by a near NAT: opening ours')))
lab_log "direct; resets sent by NAT A $ra, NAT B $rb; connects refused $refused; near-NAT openings $near"
lab_pass "reset_nat: direct (resets $ra+$rb, refused $refused)"
