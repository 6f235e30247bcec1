#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.behind_proxy_changing: the Cloud Run situation (nginx in front of the
# rendezvous, as in e2e.behind_proxy) with both workers behind PORT-CHANGING
# NATs (nft "masquerade to :20000-30000"). This documents what users get
# behind an HTTPS front end: the rendezvous cannot see the port, the worker
# falls back to public ip + INTERNAL_TCP_PORT, and that guess is wrong here
# (nginx saw the whoami request come from a port in 20000-30000), so each
# worker punches at a port nobody listens on.
# Expected: both exit 5 within P2P_CONNECT_TIMEOUT=5 s plus a margin for
# pairing (a bound that they stop by themselves, not a speed measurement);
# the give-up line says the port was not observable ("port_preserved": null,
# "port not observable" in the message) and names the peer's guessed mapping
# with its connect attempts; no greeting, no direct connection.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
# shellcheck source=lib/proxy.sh
source "$(dirname "$0")/lib/proxy.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_nat natb changing
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_start_rendezvous_behind_proxy
lab_describe >&2

lab_expect_proxy_only b
lab_expect_whoami_via_proxy a
lab_expect_whoami_via_proxy b

internal=8082
timeout=5
margin=15
room="proxy-changing-$$"
lab_run_worker a a "$room" INTERNAL_TCP_PORT=$internal P2P_CONNECT_TIMEOUT=$timeout RELAY_AFTER=off
lab_run_worker b b "$room" INTERNAL_TCP_PORT=$internal P2P_CONNECT_TIMEOUT=$timeout RELAY_AFTER=off
lab_wait_exit a $((timeout + margin)) || lab_fail "worker a did not give up within ${timeout}+${margin} s"
lab_wait_exit b $((timeout + margin)) || lab_fail "worker b did not give up within ${timeout}+${margin} s"

for w in a b; do
  nat=nat$w
  guess="${LAB_IP[$nat]}:$internal"
  fb=$(lab_json_field $w "$LAB_MSG_NO_PORT" mapped)
  [[ -n $fb ]] || lab_fail "$w did not log the fallback /$LAB_MSG_NO_PORT/"
  [[ $fb == "$guess" ]] || lab_fail "$w's fallback mapping is '$fb', expected $guess (public ip + INTERNAL_TCP_PORT)"
  # What the NAT really did with the punch port: nginx's access log.
  seen=$(lab_proxy_seen "${LAB_IP[$nat]}")
  [[ $seen == "${LAB_IP[$nat]}:"* ]] || lab_fail "nginx's log has no whoami of $w from ${LAB_IP[$nat]} ('$seen')"
  port=${seen##*:}
  ((port >= 20000 && port <= 30000)) ||
    lab_fail "nginx saw $w's whoami from port $port, expected the NAT's 20000-30000"
  lab_log "ok: $w guessed $fb, its NAT really mapped port $internal to $seen"

  lab_expect_rc $w 5
  lab_expect_grep "$LAB_DIR/$w.err" "$LAB_MSG_GIVEUP" "$w logged why it gave up"
  pp=$(lab_json_field $w "$LAB_MSG_GIVEUP" port_preserved)
  [[ $pp == null ]] || lab_fail "$w's give-up line has port_preserved '$pp', expected null"
  lab_expect_grep "$LAB_DIR/$w.err" '"message":"giving up: [^"]*our mapping: '"$internal -> $guess"' \(port not observable\)' \
    "$w's give-up line says its mapping $guess was a guess (port not observable)"
  [[ $(lab_json_count $w "$LAB_MSG_DIRECT") == 0 ]] || lab_fail "$w logged a direct connection although it exited 5"
  [[ ! -s "$LAB_DIR/$w.out" ]] || lab_fail "$w printed something on stdout although no peer connected: $(head -c 200 "$LAB_DIR/$w.out")"
  lab_log "$w gave up after ${LAB_ELAPSED[$w]} s"
done
lab_expect_give_up_details a b
lab_expect_give_up_details b a
lab_expect_rdv_forwarded nata natb
lab_pass "behind_proxy_changing: both gave up with exit 5, the port was not observable"
