#!/usr/bin/env bash
# e2e.stun_coturn: our STUN-over-TCP client (src/lib/discover/stun_tcp.c,
# through tests/tools/hp_stun_probe.c) against a STUN server nobody here
# wrote: Debian's coturn (turnserver, --stun-only), three instances on the
# emulated internet (rdv host :3478 and :3479, public host :3478). From one
# local port behind each NAT type:
#  - changing NAT: every server reports the mapping the python reflector
#    saw from the same port (the NAT's mapping, in 20000-30000), and the
#    verdict (src/core/nat_classify.c) is endpoint-independent, certain,
#    port not preserved;
#  - preserving NAT: every server reports NAT WAN address:8084; verdict
#    endpoint-independent, port preserved;
#  - random NAT: three different mappings; verdict address-and-port-dependent.
# Then the worker itself (STUN_SERVERS, src/lib/discover/discover.c): c
# (changing) and p (preserving) pair with the three coturn instances as
# their STUN servers: each logs what every server saw of its punch port,
# which is the mapping /whoami saw, and the NAT verdict of all observers
# (endpoint-independent); then both connect directly. c names its first
# server: STUN_SERVERS starts with nonexistent.invalid:3478 (does not
# resolve: a warning, skipped) and stun.lab.test:3478, which c's namespace
# resolves through its own hosts file (/etc/netns/<ns>/hosts, bind-mounted
# by `ip netns exec`) to the rendezvous host's coturn; c's namespace also
# gets nsswitch.conf "hosts: files", so no name is ever asked of a DNS
# server. Both files are removed on exit, failure included.
# Last, `holepunch diagnose` on c with the same names.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

command -v turnserver >/dev/null || lab_fail "turnserver is not installed (coturn; run scripts/deps.sh)"
lab_create
lab_require_binaries
[[ -x "$HP_BUILD_DIR/hp_stun_probe" ]] || lab_fail "$HP_BUILD_DIR/hp_stun_probe is missing; build first"
lab_add_nat natc changing r1
lab_add_nat natp preserving r2
lab_add_nat natx random r1
lab_add_worker_host c natc
lab_add_worker_host p natp
lab_add_worker_host x natx
lab_add_public_host pub
lab_describe >&2

# Names for c (see the top). Removed before the lab's own cleanup, which
# keeps the exit status: _names_cleanup returns it.
NETNS_ETC="/etc/netns/$(lab_ns c)"
NETNS_MADE=0
[[ -d /etc/netns ]] || NETNS_MADE=1
_names_cleanup() {
  local rc=$?
  rm -rf "$NETNS_ETC"
  ((NETNS_MADE == 0)) || rmdir /etc/netns 2>/dev/null
  return $rc
}
trap '_names_cleanup; lab_cleanup' EXIT
mkdir -p "$NETNS_ETC"
printf '127.0.0.1 localhost\n%s stun.lab.test\n' "$LAB_RDV_IP" >"$NETNS_ETC/hosts"
printf 'hosts: files\n' >"$NETNS_ETC/nsswitch.conf"
[[ $(lab_exec c getent hosts stun.lab.test) == "$LAB_RDV_IP "* ]] ||
  lab_fail "c's namespace does not resolve stun.lab.test through $NETNS_ETC/hosts"
! lab_exec c getent hosts nonexistent.invalid >/dev/null ||
  lab_fail "c's namespace resolves nonexistent.invalid"

# start_coturn PROC NODE IP PORT: coturn in STUN-only mode, its files under
# $LAB_DIR, bounded by timeout (and killed by the lab's cleanup anyway).
start_coturn() {
  local proc=$1 node=$2 ip=$3 port=$4 conf="$LAB_DIR/$1.conf"
  cat >"$conf" <<CONF
listening-ip=$ip
listening-port=$port
stun-only
no-tls
no-dtls
no-cli
no-udp
userdb=$LAB_DIR/$proc.db
pidfile=$LAB_DIR/$proc.pid
log-file=stdout
simple-log
CONF
  lab_run "$proc" "$node" timeout 60 turnserver -c "$conf"
  lab_wait_listen "$node" "$port" 10 "$proc" || lab_fail "coturn $proc did not listen on $ip:$port"
}
start_coturn stun1 rdv "$LAB_RDV_IP" 3478
start_coturn stun2 rdv "$LAB_RDV_IP" 3479
start_coturn stun3 pub "${LAB_IP[pub]}" 3478
SERVERS=("$LAB_RDV_IP:3478" "$LAB_RDV_IP:3479" "${LAB_IP[pub]}:3478")
lab_start_reflector 9000
S=("$LAB_PY" "$LAB_LIB_DIR/standin.py")

