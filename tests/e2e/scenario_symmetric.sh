#!/usr/bin/env bash
# e2e.symmetric: both workers behind port-randomizing NATs (nft "masquerade
# random,fully-random": every connection gets a new random port, so the
# mapping the rendezvous saw is not the one the punch SYNs get). A direct TCP
# connection is impossible. Expected: both workers give up after
# P2P_CONNECT_TIMEOUT=5 s with exit code 5, within the timeout plus a margin
# for pairing (the bound asserts that they stop by themselves; it is not a
# speed measurement), log a give-up line naming what they tried, print no
# greeting and log no direct connection.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata random
lab_add_nat natb random
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

timeout=5
margin=15
room="symmetric-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=$timeout RELAY_AFTER=off
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=$timeout RELAY_AFTER=off
lab_wait_exit a $((timeout + margin)) || lab_fail "worker a did not give up within ${timeout}+${margin} s"
lab_wait_exit b $((timeout + margin)) || lab_fail "worker b did not give up within ${timeout}+${margin} s"

for w in a b; do
  lab_expect_rc $w 5
  lab_expect_grep "$LAB_DIR/$w.err" "$LAB_MSG_GIVEUP" "$w logged why it gave up"
  [[ $(lab_json_count $w "$LAB_MSG_DIRECT") == 0 ]] || lab_fail "$w logged a direct connection although it exited 5"
  [[ ! -s "$LAB_DIR/$w.out" ]] || lab_fail "$w printed something on stdout although no peer connected: $(head -c 200 "$LAB_DIR/$w.out")"
  lab_log "$w gave up after ${LAB_ELAPSED[$w]} s: $(grep -E "$LAB_MSG_GIVEUP" "$LAB_DIR/$w.err" | tail -n 1)"
done
lab_expect_give_up_details a b
lab_expect_give_up_details b a
lab_pass "symmetric: both gave up with exit 5"
