#!/usr/bin/env bash
# e2e.library: two programs using libholepunch.so through the public header
# (examples/hp_pair.c, hp_connect), each behind its own port-changing NAT.
# Expected: both get a connected, authenticated socket to each other, trade a
# line over it and exit 0; this proves the shared library's exported API.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
[[ -x "$HP_BUILD_DIR/hp_pair" ]] || lab_fail "missing $HP_BUILD_DIR/hp_pair (examples/hp_pair.c): build the project first"
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="library-$$"
lab_run a a env LOG_FORMAT=json "$HP_BUILD_DIR/hp_pair" "$LAB_RDV_URL" "$room" 8082
lab_run b b env LOG_FORMAT=json "$HP_BUILD_DIR/hp_pair" "$LAB_RDV_URL" "$room" 8082
lab_wait_exit a 30 || lab_fail "hp_pair a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "hp_pair b did not finish within 30 s"
lab_expect_rc a 0
lab_expect_rc b 0
for p in a b; do
  grep -Eq '^connected to [A-Za-z0-9._-]+: library [0-9]+\.[0-9]+\.[0-9]+ says hi$' "$LAB_DIR/$p.out" ||
    lab_fail "hp_pair $p did not print the peer's line; stdout: $(cat "$LAB_DIR/$p.out")"
done
lab_pass "library: two hp_connect() callers behind two NATs got one direct connection"
