#!/usr/bin/env bash
# bench/pipe_lab.sh: issue 7's target in the NAT lab. Two hosts behind two
# port-changing NATs (tests/e2e/lib/lab.sh): host a sends N MiB to host b
#   pipe   `holepunch pipe --code` (punched TCP + secure channel), and
#   plain  a plain TCP copy (bench_tcpcopy, blocking 64 KiB reads/writes)
#          on the SAME path: a -> NAT A (masquerade) -> r1 -> r2 -> NAT B ->
#          b, through a port forward on NAT B (DNAT of its WAN port 5201 to
#          b; the only rule added to the lab's NAT rules).
# Rounds alternate the order (plain first, then pipe first, ...). Prints
# per round and the median: MiB/s of each, the ratio pipe/plain, and the
# CPU seconds (user + system) per GiB of each side (sender a, receiver b).
# pipe's time is the receiver's "secure channel up" -> "pipe done" (its
# log), so the rendezvous and the punch are not counted; plain's time is
# from the sender's start to the receiver's exit. CPU of pipe includes the
# whole process (rendezvous, punch, handshake: small next to N MiB).
# Two labs, one after the other: (a) no delay, (b) each NAT's WAN link
# through the link emulator (linkemu) with WAN ms one way (default 10).
# Figures only, no assertions. Root needed (namespaces).
#
# Usage: sudo bench/pipe_lab.sh [BUILD_DIR] [MIB] [ROUNDS] [WAN_MS]
#        (defaults: build, 256, 3, 10; WAN_MS 0 skips (b))
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$top/build}" && pwd)
MIB=${2:-256}
ROUNDS=${3:-3}
WAN_MS=${4:-10}
export HP_BUILD_DIR=$B HP_SOURCE_DIR=$top

