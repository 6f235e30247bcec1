#!/usr/bin/env bash
# e2e.delay_wan20: reset-sending port-changing NATs on both sides, 20 ms one
# way on each NAT's WAN link (emulated, tests/e2e/lib/linkemu.c): 80 ms round
# trip between the peers, 40 ms between each worker and the rendezvous
# (which hangs off core router r1). Both `peer` messages leave the rendezvous
# in one loop turn and arrive about 20 ms apart at most, well within the 40 ms
# one-way delay between the NATs, so each SYN opens its own NAT before the
# other's arrives: the crossing SYNs meet, no reset. Expected: direct, both.
# The times from `peer` to the session lines and to the secure channel are printed (figures,
# not asserted; bench/traversal.sh "reset20" has the distribution).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing r1 --wan 20 --filter reject
lab_add_nat natb changing r2 --wan 20 --filter reject
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="wan20-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=8
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=8
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
lab_log "time from peer to the session lines checked: a $(lab_json_field a "$LAB_MSG_DIRECT" elapsed_ms) ms," \
  "b $(lab_json_field b "$LAB_MSG_DIRECT" elapsed_ms) ms; to the secure channel up:" \
  "a $(lab_json_field a "$LAB_MSG_SECURED" elapsed_ms) ms, b $(lab_json_field b "$LAB_MSG_SECURED" elapsed_ms) ms (path round trip 80 ms);" \
  "resets sent: NAT A $(lab_nat_resets nata), NAT B $(lab_nat_resets natb)"
lab_pass "delay_wan20: direct across 20 ms WAN links and reset-sending NATs"
