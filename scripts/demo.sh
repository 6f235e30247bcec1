#!/usr/bin/env bash
# The main job, end to end, on one machine: two workers, each behind its own
# NAT that changes ports, meet through the rendezvous service and get a direct
# TCP connection to each other, then exchange a message.
#
#   sudo scripts/demo.sh            # installs deps, builds into build/, runs
#   HP_BUILD_DIR=/path scripts/demo.sh   # another build directory
#
# It builds the NAT lab of tests/e2e/lib/lab.sh (network namespaces, veth,
# nftables; see docs/lab.md), prints the topology, each worker's public
# mapping, the direct connection and the exchanged messages, removes the lab
# again and exits 0 only when both workers succeeded. Needs root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${HP_BUILD_DIR:-$top/build}

if [[ -t 1 ]]; then
  B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
  B="" G="" R="" D="" N=""
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: the NAT lab needs root (network namespaces, nftables): run it with sudo." >&2
  exit 1
fi

step "Dependencies (scripts/deps.sh)"
"$top/scripts/deps.sh"
echo "all Debian packages present"

step "Build ($build)"
"$top/scripts/build.sh" "$build" >"${TMPDIR:-/tmp}/hp-demo-build.$$.log" 2>&1 || {
  tail -n 40 "${TMPDIR:-/tmp}/hp-demo-build.$$.log" >&2
  echo "${R}demo: the build failed${N}" >&2
  exit 1
}
rm -f "${TMPDIR:-/tmp}/hp-demo-build.$$.log"
stat -c '%n (%s bytes)' "$build/holepunch" "$build/holepunch-rendezvous"

export HP_BUILD_DIR=$build HP_SOURCE_DIR=$top
export LAB_QUIET=1        # the demo prints its own story
export LAB_DUMP_ON_FAIL=0 # and the logs itself
# shellcheck source=tests/e2e/lib/lab.sh
source "$top/tests/e2e/lib/lab.sh"

step "NAT lab (network namespaces + nftables)"
lab_create
lab_require_binaries
lab_add_nat nata changing r1
lab_add_nat natb changing r2
lab_add_worker_host a nata
lab_add_worker_host b natb
port=8082
row() { printf '     %-43s%s\n' "$1" "$2"; }
echo "                   rendezvous service $LAB_RDV_URL"
echo "                               |"
echo "       core router r1 198.51.100.253 ======== 198.51.100.254 core router r2"
row "           |" "           |"
row "NAT A  WAN ${LAB_IP[nata]}" "NAT B  WAN ${LAB_IP[natb]}"
row "masquerade to :20000-30000" "masquerade to :20000-30000"
row "drops unsolicited inbound" "drops unsolicited inbound"
row "           |" "           |"
row "worker a  ${LAB_IP[a]}:$port" "worker b  ${LAB_IP[b]}:$port"
echo "${D}(namespaces $LAB_ID-*; the NATs' nft rules are in docs/lab.md)${N}"

lab_start_rendezvous LOG_FORMAT=text LOG_LEVEL=info
room="demo-$$"
step "Pairing: both workers join room '$room'"
common=(LOG_FORMAT=text LOG_LEVEL=info "INTERNAL_TCP_PORT=$port" P2P_CONNECT_TIMEOUT=15 WS_RECV_TIMEOUT=20)
lab_run_worker a a "$room" "${common[@]}"
lab_run_worker b b "$room" "${common[@]}"
ok=1
lab_wait_exit a 40 || ok=0
lab_wait_exit b 40 || ok=0

# field PROC MESSAGE_EREGEX KEY: KEY=value of the first matching text log line.
field() {
  grep -E -- "$2" "$LAB_DIR/$1.err" 2>/dev/null | head -n 1 |
    grep -oE "(^| )$3=[^ ]+" | head -n 1 | sed "s/^ *$3=//"
}

for w in a b; do
  echo ""
  echo "${B}worker $w${N} ${D}(${LAB_IP[$w]}, log LOG_FORMAT=text)${N}"
  sed 's/^/    /' "$LAB_DIR/$w.err"
done

step "Result"
for w in a b; do
  mapping=$(field $w '\] our mapping: ' mapped)
  addr=$(field $w '\] direct connection established( |$)' addr)
  ms=$(field $w '\] direct connection established( |$)' elapsed_ms)
  printf '  worker %s  %-17s -> public mapping %s%s%s\n' "$w" "${LAB_IP[$w]}:$port" "$B" "${mapping:-?}" "$N"
  if [[ -n "$addr" ]]; then
    [[ -n "$ms" ]] && ms=$(awk -v v="$ms" 'BEGIN { printf "%.1f", v }')
    printf '            direct connection to %s%s%s, %s ms after the pairing\n' "$B" "$addr" "$N" "${ms:-?}"
  fi
  if [[ -s "$LAB_DIR/$w.out" ]]; then
    printf '            received: %s"%s"%s\n' "$G" "$(head -n 1 "$LAB_DIR/$w.out")" "$N"
  fi
  printf '            exit code %s\n' "${LAB_RC[$w]:-?}"
  [[ "${LAB_RC[$w]:-}" == 0 && -n "$addr" && -s "$LAB_DIR/$w.out" ]] || ok=0
done

echo ""
if ((ok)); then
  echo "${G}${B}SUCCESS${N}: a and b talked over a direct TCP connection through two NATs;"
  echo "the rendezvous only introduced them. Cleaning up the lab."
  exit 0
fi
echo "${R}${B}FAILED${N}: see the logs above (exit codes: 2 config, 3 rendezvous, 4 no peer," >&2
echo "5 no direct connection, 6 exchange failed). Cleaning up the lab." >&2
echo "${D}rendezvous log (last 20 lines):${N}" >&2
tail -n 20 "$LAB_DIR/rendezvous.err" | sed 's/^/    /' >&2
exit 1