# Inner run (one lab): pipe_lab.sh --lab SPEC (SPEC "" = no emulated link).
if [[ "${PIPE_LAB_INNER:-}" == 1 ]]; then
  spec=$5
  # shellcheck source-path=SCRIPTDIR source=../tests/e2e/lib/lab.sh
  source "$top/tests/e2e/lib/lab.sh"
  lab_create
  lab_require_binaries
  [[ -x $B/bench/bench_tcpcopy ]] || lab_fail "$B/bench/bench_tcpcopy missing; build first"
  lab_add_nat nata changing ${spec:+--wan "$spec"}
  lab_add_nat natb changing ${spec:+--wan "$spec"}
  lab_add_worker_host a nata
  lab_add_worker_host b natb
  lab_describe >&2
  lab_start_rendezvous
  # The port forward on NAT B for the plain copy (the path the punched
  # connection takes too: both NATs, both core routers).
  lab_exec natb nft add table ip hpbench
  lab_exec natb nft add chain ip hpbench pre '{ type nat hook prerouting priority dstnat; }'
  lab_exec natb nft add rule ip hpbench pre iifname wan tcp dport 5201 dnat to "${LAB_IP[b]}:5201"
  lab_exec natb nft insert rule ip hpnat forward iifname wan tcp dport 5201 ct status dnat accept
  bytes=$((MIB * 1024 * 1024))
  T=(/usr/bin/time -f '%e %U %S')
  gib=$(awk -v b="$bytes" 'BEGIN { print b / 1073741824 }')
  k=0

  plain_round() {
    local t0 t1 su ss ru rs
    k=$((k + 1))
    lab_run "plain-r$k" b "${T[@]}" -o "$LAB_DIR/plain-r$k.time" \
      timeout 300 "$B/bench/bench_tcpcopy" recv 5201 "${LAB_IP[b]}"
    lab_wait_listen b 5201 10 "plain-r$k"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2016 # the sh -c script expands its own arguments
    lab_run "plain-s$k" a sh -c 'n=$1; shift; head -c "$n" /dev/zero | exec "$@"' sh "$bytes" \
      "${T[@]}" -o "$LAB_DIR/plain-s$k.time" timeout 300 "$B/bench/bench_tcpcopy" send 5201 \
      "${LAB_IP[natb]}"
    lab_wait_exit "plain-r$k" 300 || lab_fail "plain copy did not finish"
    t1=$(date +%s.%N)
    lab_wait_exit "plain-s$k" 30 || lab_fail "plain sender did not finish"
    [[ ${LAB_RC[plain-r$k]} == 0 && ${LAB_RC[plain-s$k]} == 0 ]] || lab_fail "plain copy failed"
    read -r _ ru rs <"$LAB_DIR/plain-r$k.time"
    read -r _ su ss <"$LAB_DIR/plain-s$k.time"
    awk -v t0="$t0" -v t1="$t1" -v g="$gib" -v m="$MIB" -v su="$su" -v ss="$ss" -v ru="$ru" \
      -v rs="$rs" 'BEGIN { printf "plain %.1f %.2f %.2f\n", m / (t1 - t0), (su + ss) / g, (ru + rs) / g }' \
      >>"$LAB_DIR/plain.txt"
    tail -1 "$LAB_DIR/plain.txt" >&2
  }

  pipe_round() {
    local code secs su ss ru rs
    k=$((k + 1))
    code=$("$B/holepunch" code)
    for side in r s; do
      local host=b
      [[ $side == s ]] && host=a
      # shellcheck disable=SC2016 # the sh -c script expands its own arguments
      lab_run "pipe-$side$k" "$host" env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" \
        INTERNAL_TCP_PORT=8082 WORKER_ID="$side$k" HOLEPUNCH_CODE="$code" RELAY_AFTER=off \
        P2P_CONNECT_TIMEOUT=10 WS_OPEN_TIMEOUT=5 WS_RECV_TIMEOUT=20 LOG_FORMAT=json \
        sh -c 'if [ "$1" = s ]; then head -c "$2" /dev/zero; fi | exec "$3" -f "%e %U %S" -o "$4" timeout 300 "$5" pipe >/dev/null' \
        sh "$side" "$bytes" /usr/bin/time "$LAB_DIR/pipe-$side$k.time" "$B/holepunch"
    done
    lab_wait_exit "pipe-r$k" 300 || lab_fail "pipe receiver did not finish"
    lab_wait_exit "pipe-s$k" 30 || lab_fail "pipe sender did not finish"
    [[ ${LAB_RC[pipe-r$k]} == 0 && ${LAB_RC[pipe-s$k]} == 0 ]] ||
      lab_fail "pipe failed (logs: $LAB_DIR/pipe-[rs]$k.err)"
    grep -q '"message":"direct connection established"' "$LAB_DIR/pipe-r$k.err" ||
      lab_fail "pipe round $k was not direct"
    secs=$(/usr/bin/python3 - "$LAB_DIR/pipe-r$k.err" <<'PY'
import datetime, json, sys
t = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    m = e.get("message", "")
    k = "up" if m.startswith("secure channel up") else "done" if m.startswith("pipe done") else None
    if k:
        t[k] = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
print("%.3f" % (t["done"] - t["up"]))
PY
    )
    read -r _ ru rs <"$LAB_DIR/pipe-r$k.time"
    read -r _ su ss <"$LAB_DIR/pipe-s$k.time"
    awk -v s="$secs" -v g="$gib" -v m="$MIB" -v su="$su" -v ss="$ss" -v ru="$ru" -v rs="$rs" \
      'BEGIN { printf "pipe %.1f %.2f %.2f\n", m / s, (su + ss) / g, (ru + rs) / g }' \
      >>"$LAB_DIR/pipe.txt"
    tail -1 "$LAB_DIR/pipe.txt" >&2
  }

  for ((i = 0; i < ROUNDS; i++)); do
    if ((i % 2 == 0)); then plain_round; pipe_round; else pipe_round; plain_round; fi
  done
  med() { sort -n -k2 "$1" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }
  read -r _ pm ps pr <<<"$(med "$LAB_DIR/plain.txt")"
  read -r _ hm hs hr <<<"$(med "$LAB_DIR/pipe.txt")"
  awk -v l="${spec:+WAN links ${spec} ms one way each}" -v pm="$pm" -v hm="$hm" -v ps="$ps" \
    -v pr="$pr" -v hs="$hs" -v hr="$hr" -v n="$ROUNDS" -v m="$MIB" 'BEGIN {
    if (l == "") l = "no delay"
    printf "lab (%s), %d MiB, median of %d rounds: plain %.1f MiB/s, pipe %.1f MiB/s, ratio pipe/plain %.2f; CPU s/GiB sender plain %.2f pipe %.2f, receiver plain %.2f pipe %.2f\n", l, m, n, pm, hm, hm / pm, ps, hs, pr, hr }'
  lab_pass "pipe_lab: figures above"
  exit 0
fi

for b in holepunch holepunch-rendezvous bench/bench_tcpcopy; do
  [[ -x $B/$b ]] || { echo "pipe_lab.sh: $B/$b is missing; build first" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "pipe_lab.sh: needs root (network namespaces)" >&2; exit 1; }
PIPE_LAB_INNER=1 "$0" "$B" "$MIB" "$ROUNDS" "$WAN_MS" ""
if [[ $WAN_MS != 0 ]]; then
  PIPE_LAB_INNER=1 "$0" "$B" "$MIB" "$ROUNDS" "$WAN_MS" "$WAN_MS"
fi
