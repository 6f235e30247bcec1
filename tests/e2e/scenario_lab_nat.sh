#!/usr/bin/env bash
# e2e.lab_nat: the NAT lab itself behaves as documented (docs/lab.md), proven
# with python stand-in traffic only (no holepunch binary involved), so that a
# failing scenario elsewhere points at the code, not at the lab:
#  - the path between the two NAT sides crosses two core routers (r1, r2);
#  - mapping: preserving keeps the port; changing maps to 20000-30000 and
#    reuses one mapping for every destination (endpoint-independent);
#    random,fully-random gives each connection a new port (symmetric);
#  - unsolicited inbound connections to a NAT are dropped silently;
#  - a TCP simultaneous open works across preserving and changing NATs and
#    fails across fully-random NATs.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_add_nat p1 preserving r1
lab_add_nat p2 preserving r2
lab_add_nat c1 changing r1
lab_add_nat c2 changing r2
lab_add_nat x1 random r1
lab_add_nat x2 random r2
for n in p1 p2 c1 c2 x1 x2; do lab_add_worker_host "h$n" "$n"; done
lab_add_public_host pub
lab_describe >&2

S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")
RDV=$LAB_RDV_IP
PUB=${LAB_IP[pub]}

# Routing: NAT A's side (r1) reaches NAT B's side only through r2, and back.
lab_exec r1 ip route get "${LAB_IP[p2]}" | grep -q "via 198.51.100.254" ||
  lab_fail "r1 does not route 203.0.113.0/24 through r2"
lab_exec r2 ip route get "${LAB_IP[p1]}" | grep -q "via 198.51.100.253" ||
  lab_fail "r2 does not route 198.51.100.0/24 through r1"
lab_log "ok: NAT A <-> NAT B crosses r1 and r2"

lab_start_reflector 9000
lab_start_reflector 9001
lab_run reflpub pub "${S[@]}" reflect --port 9000 --duration 60
lab_wait_listen pub 9000 5 reflpub || lab_fail "reflector on the public host did not start"

# observed_ports HOST: the mapped ports of local port 8084 towards three
# destinations (two ports of the rdv host, one other host behind r2).
observed_ports() {
  lab_exec "$1" "${S[@]}" whoami --port 8084 --reflector "$RDV:9000" \
    --reflector "$RDV:9001" --reflector "$PUB:9000" |
    sed -n 's/^observed [0-9.]*:\([0-9]*\) via .*/\1/p' | tr '\n' ' '
}

read -r -a ports <<<"$(observed_ports hp1)"
lab_log "preserving NAT p1: local 8084 -> ${ports[*]}"
[[ ${#ports[@]} -eq 3 && "${ports[*]}" == "8084 8084 8084" ]] ||
  lab_fail "port-preserving NAT did not keep port 8084: ${ports[*]}"

read -r -a ports <<<"$(observed_ports hc1)"
lab_log "changing NAT c1: local 8084 -> ${ports[*]}"
[[ ${#ports[@]} -eq 3 ]] || lab_fail "changing NAT: expected 3 observations, got ${ports[*]}"
for p in "${ports[@]}"; do
  ((p >= 20000 && p <= 30000)) || lab_fail "changing NAT mapped to $p, outside 20000-30000"
done
[[ ${ports[0]} == "${ports[1]}" && ${ports[1]} == "${ports[2]}" ]] ||
  lab_fail "changing NAT is not endpoint-independent: ${ports[*]}"

read -r -a ports <<<"$(observed_ports hx1)"
lab_log "random NAT x1: local 8084 -> ${ports[*]}"
[[ ${#ports[@]} -eq 3 ]] || lab_fail "random NAT: expected 3 observations, got ${ports[*]}"
# Three draws from ~64k ports: all equal by chance is ~1e-9.
[[ ${ports[0]} != "${ports[1]}" || ${ports[1]} != "${ports[2]}" ]] ||
  lab_fail "random NAT reused one mapping for three destinations: ${ports[*]}"

# Unsolicited inbound: a LAN host listens on 7000; the NAT's WAN port 7000
# must stay silent (timeout), while a closed port on a public host refuses
# (proves the probe tells the two apart).
lab_run hp1listen hp1 "${S[@]}" reflect --port 7000 --duration 30
lab_wait_listen hp1 7000 5 hp1listen || lab_fail "LAN listener did not start"
got=$(lab_exec pub "${S[@]}" probe --to "${LAB_IP[p1]}:7000" --timeout 2)
[[ $got == timeout ]] || lab_fail "unsolicited connect to NAT p1 :7000 gave '$got', expected a silent drop"
got=$(lab_exec hp1 "${S[@]}" probe --to "$PUB:5" --timeout 2)
[[ $got == refused ]] || lab_fail "connect to a closed public port gave '$got', expected refused"
lab_log "ok: unsolicited inbound is dropped silently"

# Simultaneous open between two LANs, for each NAT type.
for t in p c x; do
  for side in A B; do
    other=$([[ $side == A ]] && echo B || echo A)
    host=$([[ $side == A ]] && echo "h${t}1" || echo "h${t}2")
    lab_run "$t$side" "$host" "${S[@]}" punch --name "$t$side" --port 8082 \
      --reflector "$RDV:9000" --me "$LAB_DIR/$t$side.addr" --peer "$LAB_DIR/$t$other.addr" --timeout 6
  done
done
for p in pA pB cA cB xA xB; do
  lab_wait_exit "$p" 15 || lab_fail "stand-in $p did not stop by itself"
done
for t in p c; do
  lab_expect_rc "${t}A" 0
  lab_expect_rc "${t}B" 0
  lab_expect_grep "$LAB_DIR/${t}A.out" "^got HELLO from ${t}B$" "${t}A received ${t}B's greeting"
  lab_expect_grep "$LAB_DIR/${t}B.out" "^got HELLO from ${t}A$" "${t}B received ${t}A's greeting"
done
for p in pA pB cA cB xA xB; do lab_log "$p: $(tr '\n' ';' <"$LAB_DIR/$p.out")"; done
lab_expect_rc xA 5
lab_expect_rc xB 5
lab_pass "lab_nat: NAT types, filtering and simultaneous open behave as documented"
