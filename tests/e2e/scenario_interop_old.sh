#!/usr/bin/env bash
# e2e.interop_old: a worker of this tree and one of an earlier release meet
# and connect directly, in both roles, with a code. The direct connection's
# byte order changed in 0.2.1 (docs/PROTOCOL.md section 5: role b sends the
# channel's HELLO behind its hello line, role a may nominate when it
# connects); an 0.2.0 worker must still connect with a new one.
# The earlier worker is HP_OLD_BIN, or built here (about 20 s) from git
# revision HP_OLD_REV (default: tests/e2e/lib/interop_rev, the last 0.2.0
# commit) with tests/e2e/lib/build_old.sh. ctest registers this scenario
# only when that revision is in the clone's history (tests/CMakeLists.txt
# says so at configure time otherwise: a shallow clone).
# Reset-sending port-changing NATs, 20 ms per WAN link (the path where the
# new order saves time). Each pairing: the old worker as a and the new as b,
# then the other way round. Expected: exit 0 both, direct, the peer proved
# it knows the code, the greeting printed.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
old=${HP_OLD_BIN:-}
rev=${HP_OLD_REV:-$(cat "$LAB_LIB_DIR/interop_rev")}
if [[ -z $old ]]; then
  # In the lab's directory: removed with it.
  "$LAB_LIB_DIR/build_old.sh" "$rev" "$LAB_DIR/old" >&2 ||
    lab_fail "cannot build the old worker (revision $rev)"
  old=$LAB_DIR/old/build/holepunch
fi
[[ -x $old ]] || lab_fail "old worker binary $old is missing"
lab_log "old worker: $old ($("$old" --version | head -1)); new: $("$HP_BUILD_DIR/holepunch" --version | head -1)"

lab_add_nat nata changing r1 --wan 20 --filter reject
lab_add_nat natb changing r2 --wan 20 --filter reject
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

code=$("$HP_BUILD_DIR/holepunch" code)
n=0
for order in old-new new-old; do
  n=$((n + 1))
  room="interop-$$-$n"
  bin_a=$old bin_b=$HP_BUILD_DIR/holepunch
  [[ $order == old-new ]] || { bin_a=$HP_BUILD_DIR/holepunch; bin_b=$old; }
  # a waits in the room first: it gets role a.
  LAB_WORKER_BIN=$bin_a lab_run_worker "a$n" a "$room" HOLEPUNCH_CODE="$code" P2P_CONNECT_TIMEOUT=8
  lab_wait_log "a$n" 'registered in room' 15 || lab_fail "a$n did not register"
  LAB_WORKER_BIN=$bin_b lab_run_worker "b$n" b "$room" HOLEPUNCH_CODE="$code" P2P_CONNECT_TIMEOUT=8
  lab_wait_exit "a$n" 30 || lab_fail "a$n ($order) did not finish within 30 s"
  lab_wait_exit "b$n" 30 || lab_fail "b$n ($order) did not finish within 30 s"
  for w in "a$n" "b$n"; do
    [[ ${LAB_RC[$w]} == 0 ]] || lab_fail "$w ($order) exited ${LAB_RC[$w]}, not 0"
    lab_expect_grep "$LAB_DIR/$w.err" '"message": *"direct connection established"' "$w ($order) is direct"
    lab_expect_grep "$LAB_DIR/$w.err" '"message": *"secure channel up: [a-z0-9]+ proved it knows the code"' \
      "$w ($order): the peer proved it knows the code"
    lab_expect_grep "$LAB_DIR/$w.out" "says: hello from" "$w ($order) printed the peer's greeting"
  done
  lab_log "$order: role a is $( [[ $order == old-new ]] && echo old || echo new ), both direct and authenticated"
done
lab_pass "interop_old: an earlier worker and this one connect directly, in both roles"
