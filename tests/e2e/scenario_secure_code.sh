#!/usr/bin/env bash
# e2e.secure_code: greet over the secure channel, authenticated by a code,
# both workers behind port-changing NATs.
# 1. The same code on both sides (ROOM left at its default, so the room is
#    derived from the code): both exit 0, print the peer's greeting, log that
#    the peer proved it knows the code, and met in a room "hp1.<hash>" (the
#    rendezvous never sees the code).
# 2. Different codes in one explicit room: both are paired, both refuse the
#    handshake with the plain-words message, rejoin and wait for the right
#    peer until WS_RECV_TIMEOUT, then exit 7; no greeting is printed.
# 3. A stranger that joins the code's room by its name, without the code:
#    the worker with the code refuses it (same message), the stranger is told
#    the peer has a code; neither prints a greeting.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

code1=$("$HP_BUILD_DIR/holepunch" code)
code2=$("$HP_BUILD_DIR/holepunch" code)
[[ $code1 =~ ^[0-9a-z]{6}(-[0-9a-z]{6}){3}-[0-9a-z]{5}$ ]] || lab_fail "holepunch code printed '$code1'"
[[ $code1 != "$code2" ]] || lab_fail "two codes are equal"
msg='the peer does not know the code: wrong code, or someone else joined the room'

# 1. Right code.
lab_run_worker a a default HOLEPUNCH_CODE="$code1"
lab_run_worker b b default HOLEPUNCH_CODE="$code1"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_expect_direct a b
lab_expect_direct b a
for w in a b; do
  lab_expect_grep "$LAB_DIR/$w.err" '"message": *"secure channel up: [a-z]+ proved it knows the code"' "$w: the peer proved it knows the code"
  lab_expect_grep "$LAB_DIR/$w.err" '"room": *"hp1\.[0-9a-f]{32}"' "$w: the room is derived from the code"
  lab_expect_no_grep "$LAB_DIR/$w.err" "$code1" "$w: the code itself is not logged"
done
lab_expect_no_grep "$LAB_DIR/rendezvous.err" "$code1" "the rendezvous never saw the code"
room1=$(lab_json_field a '^registered in room ' room)

# 2. Wrong code: a and b meet in one explicit room with different codes.
room="secure-wrong-$$"
lab_run_worker a2 a "$room" HOLEPUNCH_CODE="$code1" WS_RECV_TIMEOUT=8
lab_run_worker b2 b "$room" HOLEPUNCH_CODE="$code2" WS_RECV_TIMEOUT=8
lab_wait_exit a2 40 || lab_fail "worker a2 did not finish within 40 s"
lab_wait_exit b2 40 || lab_fail "worker b2 did not finish within 40 s"
for w in a2 b2; do
  lab_expect_rc $w 7
  lab_expect_grep "$LAB_DIR/$w.err" "\"message\": *\"$msg\"" "$w said the peer does not know the code"
  lab_expect_no_grep "$LAB_DIR/$w.out" "$LAB_GREETING_PREFIX" "$w printed no greeting"
  lab_expect_no_grep "$LAB_DIR/$w.err" 'secure channel up' "$w never had a channel"
  lab_expect_grep "$LAB_DIR/$w.err" 'waiting for the right peer' "$w went on waiting for the right peer"
done

# 3. A stranger in the code's room (its name, no code).
lab_run_worker a3 a default HOLEPUNCH_CODE="$code1" WS_RECV_TIMEOUT=6
lab_run_worker c3 b "$room1" WS_RECV_TIMEOUT=6
lab_wait_exit a3 40 || lab_fail "worker a3 did not finish within 40 s"
lab_wait_exit c3 40 || lab_fail "stranger c3 did not finish within 40 s"
lab_expect_rc a3 7
lab_expect_grep "$LAB_DIR/a3.err" '"message": *"the peer does not know the code: it has none' "a3 refused the stranger without the code"
lab_expect_grep "$LAB_DIR/c3.err" '"message": *"the peer has a code and we have none' "the stranger was told the peer has a code"
lab_expect_no_grep "$LAB_DIR/a3.out" "$LAB_GREETING_PREFIX" "a3 printed no greeting"
lab_expect_no_grep "$LAB_DIR/c3.out" "$LAB_GREETING_PREFIX" "the stranger printed no greeting"
lab_pass "secure_code: the right code greets over the secure channel; a wrong code and a stranger are refused (exit 7) with the plain-words message"
