#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.relay_behind_proxy: the Cloud Run situation (nginx in front of the
# rendezvous, e2e.behind_proxy) with both workers behind port-randomizing
# NATs: no direct connection is possible, and the relay must work through
# the same proxy and port as signaling (a plain WebSocket upgrade on
# /relay). Expected: both workers exit 0 with the other's greeting and log
# a relayed connection; nginx's access log shows both GET /relay upgrades
# (101); the rendezvous relayed the pair.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
# shellcheck source=lib/proxy.sh
source "$(dirname "$0")/lib/proxy.sh"

lab_create
lab_require_binaries
lab_add_nat nata random
lab_add_nat natb random
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_start_rendezvous_behind_proxy
lab_describe >&2
lab_expect_proxy_only b

room="relay-proxy-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=1
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=1
lab_wait_exit a 40 || lab_fail "worker a did not finish within 40 s"
lab_wait_exit b 40 || lab_fail "worker b did not finish within 40 s"
for w in a b; do
  other=$([[ $w == a ]] && echo b || echo a)
  lab_expect_rc $w 0
  lab_expect_grep "$LAB_DIR/$w.out" "^peer $other says: " "$w printed $other's greeting"
  [[ $(lab_json_count $w '^connected to .*: relayed \(no direct connection: ') == 1 ]] ||
    lab_fail "$w did not log a relayed connection with the reason"
done
[[ $(grep -c '"GET /relay HTTP/1.1" 101' "$LAB_DIR/nginx.out") == 2 ]] ||
  lab_fail "nginx did not pass two /relay upgrades: $(grep relay "$LAB_DIR/nginx.out" | head -n 4)"
lab_log "ok: both /relay upgrades went through nginx"
lab_expect_grep "$LAB_DIR/rendezvous.err" '"message":"relaying between (a and b|b and a)"' \
  "the rendezvous relayed the pair"
lab_pass "relay_behind_proxy: relayed greet through nginx, same port as signaling"
