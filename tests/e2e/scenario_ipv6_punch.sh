#!/usr/bin/env bash
# e2e.ipv6_punch: dual-stack candidates and punching over IPv6 (issue 9).
# Two workers behind port-randomizing IPv4 NATs ("random": IPv4 can never
# be punched between them, e2e.symmetric) that are also stateful IPv6
# firewalls (unsolicited inbound dropped; A's resets, filter reject), the
# lab's dual stack (lab_enable_ipv6, 2001:db8::/32). The rendezvous is
# reached over IPv4 only. Each worker offers its global IPv6 address as a
# host candidate next to its IPv4 ones, listens on [::]:8082 as well, and
# dials the peer's IPv6 candidate from [::]:8082: the two SYNs open both
# firewalls (a simultaneous open, as through two port-preserving NATs).
# Asserted: exit 0 both, direct to the peer's [IPv6]:8082, each offered its
# IPv6 address as a candidate.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_enable_ipv6
lab_add_nat nata random r1 --filter reject
lab_add_nat natb random r2
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="v6-$$"
lab_run_worker a a "$room" P2P_CONNECT_TIMEOUT=8
lab_run_worker b b "$room" P2P_CONNECT_TIMEOUT=8
lab_wait_exit a 30 || lab_fail "worker a did not finish within 30 s"
lab_wait_exit b 30 || lab_fail "worker b did not finish within 30 s"
for w in a b; do
  lab_expect_grep "$LAB_DIR/$w.err" "host \\[${LAB_IP6[$w]}\\]:8082" "$w offered its IPv6 address [${LAB_IP6[$w]}]:8082"
done
lab_expect_direct a b "[${LAB_IP6[b]}]:8082"
lab_expect_direct b a "[${LAB_IP6[a]}]:8082"
lab_pass "ipv6_punch: a <-> b direct over IPv6 through two stateful firewalls (IPv4: two symmetric NATs)"
