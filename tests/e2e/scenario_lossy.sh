#!/usr/bin/env bash
# e2e.lossy: both workers behind port-changing NATs; NAT B's forward chain
# drops 15 % of the packets it forwards, in both directions (nft "numgen
# random mod 100 < 20 drop"), so lost SYNs, data and ACKs must be recovered by
# retries and TCP retransmission. Expected: direct connection anyway, exit 0
# for both, greetings exchanged; and the loss rule really dropped packets.
# Random loss hits the one fragile moment (the crossing SYN) only now and
# then; e2e.lost_syn reproduces that moment deterministically.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata changing
lab_add_nat natb changing
lab_nat_loss natb 15
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous

room="lossy-$$"
# Loss also hits the signaling connections: a SYN exchange fails with
# p = 1 - 0.85^2 ~ 0.28 and the kernel backs off 1, 2, 4, 8, 16 s, so give the
# WebSocket 40 s (five lost exchanges in a row: p ~ 0.002).
env=(P2P_CONNECT_TIMEOUT=25 WS_OPEN_TIMEOUT=40 WS_RECV_TIMEOUT=60 P2P_MSG_TIMEOUT=15)
lab_run_worker a a "$room" "${env[@]}"
lab_run_worker b b "$room" "${env[@]}"
lab_wait_exit a 120 || lab_fail "worker a did not finish within 120 s"
lab_wait_exit b 120 || lab_fail "worker b did not finish within 120 s"

lab_expect_direct a b "$(lab_worker_mapping b)"
lab_expect_direct b a "$(lab_worker_mapping a)"
dropped=$(lab_exec natb nft list chain ip hpnat forward | sed -n 's/.*numgen.*counter packets \([0-9]*\).*/\1/p')
((${dropped:-0} > 0)) || lab_fail "the loss rule on natb dropped no packet: the scenario proved nothing"
lab_log "natb dropped $dropped packets during the run"
lab_pass "lossy: direct connection despite $dropped dropped packets"
