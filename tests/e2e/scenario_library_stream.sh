#!/usr/bin/env bash
# e2e.library_stream: two programs using libholepunch.so's encrypted channel
# on their own libuv loop (examples/hp_stream.c: hp_punch_start with a code,
# hp_punch_take_stream, hp_stream_write/shutdown, on_data until on_eof),
# each behind its own port-changing NAT. Expected: both exit 0 and print the
# peer's line, which says the channel is authenticated by the code, and
# neither logs the code.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
[[ -x "$HP_BUILD_DIR/hp_stream" ]] || lab_fail "missing $HP_BUILD_DIR/hp_stream (examples/hp_stream.c): build the project first"
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

code=$("$HP_BUILD_DIR/holepunch" code)
lab_run a a env LOG_FORMAT=json "$HP_BUILD_DIR/hp_stream" "$LAB_RDV_URL" "$code" 8082
lab_run b b env LOG_FORMAT=json "$HP_BUILD_DIR/hp_stream" "$LAB_RDV_URL" "$code" 8082
lab_wait_exit a 30 || lab_fail "hp_stream a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "hp_stream b did not finish within 30 s"
lab_expect_rc a 0
lab_expect_rc b 0
for p in a b; do
  lab_expect_grep "$LAB_DIR/$p.out" '^[0-9a-f]+ \(authenticated by the code: yes\) says hi$' "hp_stream $p printed the peer's line over the authenticated channel"
  lab_expect_no_grep "$LAB_DIR/$p.err" "$code" "hp_stream $p did not log the code"
done
lab_pass "library_stream: two hp_stream callers behind two NATs got one authenticated encrypted channel"
