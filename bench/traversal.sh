#!/usr/bin/env bash
# bench/traversal.sh - how often and how fast two workers get a direct
# connection across the NAT lab's harder situations: reset-sending NATs and
# emulated delays (a benchmark that prints figures, not a test). See
# bench/README.md.
#
# Per scenario one lab (tests/e2e/lib/lab.sh), RUNS pairings (default 30),
# each in a fresh room with a fresh punch port; both workers are started
# together. A pairing succeeds when both exit 0 with a direct connection.
# Time to connect: from receiving `peer` to the secure channel being up
# (the peer's CONFIRM checked: what a user waits for), the "elapsed_ms" of
# each worker's "secure channel up" log event, or for binaries older than
# that field the difference of the two events' timestamps (1 ms
# resolution). Also shown: the "elapsed_ms" of "direct connection
# established" (the session lines checked, before the secure handshake's
# end), the figure this benchmark reported before 0.2.1. Prints one line
# per run, then a table: success rate, median and worst time to connect,
# and how the failures ended.
#
# Usage: bench/traversal.sh [BUILD_DIR] [SCENARIO ...]
#   BUILD_DIR default build-bench; scenarios default: all of
#   reset0    both NATs port-changing + reject, no delay
#   reset20   same, 20 ms one way on each WAN link (80 ms peer round trip)
#   reset1    same, 0.5 ms one way on each WAN link (2 ms peer round trip:
#             below the clock estimate's error, above the lab's veths)
#   resetfar  same, peers 3 ms apart (1.5 ms WAN links), rendezvous link
#             40/30 (40-70 ms each way)
#   drop20    NATs that drop (default filter), 20 ms per WAN link
#   dropfar   NATs that drop, peers 3 ms apart, far jittery rendezvous
#   reset0ttl  reset0 with LOW_TTL_SYN=2 on both workers and core routers
#             that send no ICMP Time Exceeded (lab_quiet_routers)
#   reset0icmp reset0 with LOW_TTL_SYN=2 and the lab's default routers
#             (they send Time Exceeded: shows the harm)
#   resetfarttl resetfar with LOW_TTL_SYN=2 and quiet routers
# Environment: RUNS (30), P2P (P2P_CONNECT_TIMEOUT of the workers, 10),
#   WORKER_ENV / RDV_ENV ("VAR=VALUE ..." added to every worker's / the
#   rendezvous' environment, e.g. to compare engine variants).
# Needs root (namespaces, nftables) and fails loudly without it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-30}
P2P=${P2P:-10}
ALL=(reset0 reset1 reset20 resetfar drop20 dropfar reset0ttl reset0icmp resetfarttl)

# secured_ms PROC: ms from receiving `peer` to the secure channel being up.
secured_ms() {
  local v t0 t1
  v=$(lab_json_field "$1" "$LAB_MSG_SECURED" elapsed_ms)
  if [[ -z $v ]]; then
    # Binaries before the field: the two events' timestamps.
    t0=$(lab_json_field "$1" '^paired with' time)
    t1=$(lab_json_field "$1" "$LAB_MSG_SECURED" time)
    [[ -n $t0 && -n $t1 ]] || return 0
    v=$(($(date -d "$t1" +%s%3N) - $(date -d "$t0" +%s%3N)))
  fi
  echo "$v"
}

