#!/usr/bin/env bash
# tests/deploy/test_rendezvous_startup.sh - holepunch-rendezvous refuses to
# start, with exit code 1 and a clear ERROR log event, instead of running
# without a listener or hanging:
#  1. the port is already in use (a listener on 127.0.0.1, checked with BIND
#     127.0.0.1 and 0.0.0.0);
#  2. BIND is not an address of this host (192.0.2.1, TEST-NET-1: bind only,
#     no packet is sent);
#  3. (was: the lws libuv plugin missing) the service no longer links
#     libwebsockets, so nothing is loaded at run time: ldd shows no
#     libwebsockets (nor for the worker and libholepunch, since issue 10),
#     and it starts in a private mount namespace where the old plugin path
#     is hidden (needs root);
# and, as the control, a normal start logs "listening" only for a port that
# answers /healthz, and exits 0 on SIGTERM.
# Loopback only; every wait is bounded. Env: HP_BUILD_DIR, HP_SOURCE_DIR.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
RDV=$HP_BUILD_DIR/holepunch-rendezvous
PY=/usr/bin/python3
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"
EXIT_WAIT=10 # s a failing start may take at most (it takes milliseconds)

die() { echo "test_rendezvous_startup: FAIL: $*" >&2; exit 1; }

[[ -x $RDV ]] || die "$RDV is not built"
(($(id -u) == 0)) || die "needs root (case 3 uses a private mount namespace)"
command -v unshare >/dev/null || die "unshare missing (util-linux)"

tmp=$(mktemp -d "/tmp/hp-test-startup.$$.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? p
  set +e
  lo_stop "$LO_RDV_PID"
  for p in "${PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if ((rc != 0)); then
    for f in "$tmp"/*.log; do
      [[ -f $f ]] || continue
      echo "--- $f" >&2
      tail -n 20 "$f" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# wait_exit PID SECONDS: sets RC to the exit status of PID (a child of this
# shell, so not from a $(...) subshell), or 255 if it still runs after
# SECONDS (it is then killed).
wait_exit() {
  if lo_wait "$1" "$2"; then
    RC=$LO_RC
  else
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null || true
    RC=255
  fi
}

# expect_refused NAME LOG PATTERN CMD...: CMD must exit 1 within EXIT_WAIT s,
# log an ERROR event of the rendezvous matching PATTERN, and never log
# "listening".
expect_refused() {
  local name=$1 log=$2 pattern=$3 pid rc
  shift 3
  "$@" 2>"$log" </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait_exit "$pid" "$EXIT_WAIT"
  rc=$RC
  ((rc != 255)) || die "$name: still running after $EXIT_WAIT s (hangs instead of exiting 1)"
  ((rc == 1)) || die "$name: exit code $rc, expected 1"
  grep '"severity":"ERROR"' "$log" | grep '"component":"rendezvous"' | grep -q -- "$pattern" ||
    die "$name: no ERROR event of the rendezvous matching '$pattern' in the log"
  if grep -q '"message":"listening' "$log"; then
    die "$name: logged \"listening\" although it cannot listen"
  fi
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)' "$log"; then
    die "$name: sanitizer report in the log"
  fi
  echo "ok   $name: exit 1 with an ERROR event matching '$pattern'"
}

base_env=(env LOG_FORMAT=json LOG_LEVEL=info MAX_CONNECTIONS=1000)

# --- 1. port in use ------------------------------------------------------------
# A listener that holds a loopback port for at most 60 s; it prints the port.
# The file exists before the poll reads it.
: >"$tmp/holder.port"
"$PY" -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
' >>"$tmp/holder.port" &
PIDS+=("$!")
busy=""
for _ in $(seq 200); do
  busy=$(cat "$tmp/holder.port")
  [[ -n $busy ]] && break
  sleep 0.1
done
[[ -n $busy ]] || die "the port holder did not start"

for bind in 127.0.0.1 0.0.0.0; do
  expect_refused "port $busy in use (BIND=$bind)" "$tmp/inuse-$bind.log" "already in use" \
    "${base_env[@]}" PORT="$busy" BIND="$bind" "$RDV"
done

# --- 2. BIND not local -----------------------------------------------------------
expect_refused "BIND=192.0.2.1 (not local)" "$tmp/nonlocal.log" "not an address of this host" \
  "${base_env[@]}" PORT=0 BIND=192.0.2.1 "$RDV"

# --- 3. no run-time plugin ----------------------------------------------------------
if ldd "$RDV" | grep -q libwebsockets; then
  die "holepunch-rendezvous still links libwebsockets"
fi
# Nor does the worker or the library since the WebSocket client moved to
# src/net (issue 10).
for b in "$HP_BUILD_DIR/holepunch" "$HP_BUILD_DIR/libholepunch.so"; do
  if ldd "$b" | grep -q libwebsockets; then
    die "$b still links libwebsockets"
  fi
done
plugin=$(find /usr/lib -name 'libwebsockets-evlib_uv.so' 2>/dev/null | head -n1)
plugin=${plugin:-/dev/null}
: >"$tmp/noplugin.log"
# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner sh
env PORT=0 BIND=127.0.0.1 LOG_FORMAT=json LOG_LEVEL=info SHUTDOWN_TIMEOUT=1 \
  unshare -m sh -c '[ "$1" = /dev/null ] || mount --bind /dev/null "$1"; exec "$2"' sh "$plugin" "$RDV" \
  2>"$tmp/noplugin.log" </dev/null &
pid=$!
PIDS+=("$pid")
for _ in $(seq 100); do
  grep -q '"message":"listening on' "$tmp/noplugin.log" && break
  sleep 0.05
done
grep -q '"message":"listening on' "$tmp/noplugin.log" ||
  die "no run-time plugin: the service did not start with the lws plugin hidden"
kill -TERM "$pid"
wait_exit "$pid" "$EXIT_WAIT"
((RC == 0)) || die "no run-time plugin: exit code $RC after SIGTERM, expected 0"
echo "ok   no run-time plugin: no libwebsockets linked, starts with the lws plugin hidden"

# --- control: a normal start ------------------------------------------------------------
lo_start_rendezvous "$tmp/normal.log" LOG_LEVEL=info MAX_CONNECTIONS=1000 SHUTDOWN_TIMEOUT=2 ||
  die "normal start: $LO_ERR"
pid=$LO_RDV_PID port=$LO_RDV_PORT
[[ -n $port && $port != 0 ]] || die "normal start: no \"listening\" event with a port"
body=$("$PY" -c '
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=5).read().decode())
' "$port") || die "normal start: no /healthz answer on the logged port $port"
[[ $body == *'"status":"ok"'* ]] || die "normal start: /healthz answered $body"
kill -TERM "$pid"
wait_exit "$pid" "$EXIT_WAIT"
LO_RDV_PID="" rc=$RC
((rc == 0)) || die "normal start: exit code $rc after SIGTERM, expected 0"
grep -q '"message":"stopped"' "$tmp/normal.log" || die "normal start: no \"stopped\" event"
if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)' "$tmp/normal.log"; then
  die "normal start: sanitizer report in the log"
fi
echo "ok   normal start: listening on 127.0.0.1:$port, /healthz ok, exit 0 on SIGTERM"
echo "test_rendezvous_startup: PASS"
