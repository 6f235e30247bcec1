#!/usr/bin/env bash
# e2e.reset_nat: both workers behind port-changing NATs that answer
# unsolicited inbound TCP with a reset (filter "reject"), no delay. The punch
# meets only if both SYNs cross between the NATs, whose one-way delay here is
# microseconds: a SYN that arrives first is reset by the peer's NAT, and the
# reset closes our own NAT's fresh entry too. The synchronised start (issue 9)
# aims both first SYNs at one instant, good to a few ms, not microseconds;
# after a refusal from such a near NAT both engines re-SYN at once, then once
# per ms (punch_dial.c, fast_retry), so each NAT stays open most of the
# time, then fall back to the common retry grid. bench/traversal.sh "reset0"
# measures how often that meets (docs/lab.md): most pairings, not all.
#
# Asserted (what holds whichever way the race goes): the NATs really sent
# resets or the first SYNs crossed; both workers end within the bound and
# agree: both direct to the other's mapping, or both exit 5 with a give-up
# summary listing their attempts to the other's mapping.
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
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=4
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=4
lab_wait_exit a 20 || lab_fail "worker a did not finish within 4+16 s"
lab_wait_exit b 20 || lab_fail "worker b did not finish within 4+16 s"
ra=$(lab_nat_resets nata) rb=$(lab_nat_resets natb)
lab_expect_pair_outcome a b
refused=$(($(lab_json_count a '^connect to .*: refused$') + $(lab_json_count b '^connect to .*: refused$')))
if [[ $LAB_OUTCOME == gave-up ]]; then
  ((ra + rb > 0 && refused > 0)) ||
    lab_fail "the workers gave up, but the NATs sent $ra+$rb resets and the workers saw $refused refusals"
fi
lab_log "today's behaviour: $LAB_OUTCOME; resets sent by NAT A $ra, NAT B $rb; connects refused $refused"
lab_pass "reset_nat: $LAB_OUTCOME (resets $ra+$rb)"
