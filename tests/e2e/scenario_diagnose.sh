#!/usr/bin/env bash
# e2e.diagnose: `holepunch diagnose --json` (src/cli/diagnose.c) behind each
# NAT type and filter mode of the lab, with the rendezvous' second observer
# (OBSERVER_PORT=8081, same address) and one coturn STUN server on a public
# host (another address). Asserted per host, from the JSON object:
#  - p behind `preserving` (drop): public_addr = NAT P's WAN address,
#    port_preserved true, mapping endpoint-independent (certain: two
#    addresses agree), filtering drop, hairpin false;
#  - c behind `changing` + `reject`: port_preserved false, endpoint-
#    independent, filtering reset, hairpin false;
#  - x behind `random` (symmetric): address-and-port-dependent (the
#    rendezvous' two ports already saw two mappings), filtering drop, and
#    the summary says the relay is needed for peers behind NATs;
#  - d behind `changing` (drop), y behind `random` + `reject`, q behind
#    `preserving` + `reject`: the other combinations of mapping and filter
#    (drop / reset reported as configured, the mapping as above);
#  - a host on a public address: behind_nat false, filtering open.
# Plus the plain-text report of x names the mapping and the filtering.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

command -v turnserver >/dev/null || lab_fail "turnserver is not installed (coturn; run scripts/deps.sh)"
lab_create
lab_require_binaries
lab_add_nat natp preserving r1
lab_add_nat natc changing r2 --filter reject
lab_add_nat natx random r1
lab_add_nat natd changing r2
lab_add_nat naty random r1 --filter reject
lab_add_nat natq preserving r2 --filter reject
lab_add_worker_host p natp
lab_add_worker_host c natc
lab_add_worker_host x natx
lab_add_worker_host d natd
lab_add_worker_host y naty
lab_add_worker_host q natq
lab_add_public_host pub
lab_add_public_host pub2
lab_describe >&2
lab_start_rendezvous OBSERVER_PORT=8081
lab_wait_listen rdv 8081 10 rendezvous || lab_fail "the rendezvous does not listen on OBSERVER_PORT 8081"

conf="$LAB_DIR/stun.conf"
cat >"$conf" <<CONF
listening-ip=${LAB_IP[pub]}
listening-port=3478
stun-only
no-tls
no-dtls
no-cli
no-udp
userdb=$LAB_DIR/stun.db
pidfile=$LAB_DIR/stun.pid
log-file=stdout
simple-log
CONF
lab_run stun pub timeout 60 turnserver -c "$conf"
lab_wait_listen pub 3478 10 stun || lab_fail "coturn did not listen on ${LAB_IP[pub]}:3478"

# diag HOST [VAR=VALUE...]: the JSON report of HOST into J.
diag() {
  local host=$1
  shift
  J=$(lab_exec "$host" env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8082 \
    STUN_SERVERS="${LAB_IP[pub]}:3478" LOG_FORMAT=json LOG_LEVEL=warning "$@" \
    timeout 30 "$HP_BUILD_DIR/holepunch" diagnose --json 2>"$LAB_DIR/diag-$host.err") ||
    lab_fail "diagnose on $host failed ($?): $(cat "$LAB_DIR/diag-$host.err")"
  echo "  $host: $J" >&2
}
# jf FIELD: a field of J as JSON text.
jf() { "$LAB_PY" -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$J" "$1"; }
# expect HOST FIELD JSON...
expect() {
  local host=$1 f=$2 want=$3 got
  got=$(jf "$f")
  [[ $got == "$want" ]] || lab_fail "$host: $f is $got, expected $want (report: $J)"
}

diag p
expect p public_addr "\"${LAB_IP[natp]}\""
expect p port_preserved true
expect p mapping '"endpoint-independent"'
expect p mapping_certain true
expect p filtering '"drop"'
expect p hairpin false
lab_log "ok: preserving NAT: ${LAB_IP[natp]}, port preserved, endpoint-independent, drop, no hairpin"

diag c
expect c public_addr "\"${LAB_IP[natc]}\""
expect c port_preserved false
expect c mapping '"endpoint-independent"'
expect c filtering '"reset"'
expect c hairpin false
lab_log "ok: changing NAT with reject: port changed, endpoint-independent, reset"

diag x
expect x public_addr "\"${LAB_IP[natx]}\""
expect x mapping '"address-and-port-dependent"'
expect x filtering '"drop"'
grep -q "relay is used" <<<"$(jf summary)" || lab_fail "x: the summary does not mention the relay: $(jf summary)"
lab_log "ok: random NAT: address-and-port-dependent, drop; summary: relay for NATed peers"

diag d
expect d port_preserved false
expect d mapping '"endpoint-independent"'
expect d filtering '"drop"'
diag y
expect y mapping '"address-and-port-dependent"'
expect y filtering '"reset"'
diag q
expect q port_preserved true
expect q mapping '"endpoint-independent"'
expect q filtering '"reset"'
lab_log "ok: changing/drop, random/reset and preserving/reset reported as configured"

diag pub2
expect pub2 behind_nat false
expect pub2 filtering '"open"'
lab_log "ok: public host: no NAT, inbound open"

txt=$(lab_exec x env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" LOG_LEVEL=warning timeout 30 \
  "$HP_BUILD_DIR/holepunch" diagnose 2>/dev/null) || lab_fail "plain diagnose on x failed"
grep -Eq '^mapping: +address-and-port-dependent' <<<"$txt" || lab_fail "x plain report: $txt"
grep -Eq '^unsolicited inbound: +dropped' <<<"$txt" || lab_fail "x plain report: $txt"
lab_log "ok: the plain report of x names the mapping and the filtering"
lab_pass "diagnose: preserving/drop, changing/reset, random/drop and public hosts reported as they are"
