#!/usr/bin/env bash
# e2e.lab_links: the lab's link emulator (tests/e2e/lib/linkemu.c) and the
# NAT filter modes do what docs/lab.md says, with python stand-in traffic
# only. This checks the emulator's correctness, it is not a speed test: the
# lower bounds are exact (a packet never leaves before its delay), the upper
# bounds get an allowance for a busy 2-core machine (40 ms + half the bound).
#  - rendezvous link 40/30 (40-70 ms each way), NAT WAN links 1.5 ms: a TCP
#    connect from behind NAT A to the rdv host takes 83-143 ms, with visible
#    jitter;
#  - between the two NATs (1.5 ms each WAN link): 6 ms;
#  - NAT B has filter "reject": an unsolicited connect to it is refused (a
#    reset), one to NAT A ("drop") times out;
#  - a link with 30 % loss each way loses about half of the connects.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

# Allowed above the configured maximum (scheduling, python, a busy machine,
# the ASan build): 40 ms + half the maximum.
slack() { awk -v hi="$1" 'BEGIN { print 40 + hi / 2 }'; }

lab_create --rdv-link 40/30
lab_require_binaries
lab_add_nat nata changing r1 --wan 1.5
lab_add_nat natb changing r2 --wan 1.5 --filter reject
lab_add_nat natl preserving r2 --wan 2/0/30
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_add_worker_host l natl
lab_add_public_host pub
lab_describe >&2
S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")

# check_rtt NAME HOST TO COUNT LO HI: every answered connect from HOST to TO
# took LO..HI + slack ms; prints the figures; sets RTTS (the values).
check_rtt() {
  local name=$1 host=$2 to=$3 count=$4 lo=$5 hi=$6 out SLACK
  SLACK=$(slack "$hi")
  out=$(lab_exec "$host" "${S[@]}" rtt --to "$to" --count "$count" --interval 0.02 --timeout 2)
  mapfile -t RTTS < <(sed -n 's/^rtt //p' <<<"$out")
  ((${#RTTS[@]} == count)) || lab_fail "$name: ${#RTTS[@]} of $count connects answered: $out"
  printf '%s\n' "${RTTS[@]}" | awk -v lo="$lo" -v hi="$hi" -v slack="$SLACK" -v name="$name" '
    NR == 1 { min = $1; max = $1 }
    { if ($1 < min) min = $1; if ($1 > max) max = $1; sum += $1 }
    END {
      printf "%s: %d connects, rtt min %.2f avg %.2f max %.2f ms (configured %g-%g)\n",
        name, NR, min, sum / NR, max, lo, hi > "/dev/stderr"
      exit !(min >= lo && max <= hi + slack)
    }' || lab_fail "$name: round trips outside $lo-$hi ms (+$SLACK): ${RTTS[*]}"
  lab_log "ok: $name within the configured delay"
}

# 1. Far, jittery rendezvous: host a -> NAT A (veth) -> WAN 1.5 -> r1 ->
#    rdv link 40..70 -> rdv; port 9 is closed, so each connect is one round
#    trip (SYN, RST).
check_rtt "a -> rdv" a "$LAB_RDV_IP:9" 20 83 143
spread=$(printf '%s\n' "${RTTS[@]}" | sort -g | sed -n '1p;$p' | tr '\n' ' ' | awk '{ print $2 - $1 }')
awk -v s="$spread" 'BEGIN { exit !(s >= 5) }' ||
  lab_fail "a -> rdv: 20 round trips spread over only $spread ms with 30 ms of jitter each way"
lab_log "ok: jitter visible (spread $spread ms)"

# 2. Nearby peers: a -> NAT B's WAN address: 1.5 + 1.5 each way. NAT B
#    rejects the unsolicited SYN with a reset, so this is also one round trip.
check_rtt "a -> NAT B (reject)" a "${LAB_IP[natb]}:8082" 10 6 6

# 3. Filter modes: reset from the reject NAT, silence from the drop NAT.
got=$(lab_exec pub "${S[@]}" probe --to "${LAB_IP[natb]}:7000" --timeout 2)
[[ $got == refused ]] || lab_fail "unsolicited connect to NAT B (reject) gave '$got', expected refused"
got=$(lab_exec pub "${S[@]}" probe --to "${LAB_IP[nata]}:7000" --timeout 2)
[[ $got == timeout ]] || lab_fail "unsolicited connect to NAT A (drop) gave '$got', expected timeout"
lab_log "ok: NAT B resets unsolicited inbound, NAT A drops it"

# 4. Loss: 30 % each way on natl's WAN link: a connect survives with
#    p = 0.7^2 = 0.49. 30 tries: fewer than 4 or more than 26 lost is a
#    ~1e-5 event. A lost connect is one not answered within 0.25 s (the
#    kernel would retransmit the SYN only after 1 s).
out=$(lab_exec l "${S[@]}" rtt --to "${LAB_IP[pub]}:9" --count 30 --interval 0.01 --timeout 0.25)
lost=$(grep -c '^lost' <<<"$out" || true)
((lost >= 4 && lost <= 26)) || lab_fail "30 % loss each way lost $lost of 30 connects (expected about 15)"
lab_log "ok: the lossy link lost $lost of 30 connects (expected about 15)"

# 5. The emulator stops on SIGTERM and reports its counters.
lab_stop link-r2-natl
lab_expect_rc link-r2-natl 0
lab_expect_grep "$LAB_DIR/link-r2-natl.err" 'linkemu: b->a forwarded [0-9]+, lost [1-9]' "the emulator counted its losses"
lab_pass "lab_links: emulated delays, jitter, loss and the reject filter"
