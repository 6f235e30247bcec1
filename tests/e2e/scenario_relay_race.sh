#!/usr/bin/env bash
# e2e.relay_race: direct punching and the relay raced from the start
# (RELAY_AFTER=0) where both paths work: both workers behind port-changing
# NATs (e2e.port_changing: punching succeeds) and the relay on. Whichever
# path wins a run, the two workers must agree on it (docs/PROTOCOL.md
# section 9, "One path"): role a alone decides, b follows. Before that rule
# a relayed handshake and a direct nomination completing within one network
# delay of each other left the two on different paths (both exit 6).
#
# The timing puts a's nomination inside the gap (see the lab below): on
# 0.2.0 the first run already ended with a direct, b relayed (a exit 4
# after rejoining, b exit 6). RACE_RUNS pairs (default 5, about 45 s),
# each in its own room, one after the other: every run both exit 0, print
# the other's greeting, and log the same transport ("connected to X:
# direct|relayed"). How many runs went which way, and how many times b had
# completed the relayed handshake when a's nomination came (the race hit),
# are printed, not asserted (they depend on timing).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

runs=${RACE_RUNS:-5}
lab_create
lab_require_binaries
# Only a's WAN link is slow (RACE_WAN ms one way): a's relay round trips
# are long, b's short, so b's relayed handshake completes (a's CONFIRM in)
# well before a's does; and the crossing SYNs are lost once (the kernel
# retransmits them after 1 s), which puts a's nomination inside that gap.
lab_add_nat nata changing r1 --wan "${RACE_WAN:-200}"
lab_add_nat natb changing r2
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous RELAY_RATE=0

ndirect=0
nrelayed=0
nhit=0
for ((i = 1; i <= runs; i++)); do
  room="race-$$-$i"
  lab_nat_lose_first_syn natb nata
  lab_nat_lose_first_syn nata natb
  # a first, and b once a waits in the room: a is role a (the waiter).
  lab_run_worker "ra$i" a "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=0
  lab_wait_log "ra$i" '"message":"registered in room' 15 || lab_fail "run $i: ra$i did not register"
  lab_run_worker "rb$i" b "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=0
  lab_wait_exit "ra$i" 20 || lab_fail "run $i: worker ra$i did not finish within 20 s"
  lab_wait_exit "rb$i" 20 || lab_fail "run $i: worker rb$i did not finish within 20 s"
  ta=$(lab_json_field "ra$i" '^connected to ' transport)
  tb=$(lab_json_field "rb$i" '^connected to ' transport)
  lab_log "run $i: ra$i exit ${LAB_RC[ra$i]} transport '${ta}', rb$i exit ${LAB_RC[rb$i]} transport '${tb}'"
  for w in "ra$i" "rb$i"; do
    other=$([[ $w == ra* ]] && echo "rb$i" || echo "ra$i")
    lab_expect_rc "$w" 0
    lab_expect_grep "$LAB_DIR/$w.out" "$LAB_GREETING_PREFIX$other says: " "$w printed $other's greeting"
  done
  [[ -n $ta && $ta == "$tb" ]] || lab_fail "run $i: the workers disagree on the path: a '$ta', b '$tb'"
  if grep -q '"message":"direct connection nominated: the relay attempt is dropped (its handshake was done' "$LAB_DIR/rb$i.err"; then
    nhit=$((nhit + 1))
  fi
  case $ta in
    direct) ndirect=$((ndirect + 1)) ;;
    relayed) nrelayed=$((nrelayed + 1)) ;;
    *) lab_fail "run $i: unknown transport '$ta'" ;;
  esac
done
lab_pass "relay_race: $runs runs with RELAY_AFTER=0, both sides on one path every time ($ndirect direct, $nrelayed relayed; $nhit times b's relayed handshake was done when a nominated)"
