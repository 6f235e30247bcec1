#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.behind_proxy: the Cloud Run situation, emulated. nginx on the rendezvous
# host terminates the workers' TCP connections and proxies HTTP and the
# WebSocket to holepunch-rendezvous on 127.0.0.1 (--trust-proxy 1), appending
# X-Forwarded-For. Both workers are behind PORT-PRESERVING NATs.
# Expected:
# - the rendezvous is reachable only through nginx;
# - /whoami through nginx answers the client's NAT address from
#   X-Forwarded-For's right-most entry (not 127.0.0.1, not a forged entry)
#   and "port": null;
# - each worker logs the fallback (port not observable, mapping = its NAT's
#   address + INTERNAL_TCP_PORT), which here is right: nginx saw the whoami
#   request come from exactly that address and port;
# - the rendezvous paired the workers under their forwarded addresses;
# - the direct connection comes up anyway: exit 0 both, greetings exchanged,
#   each connected to the peer's NAT address : INTERNAL_TCP_PORT.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
# shellcheck source=lib/proxy.sh
source "$(dirname "$0")/lib/proxy.sh"

lab_create
lab_require_binaries
lab_add_nat nata preserving
lab_add_nat natb preserving
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_start_rendezvous_behind_proxy
lab_describe >&2

lab_expect_proxy_only a
lab_expect_whoami_via_proxy a
lab_expect_whoami_via_proxy b

internal=8082
room="proxy-$$"
lab_run_worker a a "$room" INTERNAL_TCP_PORT=$internal
lab_run_worker b b "$room" INTERNAL_TCP_PORT=$internal
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"

for w in a b; do
  nat=nat$w
  want="${LAB_IP[$nat]}:$internal"
  fb=$(lab_json_field $w "$LAB_MSG_NO_PORT" mapped)
  [[ -n $fb ]] || lab_fail "$w did not log the fallback /$LAB_MSG_NO_PORT/"
  [[ $fb == "$want" ]] || lab_fail "$w's fallback mapping is '$fb', expected $want (public ip + INTERNAL_TCP_PORT)"
  m=$(lab_worker_mapping $w)
  [[ $m == "$want" ]] || lab_fail "$w's mapping is '$m', expected $want"
  lab_expect_grep "$LAB_DIR/$w.err" '"message":"our mapping: [^"]*\(port not observable\)' \
    "$w's mapping line says the port was not observable"
  seen=$(lab_proxy_seen "${LAB_IP[$nat]}")
  [[ $seen == "$want" ]] ||
    lab_fail "nginx saw $w's whoami from '$seen', expected $want (a port-preserving NAT keeps $internal)"
  lab_log "ok: $w fell back to $fb; nginx saw the request from $seen: the guess is right"
done

lab_expect_rdv_forwarded nata natb
lab_expect_direct a b "${LAB_IP[natb]}:$internal"
lab_expect_direct b a "${LAB_IP[nata]}:$internal"
lab_pass "behind_proxy: a <-> b direct through port-preserving NATs, rendezvous behind nginx"
