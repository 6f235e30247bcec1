#!/usr/bin/env bash
# e2e.reset_nat_lowttl: the case timing alone cannot do (e2e.reset_nat: two
# reset-sending NATs ~0.05 ms apart), with the low-TTL first SYN on a quiet
# path: LOW_TTL_SYN=2 on both workers, core routers that send no ICMP Time
# Exceeded (lab_quiet_routers). Role b's first SYN to a's mapping leaves with
# TTL 2 and expires at its core router, after opening NAT B; a's SYN, 10 ms
# later, passes NAT B into b's connecting socket. Asserted: both exit 0,
# direct to each other's mapping; b logged its low-TTL SYN; neither NAT sent
# a single reset (nothing unsolicited reached either); the routers dropped
# at least one Time Exceeded of their own (the SYN did expire there).
# (bench/traversal.sh reset0ttl: 30/30; the same with routers that send
# Time Exceeded: e2e.reset_nat_lowttl_icmp, docs/lab.md.)
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing r1 --filter reject
lab_add_nat natb changing r2 --filter reject
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_quiet_routers
lab_describe >&2
lab_start_rendezvous

room="lowttl-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=4 LOW_TTL_SYN=2
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=4 LOW_TTL_SYN=2
lab_wait_exit a 20 || lab_fail "worker a did not finish within 4+16 s"
lab_wait_exit b 20 || lab_fail "worker b did not finish within 4+16 s"
role_b=a
[[ $(lab_json_field a '^paired with' role) == b ]] || role_b=b
[[ $(lab_json_field "$role_b" '^first SYN to .* with TTL' ttl) == 2 ]] ||
  lab_fail "$role_b (role b) logged no first SYN with TTL 2"
lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
ra=$(lab_nat_resets nata) rb=$(lab_nat_resets natb)
((ra == 0 && rb == 0)) || lab_fail "the NATs sent resets ($ra + $rb): a SYN arrived unsolicited"
te=0
for r in r1 r2; do
  n=$(lab_exec "$r" nft list chain inet hpquiet output | sed -n 's/.*time-exceeded counter packets \([0-9]*\).*/\1/p' | head -n 1)
  te=$((te + ${n:-0}))
done
((te > 0)) || lab_fail "no router dropped a Time Exceeded: did the low-TTL SYN expire in the core?"
lab_log "ok: no reset from either NAT; the core routers swallowed $te Time Exceeded"
lab_pass "reset_nat_lowttl: direct with reset NATs and no delay, via a low-TTL first SYN on a quiet path"
