#!/usr/bin/env bash
# e2e.portmap_worker: the worker's PORT_MAPPING=1 (src/lib/discover/) on a
# port-randomizing NAT with miniupnpd: worker u behind NAT U ("random":
# every destination gets a new port, so /whoami's mapping is useless to the
# peer and two such NATs never connect, e.g. e2e.symmetric), worker b behind
# a port-changing NAT B. u asks its router for a mapping of its punch port
# and offers it as a candidate; b dials it and gets through: exit 0 both,
# direct, b connected to the mapping the router granted (NAT U's WAN
# address). After u ended, miniupnpd has no rule left (u removed it).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat natu random r1
lab_add_nat natb changing r2
lab_add_worker_host u natu
lab_add_worker_host b natb
lab_nat_upnp natu
lab_describe >&2
lab_start_rendezvous

room="pmw-$$"
lab_run_worker u u "$room" PORT_MAPPING=1
lab_run_worker b b "$room"
lab_wait_exit u 30 || lab_fail "worker u did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
ext=$(lab_json_field u '^the router maps .* to our punch port' mapped)
[[ $ext == "${LAB_IP[natu]}:"* ]] || lab_fail "u: no router mapping on NAT U's WAN address (got '$ext')"
lab_log "ok: u's router mapped its punch port to $ext"
lab_expect_direct b u "$ext"
lab_expect_direct u b
n=50
while [[ -n "$(lab_upnp_rules natu)" ]]; do
  ((n-- > 0)) || lab_fail "u's mapping is still on the router after u ended: $(lab_upnp_rules natu)"
  sleep 0.1
done
lab_log "ok: no miniupnpd rule left after u ended"
lab_pass "portmap_worker: u behind a port-randomizing NAT with UPnP <-> b direct via $ext"