# One scenario in its own lab (a child process: lab.sh's trap ends it).
one() {
  local scen=$1 rdv="" wan="" filter=drop quiet="" wenv="" i port room ea eb da db note
  case $scen in
    reset0) filter=reject ;;
    reset20) filter=reject wan=20 ;;
    reset1) filter=reject wan=0.5 ;;
    resetfar) filter=reject wan=1.5 rdv=40/30 ;;
    drop20) wan=20 ;;
    dropfar) wan=1.5 rdv=40/30 ;;
    reset0ttl) filter=reject quiet=1 wenv=LOW_TTL_SYN=2 ;;
    reset0icmp) filter=reject wenv=LOW_TTL_SYN=2 ;;
    resetfarttl) filter=reject wan=1.5 rdv=40/30 quiet=1 wenv=LOW_TTL_SYN=2 ;;
    *) echo "traversal.sh: unknown scenario '$scen' (${ALL[*]})" >&2; exit 2 ;;
  esac
  # shellcheck source=tests/e2e/lib/lab.sh
  source "$top/tests/e2e/lib/lab.sh"
  LAB_QUIET=1
  lab_require_root
  lab_create ${rdv:+--rdv-link "$rdv"}
  lab_require_binaries
  lab_add_nat nata changing r1 ${wan:+--wan "$wan"} --filter "$filter"
  lab_add_nat natb changing r2 ${wan:+--wan "$wan"} --filter "$filter"
  lab_add_worker_host a nata
  lab_add_worker_host b natb
  [[ -z $quiet ]] || lab_quiet_routers
  lab_describe >&2
  # shellcheck disable=SC2086 # RDV_ENV is a list of VAR=VALUE words
  lab_start_rendezvous LOG_LEVEL=info ${RDV_ENV:-}
  for i in $(seq "$RUNS"); do
    room="tr$$-$i"
    port=$((8100 + i))
    # shellcheck disable=SC2086 # WORKER_ENV is a list of VAR=VALUE words
    lab_run_worker "a$i" a "$room" INTERNAL_TCP_PORT=$port LOG_LEVEL=debug P2P_CONNECT_TIMEOUT="$P2P" $wenv ${WORKER_ENV:-}
    # shellcheck disable=SC2086
    lab_run_worker "b$i" b "$room" INTERNAL_TCP_PORT=$port LOG_LEVEL=debug P2P_CONNECT_TIMEOUT="$P2P" $wenv ${WORKER_ENV:-}
    lab_wait_exit "a$i" $((P2P + 30)) || true
    lab_wait_exit "b$i" $((P2P + 30)) || true
    ea=$(secured_ms "a$i")
    eb=$(secured_ms "b$i")
    da=$(lab_json_field "a$i" "$LAB_MSG_DIRECT" elapsed_ms)
    db=$(lab_json_field "b$i" "$LAB_MSG_DIRECT" elapsed_ms)
    note=ok
    if [[ ${LAB_RC[a$i]} != 0 || ${LAB_RC[b$i]} != 0 || -z $ea || -z $eb || -z $da || -z $db ]]; then
      note="fail a=${LAB_RC[a$i]} b=${LAB_RC[b$i]}"
    fi
    # refused: connects that ended in a reset (the NAT's reject), both sides.
    echo "RUN $scen $i ${ea:--} ${eb:--} $(lab_json_count "a$i" '^connect to .*: refused$') $(lab_json_count "b$i" '^connect to .*: refused$') ${da:--} ${db:--} $note"
  done
  lab_stop_rendezvous
  LAB_FAILED=0
}

if [[ "${1:-}" == --one ]]; then
  export HP_BUILD_DIR=$2
  one "$3"
  exit 0
fi

build=${1:-$top/build-bench}
shift || true
scens=("$@")
((${#scens[@]})) || scens=("${ALL[@]}")
[[ $(id -u) -eq 0 ]] || { echo "FAIL: traversal.sh needs root (the NAT lab); this is not a skip" >&2; exit 1; }

out=$(mktemp /tmp/hp-traversal.$$.XXXXXX)
trap 'rm -f "$out"' EXIT
printf '%-9s %4s %9s %9s %6s %6s %9s %9s  %s\n' scenario run "a (ms)" "b (ms)" "rst a" "rst b" \
  "lines a" "lines b" outcome
for s in "${scens[@]}"; do
  bash "$0" --one "$build" "$s" 2>"$out.err" | while read -r _ scen i ea eb ra rb da db note; do
    printf '%-9s %4s %9s %9s %6s %6s %9s %9s  %s\n' "$scen" "$i" "$ea" "$eb" "$ra" "$rb" "$da" "$db" "$note"
    echo "$scen $i $ea $eb $ra $rb $da $db $note" >>"$out"
  done
  grep -E '^(FAIL|lab:)' "$out.err" >&2 || true
  rm -f "$out.err"
done

echo
echo "runs per scenario: $RUNS; P2P_CONNECT_TIMEOUT=$P2P s; both workers of every successful run;"
echo "time = ms from 'peer' to the secure channel up (the peer's CONFIRM checked); lines = ms to the session lines checked ('direct connection established')"
printf '%-9s %8s %9s %11s %10s %12s\n' scenario success rate "median ms" "worst ms" "lines median"
for s in "${scens[@]}"; do
  awk -v s="$s" '
    function median(a, k,   i, j, x) {
      # sort numerically (insertion sort: at most 2 x RUNS values)
      for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
      return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    $1 == s { n++; if ($9 == "ok") { ok++; v[++m] = $3; v[++m] = $4; d[++q] = $7; d[++q] = $8 } }
    END {
      if (!n) { printf "%-9s %8s\n", s, "no runs"; exit }
      med = m ? median(v, m) : -1
      dmed = q ? median(d, q) : -1
      printf "%-9s %4d/%-3d %8.0f%% %11s %10s %12s\n", s, ok, n, 100 * ok / n,
        m ? sprintf("%.1f", med) : "-", m ? sprintf("%.1f", v[m]) : "-", q ? sprintf("%.1f", dmed) : "-"
    }' "$out"
done
