#!/usr/bin/env bash
# e2e.delay_far_rdv: nearby peers (1.5 ms per WAN link: 6 ms round trip)
# behind reset-sending port-changing NATs, and a far, jittery rendezvous
# (its link 40/30: 40-70 ms each way). The two `peer` messages arrive up to
# ~30 ms apart, much more than the 3 ms between the NATs, so starting on
# receipt makes the first SYN reach the other NAT before that one has sent
# its own: a reset (the race of e2e.reset_nat). With the synchronised start
# (issue 9: the rendezvous' round-trip pings, the workers' clock pings, a
# common instant `start_at_us`, retries on a common grid) both workers must
# connect directly: exit 0, each to the other's mapping, and both logged a
# synchronised start. The resets the NATs sent and the times are printed
# (bench/traversal.sh "resetfar" has the rates: 30/30).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create --rdv-link 40/30
lab_require_binaries
lab_add_nat nata changing r1 --wan 1.5 --filter reject
lab_add_nat natb changing r2 --wan 1.5 --filter reject
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="far-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=4
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=4
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
for w in a b; do
  [[ -n $(lab_json_field $w '^synchronised start in ' start_in_us) ]] ||
    lab_fail "$w: no synchronised start (the rendezvous sent no start_at_us)"
done
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
lab_log "resets sent: NAT A $(lab_nat_resets nata), NAT B $(lab_nat_resets natb);" \
  "from peer to the session lines checked: a $(lab_json_field a "$LAB_MSG_DIRECT" elapsed_ms) ms," \
  "b $(lab_json_field b "$LAB_MSG_DIRECT" elapsed_ms) ms; to the secure channel up:" \
  "a $(lab_json_field a "$LAB_MSG_SECURED" elapsed_ms) ms, b $(lab_json_field b "$LAB_MSG_SECURED" elapsed_ms) ms"
lab_pass "delay_far_rdv: direct both ways with a synchronised start"
