#!/usr/bin/env bash
# tests/deploy/test_rendezvous_hostile.sh - tests/tools/rdv_hostile.py (raw
# socket clients that break the rules on purpose) against
# holepunch-rendezvous on loopback, one service per group with the settings
# the group needs:
#   rfc       RFC 6455 rules (issue 11 item 2)
#   memory    reassembly caps, fragments, global input budget (issue 11 item 1)
#   result    one result, only after peer; frame rate (issue 11 item 4)
#   hello     hellos per minute per address (issue 11 item 5)
#   perip     connections per address, request-line deadline (issue 6 item 3)
#   slowbody  HTTP_TIMEOUT bounds the body (issue 11 item 3)
# Each group must leave the service healthy and exiting 0 on SIGTERM.
# Loopback only (127.0.0.1 and 127.0.0.2), every wait bounded.
# Env: HP_BUILD_DIR, HP_SOURCE_DIR; HP_RDV_BIN (another binary, to check that
# the cases fail on an older build); HP_HOSTILE_GROUPS (a subset).
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
PY=/usr/bin/python3
TOOL=$top/tests/tools/rdv_hostile.py
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"

die() { echo "test_rendezvous_hostile: FAIL: $*" >&2; exit 1; }

if [[ -n ${HP_RDV_BIN:-} ]]; then
  # lo_start_rendezvous runs $HP_BUILD_DIR/holepunch-rendezvous.
  HP_BUILD_DIR=$(dirname "$HP_RDV_BIN")
fi
[[ -x $HP_BUILD_DIR/holepunch-rendezvous ]] || die "$HP_BUILD_DIR/holepunch-rendezvous is not built"

tmp=$(mktemp -d "/tmp/hp-test-hostile.$$.XXXXXX")
cleanup() {
  local rc=$?
  set +e
  lo_stop "$LO_RDV_PID"
  if ((rc != 0)); then
    echo "test_rendezvous_hostile: server log:" >&2
    tail -n 30 "$tmp/rdv.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

declare -A ENV=(
  [rfc]=""
  [memory]="INPUT_BUFFER_BUDGET=200000"
  [result]=""
  [hello]="MAX_HELLOS_PER_MINUTE=5"
  [perip]="MAX_CONNECTIONS_PER_IP=10 REQUEST_LINE_TIMEOUT=1 HTTP_TIMEOUT=10"
  [slowbody]="HTTP_TIMEOUT=2"
)
groups=${HP_HOSTILE_GROUPS:-rfc memory result hello perip slowbody}
failed=()
for g in $groups; do
  # shellcheck disable=SC2086 # the group's VAR=VALUE words
  lo_start_rendezvous "$tmp/rdv.log" LOG_LEVEL=info SHUTDOWN_TIMEOUT=2 ${ENV[$g]} ||
    die "$g: $LO_ERR"
  echo "test_rendezvous_hostile: group $g, service on 127.0.0.1:$LO_RDV_PORT ${ENV[$g]}"
  if ! timeout 120 "$PY" "$TOOL" 127.0.0.1 "$LO_RDV_PORT" "$g"; then
    failed+=("$g")
  fi
  code=$("$PY" -c '
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=5).status)
' "$LO_RDV_PORT" 2>/dev/null || echo none)
  [[ $code == 200 ]] || failed+=("$g: /healthz answered $code afterwards")
  lo_stop "$LO_RDV_PID"
  LO_RDV_PID="" rc=$LO_RC
  ((rc == 0)) || failed+=("$g: the service exited with $rc after SIGTERM")
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)\|runtime error:' "$tmp/rdv.log"; then
    failed+=("$g: sanitizer report in the service log")
  fi
done
((${#failed[@]} == 0)) || die "${failed[*]}"
echo "test_rendezvous_hostile: PASS"
