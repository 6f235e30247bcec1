#!/usr/bin/env bash
# bench/punch_latency.sh - how long the punch takes, printed (a benchmark,
# not a test). See bench/README.md.
#
# In the NAT lab (tests/e2e/lib/lab.sh): two worker hosts, each behind its own
# NAT (both port-preserving or both port-changing), one rendezvous. RUNS times
# (default 20), a fresh room each time, both workers are started together and
# must exit 0. From each worker's JSON log, the "direct connection
# established" event's elapsed_ms: the time from receiving `peer` to the
# authenticated direct connection (src/lib/punch.c). Prints every value, the
# median and the worst. No loss is emulated: nothing is lost on the wire.
#
# Usage: bench/punch_latency.sh [BUILD_DIR] [changing|preserving]
#   (default build-bench, changing). Needs root (namespaces, nftables).
# Environment: RUNS (20), HP_KEEP_LOGS=1 keeps the lab's logs.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export HP_BUILD_DIR=${1:-$top/build-bench}
NAT=${2:-changing}
RUNS=${RUNS:-20}
case $NAT in
  changing | port-changing) NAT=changing ;;
  preserving | port-preserving) NAT=preserving ;;
  *) echo "punch_latency.sh: NAT type must be changing or preserving, not '$NAT'" >&2; exit 2 ;;
esac

# shellcheck source=tests/e2e/lib/lab.sh
source "$top/tests/e2e/lib/lab.sh"

lab_require_root # fails loudly (exit 1) without root: this is not a skip
lab_require_binaries
lab_create
lab_add_nat nata "$NAT" r1
lab_add_nat natb "$NAT" r2
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous LOG_LEVEL=warning

vals=()  # every elapsed_ms, both workers of every run
failed=0
printf '%-5s %-24s %10s %10s  %-22s %s\n' "run" "room" "a (ms)" "b (ms)" "a's direct peer addr" "how a/b got it"
for i in $(seq "$RUNS"); do
  room="bench$$-$i"
  # A fresh punch port per run: the previous run's connection may still be in
  # TIME_WAIT (and in the NATs' conntrack) on the old 4-tuple.
  port=$((8100 + i))
  lab_run_worker "a$i" a "$room" INTERNAL_TCP_PORT=$port LOG_LEVEL=info
  lab_run_worker "b$i" b "$room" INTERNAL_TCP_PORT=$port LOG_LEVEL=info
  lab_wait_exit "a$i" 40 || true
  lab_wait_exit "b$i" 40 || true
  ea=$(lab_json_field "a$i" "$LAB_MSG_DIRECT" elapsed_ms)
  eb=$(lab_json_field "b$i" "$LAB_MSG_DIRECT" elapsed_ms)
  addr=$(lab_json_field "a$i" "$LAB_MSG_DIRECT" addr)
  dira=$(lab_json_field "a$i" "$LAB_MSG_DIRECT" direction)
  dirb=$(lab_json_field "b$i" "$LAB_MSG_DIRECT" direction)
  note=""
  if [[ ${LAB_RC[a$i]} != 0 || ${LAB_RC[b$i]} != 0 || -z $ea || -z $eb ]]; then
    failed=$((failed + 1))
    note="  FAILED (exit a=${LAB_RC[a$i]} b=${LAB_RC[b$i]})"
    for p in "a$i" "b$i"; do
      echo "----- $p log (last 10 lines) -----" >&2
      tail -n 10 "$LAB_DIR/$p.err" >&2 || true
    done
  fi
  [[ -n $ea ]] && vals+=("$ea")
  [[ -n $eb ]] && vals+=("$eb")
  printf '%-5s %-24s %10s %10s  %-22s %s%s\n' "$i" "$room" "${ea:--}" "${eb:--}" "${addr:--}" \
    "${dira:--}/${dirb:--}" "$note"
done

echo
echo "NAT type: $NAT on both sides; $RUNS runs, $failed failed; ${#vals[@]} values (ms):"
echo "  ${vals[*]:-none}"
if ((${#vals[@]})); then
  printf '%s\n' "${vals[@]}" | sort -g | awk '
    { v[NR] = $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "  median %.3f ms (target < 20), worst %.3f ms (target < 100): %s\n", med, v[NR],
        (med < 20 && v[NR] < 100) ? "meets both" : "MISSES"
    }'
fi
((failed == 0)) || lab_fail "$failed of $RUNS pairings did not connect directly"
