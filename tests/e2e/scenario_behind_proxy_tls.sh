#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.behind_proxy_tls: the rendezvous behind nginx with TLS, as on Cloud Run
# (https:// and wss://), with a test CA the scenario makes (openssl) and
# gives the workers in CA_FILE. The worker's WebSocket client does its own
# TLS (src/net/tls_client.c: OpenSSL through memory BIOs on the loop), so
# this is the check that it verifies the peer and speaks TLS to a real
# server. Both workers behind port-preserving NATs.
# Expected:
# - src/net's client (tests/tools/hp_wsc_probe) opens and politely closes
#   wss:// through nginx with the test CA; with an unrelated CA it refuses
#   with a sentence naming the certificate problem and CA_FILE; wss:// to
#   the plain-HTTP backend says the server does not speak TLS;
# - worker a (wss://) and worker b (https://) with CA_FILE = the test CA get
#   their direct connection (exit 0, greetings), and nginx passed their
#   WebSocket upgrades (status 101 in its access log);
# - worker c with an unrelated CA exits 3 with an ERROR line about the
#   certificate, within its timeouts.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
# shellcheck source=lib/proxy.sh
source "$(dirname "$0")/lib/proxy.sh"

lab_create
lab_require_binaries
[[ -x $HP_BUILD_DIR/hp_wsc_probe ]] || lab_fail "$HP_BUILD_DIR/hp_wsc_probe is missing (build the tree)"
command -v openssl >/dev/null 2>&1 || lab_fail "openssl is not installed (scripts/deps.sh: libssl-dev pulls it in)"
lab_add_nat nata preserving
lab_add_nat natb preserving
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_add_public_host c
lab_proxy_make_ca
LAB_RDV_URL="https://$LAB_RDV_IP:$LAB_RDV_PORT"
lab_start_rendezvous_behind_proxy
lab_describe >&2
other_ca=$LAB_DIR/tls/other-ca.pem
probe=$HP_BUILD_DIR/hp_wsc_probe

# --- the WebSocket client alone -----------------------------------------------
out=$(lab_exec c timeout 10 "$probe" "wss://$LAB_RDV_IP:$LAB_RDV_PORT" "$LAB_PROXY_TLS_CA" 2>&1) ||
  lab_fail "hp_wsc_probe wss:// with the test CA failed: $out"
if ! grep -q '^open$' <<<"$out" || ! grep -q '^closed: .*(code 1000)$' <<<"$out"; then
  lab_fail "hp_wsc_probe wss:// did not open and close politely: $out"
fi
lab_log "ok: wss:// through nginx with the test CA: $(tr '\n' ' ' <<<"$out")"

rc=0
out=$(lab_exec c timeout 10 "$probe" "wss://$LAB_RDV_IP:$LAB_RDV_PORT" "$other_ca" 2>&1) || rc=$?
((rc == 3)) || lab_fail "hp_wsc_probe with an unrelated CA: exit $rc, expected 3: $out"
grep -q "TLS certificate is not trusted: .*(check CA_FILE" <<<"$out" ||
  lab_fail "hp_wsc_probe with an unrelated CA: unclear error: $out"
lab_log "ok: an unrelated CA is refused: $out"

rc=0
out=$(lab_exec rdv timeout 10 "$probe" "wss://127.0.0.1:$LAB_PROXY_BACKEND_PORT" "$LAB_PROXY_TLS_CA" 2>&1) || rc=$?
if ((rc != 3)) || ! grep -q 'the server does not speak TLS; use http:// or ws://' <<<"$out"; then
  lab_fail "hp_wsc_probe wss:// to the plain backend: exit $rc: $out"
fi
lab_log "ok: wss:// to a plain-HTTP server: $out"

# --- workers --------------------------------------------------------------------
internal=8082
room="tls-$$"
lab_run_worker a a "$room" INTERNAL_TCP_PORT=$internal CA_FILE="$LAB_PROXY_TLS_CA" \
  RENDEZVOUS_SERVICE_URL="wss://$LAB_RDV_IP:$LAB_RDV_PORT"
lab_run_worker b b "$room" INTERNAL_TCP_PORT=$internal CA_FILE="$LAB_PROXY_TLS_CA" \
  RENDEZVOUS_SERVICE_URL="https://$LAB_RDV_IP:$LAB_RDV_PORT"
lab_run_worker c c "other-$$" CA_FILE="$other_ca"
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
lab_wait_exit c 30 || lab_fail "worker c (wrong CA) did not exit within 30 s (hangs)"

lab_expect_direct a b "${LAB_IP[natb]}:$internal"
lab_expect_direct b a "${LAB_IP[nata]}:$internal"
for w in a b; do
  nat=nat$w
  awk -v ip="${LAB_IP[$nat]}" '$1 == ip && $3 == "\"GET" && $4 == "/ws" && $6 == 101 { f = 1 } END { exit !f }' \
    "$LAB_DIR/nginx.out" || lab_fail "nginx logged no upgraded GET /ws (101) from $w (${LAB_IP[$nat]})"
done
lab_log "ok: nginx passed both workers' WebSocket upgrades over TLS"

lab_expect_rc c 3
msg=$(lab_json_field c 'certificate' message)
[[ -n $msg ]] || lab_fail "worker c (wrong CA) logged no certificate error: $(grep -m1 ERROR "$LAB_DIR/c.err")"
lab_log "ok: worker c with an unrelated CA: exit 3: $msg"
lab_pass "behind_proxy_tls: a <-> b direct with the rendezvous behind nginx over TLS (test CA); wrong CA refused"
