#!/usr/bin/env bash
# e2e.lab_ipv6: the lab's IPv6 side (lab_enable_ipv6, docs/lab.md), ready for
# the engine's IPv6 punching, proven with python stand-in traffic: no NAT,
# a stateful IPv6 firewall on each router, documentation addresses only.
#  - a host behind firewall A reaches the rdv host; the reflector sees the
#    host's own global address and port (no translation);
#  - unsolicited inbound to a host: silence through a "drop" firewall, a
#    reset through a "reject" one; outbound-initiated traffic comes back;
#  - the link emulator carries IPv6 (firewall B's WAN link 5 ms: a round
#    trip to B's hosts takes at least 10 ms);
#  - a TCP simultaneous open between hosts behind two firewalls succeeds
#    over IPv6 (each side's SYN opens its own firewall).
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_enable_ipv6
lab_add_nat fwa changing r1
lab_add_nat fwb changing r2 --wan 5
lab_add_nat fwc changing r2 --filter reject
lab_add_worker_host a fwa
lab_add_worker_host b fwb
lab_add_worker_host c fwc
lab_add_public_host pub
lab_describe >&2
S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")
A6=${LAB_IP6[a]} B6=${LAB_IP6[b]} C6=${LAB_IP6[c]}

# 1. Outbound through firewall A, no translation.
lab_run refl6 rdv "${S[@]}" reflect --bind :: --port 9000 --duration 60
lab_wait_listen rdv 9000 5 refl6 || lab_fail "the IPv6 reflector did not start"
got=$(lab_exec a "${S[@]}" whoami --port 8084 --reflector "[$LAB_RDV_IP6]:9000")
[[ $got == "observed [$A6]:8084 via [$LAB_RDV_IP6]:9000" ]] ||
  lab_fail "the reflector saw '$got', expected a's own [$A6]:8084"
lab_log "ok: a reaches the rdv host over IPv6 as [$A6]:8084 (no translation)"

# 2. Unsolicited inbound: listeners on a and c, probes from the public host.
lab_run lsta a "${S[@]}" reflect --bind :: --port 7000 --duration 30
lab_run lstc c "${S[@]}" reflect --bind :: --port 7000 --duration 30
lab_wait_listen a 7000 5 lsta || lab_fail "listener on a did not start"
lab_wait_listen c 7000 5 lstc || lab_fail "listener on c did not start"
got=$(lab_exec pub "${S[@]}" probe --to "[$A6]:7000" --timeout 2)
[[ $got == timeout ]] || lab_fail "unsolicited connect to a through firewall A (drop) gave '$got'"
got=$(lab_exec pub "${S[@]}" probe --to "[$C6]:7000" --timeout 2)
[[ $got == refused ]] || lab_fail "unsolicited connect to c through firewall C (reject) gave '$got'"
got=$(lab_exec a "${S[@]}" probe --to "[${LAB_IP6[pub]}]:5" --timeout 2)
[[ $got == refused ]] || lab_fail "a -> closed port of the public host gave '$got' (the reset must come back)"
lab_log "ok: unsolicited inbound dropped by A, reset by C; replies to outbound pass"

# 3. The link emulator carries IPv6: 5 ms each way on B's WAN link, so a
#    connect from b to a closed port of the rdv host (one round trip, the
#    reset answers) takes at least 10 ms.
out=$(lab_exec b "${S[@]}" rtt --to "[$LAB_RDV_IP6]:9" --count 5 --interval 0.02 --timeout 2)
mapfile -t R < <(sed -n 's/^rtt //p' <<<"$out")
((${#R[@]} == 5)) || lab_fail "b -> rdv over IPv6: ${#R[@]} of 5 connects answered: $out"
awk -v v="${R[*]}" 'BEGIN { n = split(v, a, " "); for (i = 1; i <= n; i++) if (a[i] < 10) exit 1 }' ||
  lab_fail "b -> rdv over the 5 ms link took less than 10 ms: ${R[*]}"
lab_log "ok: IPv6 over the emulated 5 ms link: b -> rdv round trips ${R[*]} ms"

# 4. Simultaneous open over IPv6 between a (behind A) and b (behind B).
for side in a b; do
  other=$([[ $side == a ]] && echo b || echo a)
  lab_run "py_$side" "$side" "${S[@]}" punch --name "py_$side" --port 8085 --reflector "[$LAB_RDV_IP6]:9000" \
    --me "$LAB_DIR/py6_$side.addr" --peer "$LAB_DIR/py6_$other.addr" --timeout 10
done
lab_wait_exit py_a 20 || lab_fail "stand-in a did not stop"
lab_wait_exit py_b 20 || lab_fail "stand-in b did not stop"
lab_expect_rc py_a 0
lab_expect_rc py_b 0
lab_expect_grep "$LAB_DIR/py_a.out" "^direct .*\\[$B6\\]:8085" "a connected directly to [$B6]:8085"
lab_log "ok: IPv6 simultaneous open: $(tr '\n' ' ' <"$LAB_DIR/py_a.out")"
lab_pass "lab_ipv6: dual-stack lab with stateful IPv6 firewalls"
