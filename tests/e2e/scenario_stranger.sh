#!/usr/bin/env bash
# e2e.stranger: worker c has a public address, so anyone can connect to its
# listening port. Before its peer shows up, three strangers (python, on
# another public host) connect: one sends garbage, one sends a well-formed
# peer hello with a wrong session, one connects and says nothing. Expected:
# c takes none of them for the peer; then the real peer b (behind a NAT)
# arrives, the pairing succeeds with b's public mapping (exit 0 for both),
# c's log shows the rejected stranger connections, and the strangers were
# disconnected without receiving a single byte (the session must not leak).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_public_host c
lab_add_public_host s
lab_add_nat natb changing
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")
room="stranger-$$"
lab_run_worker c c "$room" WS_RECV_TIMEOUT=30
lab_wait_listen c 8082 10 c || lab_fail "worker c is not listening on 8082"

to="${LAB_IP[c]}:8082"
lab_run s_garbage s "${S[@]}" garbage --to "$to" --timeout 25 \
  --data '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\nHost: x\r\n\r\n'
lab_run s_session s "${S[@]}" garbage --to "$to" --timeout 25 \
  --data 'HOLEPUNCH/1 0123456789abcdef0123456789abcdef mallory\n'
lab_run s_silent s "${S[@]}" garbage --to "$to" --timeout 25 --data ''
for p in s_garbage s_session s_silent; do
  lab_wait_log "$p" '^sent' 5 || lab_fail "stranger $p could not connect to $to"
done
lab_log "three strangers are connected to c; now the real peer"

lab_run_worker b b "$room"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_wait_exit c 30 || lab_fail "worker c did not finish within 30 s"

mb=$(lab_worker_mapping b)
lab_expect_direct c b "$mb"
lab_expect_direct b c "${LAB_IP[c]}:8082"

for p in s_garbage s_session s_silent; do
  lab_wait_exit "$p" 30 || lab_fail "stranger $p did not stop"
  lab_expect_grep "$LAB_DIR/$p.out" '^closed' "c closed the connection of $p"
  # An inbound connection is answered only after it proved the session:
  # nothing, in particular not the session, may reach a stranger.
  lab_expect_grep "$LAB_DIR/$p.out" '^closed after receiving 0 bytes' "c sent nothing to $p"
done
# Each stranger that sent something is named in a rejection line of c's log,
# with its own address and port.
for p in s_garbage s_session; do
  from=$(sed -n 's/^sent [0-9]* bytes from //p' "$LAB_DIR/$p.err")
  [[ -n "$from" ]] || lab_fail "stranger $p did not report its address"
  n=$(lab_json_count_field c "$LAB_MSG_REJECT" addr "$from")
  ((n == 1)) || lab_fail "c's log has $n rejection lines for $p ($from), expected 1"
  lab_log "ok: c rejected $p ($from): $(lab_json_field_where c "$LAB_MSG_REJECT" addr "$from" why)"
done
lab_pass "stranger: strangers rejected, c <-> b direct ($mb)"