# probe HOST: hp_stun_probe from local port 8084; sets MAPPED (one per
# server) and VERDICT (JSON).
probe() {
  local out
  out=$(lab_exec "$1" "$HP_BUILD_DIR/hp_stun_probe" --port 8084 --timeout-ms 3000 "${SERVERS[@]}") ||
    lab_fail "hp_stun_probe on $1 failed: $out"
  while IFS= read -r l; do echo "  $1: $l" >&2; done <<<"$out"
  mapfile -t MAPPED < <(grep '"mapped"' <<<"$out" | "$LAB_PY" -c 'import json,sys; [print(json.loads(l)["mapped"]) for l in sys.stdin]')
  ((${#MAPPED[@]} == 3)) || lab_fail "$1: expected 3 mappings, got ${MAPPED[*]}"
  VERDICT=$(grep '"verdict"' <<<"$out")
}
# vfield NAME: a field of the verdict, as JSON text.
vfield() { "$LAB_PY" -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["verdict"][sys.argv[2]]))' "$VERDICT" "$1"; }

# 1. Changing NAT: the reflector sees the NAT's mapping of port 8084 first.
truth=$(lab_exec c "${S[@]}" whoami --port 8084 --reflector "$LAB_RDV_IP:9000" | sed -n 's/^observed \([0-9.:]*\) via.*/\1/p')
[[ $truth == "${LAB_IP[natc]}:"* ]] || lab_fail "reflector saw '$truth' for c, expected ${LAB_IP[natc]}:<port>"
probe c
for m in "${MAPPED[@]}"; do
  [[ $m == "$truth" ]] || lab_fail "changing NAT: a STUN server reported $m, the NAT's mapping is $truth"
done
[[ $(vfield mapping) == '"endpoint-independent"' && $(vfield mapping_certain) == true &&
  $(vfield port_preserved) == false && $(vfield public_addr) == "\"${LAB_IP[natc]}\"" ]] ||
  lab_fail "changing NAT: wrong verdict $VERDICT"
lab_log "ok: changing NAT: coturn x3 reported $truth, the NAT's mapping; verdict endpoint-independent, port changed"

# 2. Preserving NAT: the mapping is the WAN address with the same port.
probe p
for m in "${MAPPED[@]}"; do
  [[ $m == "${LAB_IP[natp]}:8084" ]] || lab_fail "preserving NAT: a STUN server reported $m, expected ${LAB_IP[natp]}:8084"
done
[[ $(vfield mapping) == '"endpoint-independent"' && $(vfield port_preserved) == true ]] ||
  lab_fail "preserving NAT: wrong verdict $VERDICT"
lab_log "ok: preserving NAT: coturn x3 reported ${LAB_IP[natp]}:8084; verdict endpoint-independent, port preserved"

# 3. Random NAT: a new mapping per server.
probe x
[[ ${MAPPED[0]} != "${MAPPED[1]}" && ${MAPPED[1]} != "${MAPPED[2]}" ]] ||
  lab_fail "random NAT: mappings repeat: ${MAPPED[*]}"
[[ $(vfield mapping) == '"address-and-port-dependent"' && $(vfield mapping_certain) == true ]] ||
  lab_fail "random NAT: wrong verdict $VERDICT"
lab_log "ok: random NAT: ${MAPPED[*]}; verdict address-and-port-dependent"

# 4. The worker with STUN_SERVERS: the same mappings, used for the pairing.
lab_start_rendezvous
stun_list="${SERVERS[0]},${SERVERS[1]},${SERVERS[2]}"
# c: the first server by name (SERVERS[0] is $LAB_RDV_IP:3478), after one
# that does not resolve.
names_list="nonexistent.invalid:3478, stun.lab.test:3478,${SERVERS[1]},${SERVERS[2]}"
room="stun-$$"
lab_run_worker c c "$room" STUN_SERVERS="$names_list"
lab_run_worker p p "$room" STUN_SERVERS="$stun_list"
lab_wait_exit c 30 || lab_fail "worker c did not finish within 30 s"
lab_wait_exit p 30 || lab_fail "worker p did not finish within 30 s"
for w in c p; do
  m=$(lab_worker_mapping $w)
  [[ $m == "${LAB_IP[nat$w]}:"* ]] || lab_fail "$w's whoami mapping is '$m', expected ${LAB_IP[nat$w]}:<port>"
  for srv in "${SERVERS[@]}"; do
    seen=$(lab_json_field_where $w '^STUN server .* sees our punch port as ' server "$srv" mapped)
    [[ $seen == "$m" ]] || lab_fail "$w: STUN server $srv saw '$seen', /whoami saw $m"
  done
  [[ $(lab_json_field $w '^NAT: ' mapping) == endpoint-independent ]] ||
    lab_fail "$w: the worker's NAT verdict is not endpoint-independent: $(lab_json_field $w '^NAT: ' mapping)"
  lab_log "ok: worker $w: 3 STUN servers saw $m, as /whoami did; verdict endpoint-independent"
done
[[ $(lab_json_field p '^NAT: ' port_preserved) == 1 && $(lab_json_field c '^NAT: ' port_preserved) == 0 ]] ||
  lab_fail "port preservation: p $(lab_json_field p '^NAT: ' port_preserved), c $(lab_json_field c '^NAT: ' port_preserved)"
lab_expect_direct c p "$(lab_worker_mapping p)"
lab_expect_direct p c "$(lab_worker_mapping c)"
lab_expect_rc c 0
lab_expect_rc p 0
# c: the name was resolved to the coturn it names, and that one answered
# (the loop above found its mapping under its address).
[[ $(lab_json_field_where c '^STUN server .* sees our punch port as ' name stun.lab.test server) == "${SERVERS[0]}" ]] ||
  lab_fail "c: no mapping logged from stun.lab.test as ${SERVERS[0]}"
# ... and the name that does not resolve: a warning naming it and the
# resolver's error, nothing else from it.
w='^STUN server nonexistent\.invalid: name not resolved '
[[ $(lab_json_field c "$w" severity) == WARNING && $(lab_json_field c "$w" name) == nonexistent.invalid &&
  -n $(lab_json_field c "$w" why) ]] ||
  lab_fail "c: no warning about nonexistent.invalid: $(grep -F nonexistent "$LAB_DIR/c.err" || true)"
lab_log "ok: worker c: stun.lab.test:3478 resolved to ${SERVERS[0]} and asked; nonexistent.invalid:3478 warned about ($(lab_json_field c "$w" why)) and skipped; exit 0"

# diagnose on c with the same list: three STUN observers, the named one
# among them; the bad name is a warning, exit 0.
J=$(lab_exec c env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8085 \
  STUN_SERVERS="$names_list" LOG_FORMAT=json LOG_LEVEL=warning \
  timeout 30 "$HP_BUILD_DIR/holepunch" diagnose --json 2>"$LAB_DIR/diag-c.err") ||
  lab_fail "diagnose on c failed ($?): $(cat "$LAB_DIR/diag-c.err")"
echo "  c: $J" >&2
stun_obs=$("$LAB_PY" -c 'import json,sys; print(" ".join(sorted(o["observer"] for o in json.loads(sys.argv[1])["observers"] if o["kind"] == "stun")))' "$J")
want=$(printf '%s\n' "${SERVERS[@]}" | sort | tr '\n' ' ')
[[ "$stun_obs " == "$want" ]] || lab_fail "diagnose on c: STUN observers '$stun_obs', expected '$want'"
grep -q '"name":"nonexistent.invalid"' "$LAB_DIR/diag-c.err" ||
  lab_fail "diagnose on c: no warning about nonexistent.invalid: $(cat "$LAB_DIR/diag-c.err")"
lab_log "ok: diagnose on c: STUN observers $stun_obs (stun.lab.test among them); nonexistent.invalid warned about"
lab_pass "stun_coturn: STUN over TCP against coturn and the NAT verdict for three NAT types"
