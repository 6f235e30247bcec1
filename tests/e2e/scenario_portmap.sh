#!/usr/bin/env bash
# e2e.portmap: port mapping (src/lib/portmap/) against Debian's miniupnpd
# (nftables backend) running on a port-randomizing lab NAT router, through
# the test program tests/tools/hp_portmap.c (it maps its port, serves a
# greeting on it, removes the mapping on SIGTERM):
#  - UPnP-IGD: the mapping names the NAT's WAN address; miniupnpd's DNAT
#    rule points at the host; a public host connects to the mapped address
#    and gets the greeting (reachable from the emulated internet, through a
#    NAT that maps every outbound connection to a random port); after the
#    program stops, the rule is gone and the address is silent again;
#  - NAT-PMP: the same, with a 10 s lease that is refreshed before it ends.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
[[ -x "$HP_BUILD_DIR/hp_portmap" ]] || lab_fail "$HP_BUILD_DIR/hp_portmap is missing; build first"
lab_add_nat natu random r1
lab_add_worker_host u natu
lab_add_public_host pub
lab_nat_upnp natu
lab_describe >&2
S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")
HOST=${LAB_IP[u]}

# check_proto PROTO PORT LIFETIME: map, reach, remove.
check_proto() {
  local proto=$1 port=$2 lifetime=$3 proc="pm-$1" ext got n
  lab_run "$proc" u "$HP_BUILD_DIR/hp_portmap" --port "$port" --proto "$proto" \
    --lifetime "$lifetime" --hold 30 --timeout-ms 2000
  lab_wait_file "$LAB_DIR/$proc.out" 5 || lab_fail "$proc did not start"
  n=100
  until grep -q '"mapped"\|"error"' "$LAB_DIR/$proc.out"; do
    ((n-- > 0)) || lab_fail "$proc: no mapping result within 10 s"
    sleep 0.1
  done
  ext=$(sed -n 's/.*"mapped":"\([^"]*\)".*/\1/p' "$LAB_DIR/$proc.out" | head -n 1)
  [[ -n $ext ]] || lab_fail "$proc: no mapping: $(cat "$LAB_DIR/$proc.out")"
  [[ $ext == "${LAB_IP[natu]}:"* ]] || lab_fail "$proc: mapped to $ext, not on the NAT's WAN address ${LAB_IP[natu]}"
  lab_upnp_rules natu | grep -q "$HOST.*$port\|dnat.*$HOST:$port" ||
    lab_fail "$proc: miniupnpd has no DNAT rule to $HOST:$port: $(lab_upnp_rules natu)"
  lab_log "ok: $proto mapped $HOST:$port to $ext (rule: $(lab_upnp_rules natu | tr -s ' ' | head -n 1))"

  got=$(lab_exec pub "${S[@]}" garbage --to "$ext" --data "" --timeout 3)
  grep -q "received b'hello from hp_portmap" <<<"$got" ||
    lab_fail "$proto: connecting from the internet to $ext gave: $got"
  lab_log "ok: the public host reached $ext and got the greeting"

  if ((lifetime <= 10)); then
    n=150
    until grep -q '"refresh":true' "$LAB_DIR/$proc.out"; do
      ((n-- > 0)) || lab_fail "$proc: the ${lifetime} s lease was not refreshed within 15 s"
      sleep 0.1
    done
    lab_log "ok: the $lifetime s lease was refreshed: $(grep '"refresh":true' "$LAB_DIR/$proc.out" | head -n 1)"
  fi

  lab_stop "$proc"
  lab_expect_rc "$proc" 0
  lab_expect_grep "$LAB_DIR/$proc.out" '"removed":true' "$proc removed its mapping"
  [[ -z "$(lab_upnp_rules natu)" ]] || lab_fail "$proto: miniupnpd still has a rule after removal: $(lab_upnp_rules natu)"
  got=$(lab_exec pub "${S[@]}" probe --to "$ext" --timeout 2)
  [[ $got == timeout ]] || lab_fail "$proto: $ext still answers after the mapping was removed ($got)"
  lab_log "ok: $proto mapping removed: no rule left, $ext silent again"
}

check_proto upnp 8082 60
check_proto natpmp 8083 10
lab_pass "portmap: UPnP-IGD and NAT-PMP mappings on a port-randomizing NAT, reachable, refreshed, removed"
