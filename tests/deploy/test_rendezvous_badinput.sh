#!/usr/bin/env bash
# tests/deploy/test_rendezvous_badinput.sh - tests/tools/rdv_badinput.py
# against holepunch-rendezvous on a loopback port, twice:
#  1. TRUST_PROXY=0: bad input is refused case by case, and X-Forwarded-For is
#     ignored (a client cannot claim an address);
#  2. TRUST_PROXY=1: the same, and the client address is the right-most
#     X-Forwarded-For entry (the one the trusted proxy appended), with the
#     TCP peer used when that entry is not an IP address.
# Short HELLO_TIMEOUT/HTTP_TIMEOUT keep the timeout cases quick. Loopback only,
# every wait bounded. Env: HP_BUILD_DIR, HP_SOURCE_DIR.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
RDV=$HP_BUILD_DIR/holepunch-rendezvous
PY=/usr/bin/python3
TOOL=$top/tests/tools/rdv_badinput.py
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"

die() { echo "test_rendezvous_badinput: FAIL: $*" >&2; exit 1; }

[[ -x $RDV ]] || die "$RDV is not built"
$PY -c 'import websockets' 2>/dev/null || die "$PY lacks websockets (scripts/deps.sh)"

tmp=$(mktemp -d "/tmp/hp-test-badinput.$$.XXXXXX")
cleanup() {
  local rc=$?
  set +e
  lo_stop "$LO_RDV_PID"
  if ((rc != 0)); then
    echo "test_rendezvous_badinput: server log:" >&2
    tail -n 30 "$tmp/rdv.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

for trust in 0 1; do
  lo_start_rendezvous "$tmp/rdv.log" TRUST_PROXY="$trust" HELLO_TIMEOUT=2 HTTP_TIMEOUT=2 \
    LOG_LEVEL=info SHUTDOWN_TIMEOUT=2 || die "TRUST_PROXY=$trust: $LO_ERR"
  port=$LO_RDV_PORT
  echo "test_rendezvous_badinput: TRUST_PROXY=$trust, service on 127.0.0.1:$port"
  args=(--hello-timeout 2 --http-timeout 2)
  ((trust)) && args+=(--trust-proxy)
  timeout 150 "$PY" "$TOOL" "http://127.0.0.1:$port" "${args[@]}" ||
    die "TRUST_PROXY=$trust: rdv_badinput.py failed"
  lo_stop "$LO_RDV_PID"
  LO_RDV_PID="" rc=$LO_RC
  ((rc == 0)) || die "TRUST_PROXY=$trust: the service exited with $rc after SIGTERM"
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)' "$tmp/rdv.log"; then
    die "TRUST_PROXY=$trust: sanitizer report in the service log"
  fi
done
echo "test_rendezvous_badinput: PASS"
