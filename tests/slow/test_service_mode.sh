#!/usr/bin/env bash
# slow.test_service_mode: the worker in service mode (as on Cloud Run) keeps
# its health server up and retries with backoff instead of exiting; it pairs
# when a peer comes, goes on afterwards, and stops with 143 on SIGTERM.
# Loopback only (the rendezvous is bound to 127.0.0.1), every wait bounded,
# every process killed on exit (trap), also on failure.
#
# Run for two ways of switching service mode on (src/cli/greet.c):
#   svc   SERVICE_MODE=1
#   ksvc  K_SERVICE=hp-test with SERVICE_MODE unset (what Cloud Run sets)
# each asserting:
#   1. the start line says service_mode true;
#   2. with WS_RECV_TIMEOUT=1 and no peer, attempts end with exit_code 4 and
#      "service mode: next attempt in ..." lines; the backoff grows (1st
#      retry_in_ms in 750-1250, 2nd in 1500-2500: 1 s, then 2 s, +-25 %);
#      GET /healthz answers with "attempts" >= 2 while the process lives;
#   3. a second, one-shot worker in the same room: it exits 0 with the
#      service-mode worker's greeting; the service-mode worker logs the direct
#      connection and the greeting, logs exit_code 0 with the backoff reset
#      (retry_in_ms 750-1250), and goes on: still alive, and /healthz shows
#      a new attempt after the successful one;
#   4. SIGTERM: exit code 143, and the health port is closed afterwards.
# And a control: K_SERVICE set with SERVICE_MODE=0 is a one-shot worker
# (service_mode false, exit 4 after its WS_RECV_TIMEOUT).
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set (the build dir with holepunch and holepunch-rendezvous)}
PY=/usr/bin/python3
JSONLOG="$(dirname "$0")/../lib/jsonlog.py"
for b in holepunch holepunch-rendezvous; do
  [[ -x "$B/$b" ]] || { echo "FAIL: $B/$b is missing; build first (scripts/build.sh)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "FAIL: curl is not installed (scripts/deps.sh)" >&2; exit 1; }
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"

tmp=$(mktemp -d "/tmp/hp-svc-$$-XXXX")
pids=()
cleanup() {
  local rc=$? p n
  set +e
  lo_stop "$LO_RDV_PID"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  n=30
  for p in "${pids[@]}"; do
    while ((n > 0)) && kill -0 "$p" 2>/dev/null && [[ "$(ps -o stat= -p "$p" 2>/dev/null)" != Z* ]]; do
      sleep 0.1
      n=$((n - 1))
    done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if ((rc != 0)); then
    for f in "$tmp"/*.err "$tmp"/*.out; do
      [[ -s "$f" ]] || continue
      echo "----- $(basename "$f") (last 30 lines) -----" >&2
      tail -n 30 "$f" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "[service_mode] $*" >&2; }

# wait_exit PID TIMEOUT: wait (bounded) for PID; sets RC. Fails on timeout.
wait_exit() {
  lo_wait "$1" "$2" || fail "$LO_ERR"
  RC=$LO_RC
}

# jfield FILE MESSAGE_EREGEX FIELD [N]: FIELD of the Nth (default 1st) JSON
# log line whose message matches; "" if none. null/true/false as JSON.
jfield() {
  "$PY" "$JSONLOG" field "$@"
}

# jcount FILE MESSAGE_EREGEX [FIELD VALUE]: matching JSON log lines.
jcount() {
  "$PY" "$JSONLOG" count "$@"
}

# jwhere FILE MESSAGE_EREGEX FIELD VALUE OUT: the OUT field of the first
# matching JSON log line whose FIELD is VALUE; "" if none.
jwhere() {
  "$PY" "$JSONLOG" where "$@"
}

# health PORT: the worker's GET /healthz body ("" when it does not answer).
health() { curl -fsS -m 2 "http://127.0.0.1:$1/healthz" 2>/dev/null || true; }

# hfield JSON FIELD: a field of a /healthz body.
hfield() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"; }

# port_closed PORT: nothing accepts TCP on 127.0.0.1:PORT.
port_closed() {
  "$PY" -c 'import socket,sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)' "$1"
}

# in_range VALUE LO HI
in_range() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }

# --- the rendezvous -----------------------------------------------------------
lo_start_rendezvous "$tmp/rdv.err" LOG_LEVEL=debug || fail "$LO_ERR"
rport=$LO_RDV_PORT
URL="http://127.0.0.1:$rport"
say "rendezvous on $URL"

# The worker's environment: nothing inherited that switches service mode.
# One host: the peers' candidates are 127.0.0.1 (ALLOW_LOOPBACK_CANDIDATES).
worker_env=(env -u SERVICE_MODE -u K_SERVICE RENDEZVOUS_SERVICE_URL="$URL" ALLOW_LOOPBACK_CANDIDATES=1
  WS_OPEN_TIMEOUT=5 P2P_CONNECT_TIMEOUT=10 P2P_MSG_TIMEOUT=5 LOG_FORMAT=json LOG_LEVEL=debug)
NEXT='^service mode: next attempt in '

# run_variant NAME VAR=VALUE...: the whole sequence for one way of switching
# service mode on.
run_variant() {
  local name=$1 room="svc-$1-$$" hp ip pb s p n h k att att_ok r1 r2 r0 e
  shift
  hp=$(lo_free_port) ip=$(lo_free_port) pb=$(lo_free_port)
  "${worker_env[@]}" ROOM="$room" WORKER_ID=svc PORT="$hp" INTERNAL_TCP_PORT="$ip" \
    WS_RECV_TIMEOUT=1 "$@" "$B/holepunch" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  s=$!
  pids+=("$s")
  say "$name: service-mode worker (pid $s, $*) in room $room, health on :$hp"

  # 1. started in service mode
  n=100
  while ((n-- > 0)) && [[ -z "$(jfield "$tmp/$name.err" ' starting$' service_mode)" ]]; do sleep 0.05; done
  [[ "$(jfield "$tmp/$name.err" ' starting$' service_mode)" == true ]] ||
    fail "$name: the start line does not say service_mode true: $(head -n 1 "$tmp/$name.err")"

  # 2. no peer: attempts fail with 4 and are retried with a growing backoff
  n=300 # 30 s: two attempts of 1 s plus backoffs of at most 1.25 + 2.5 s
  while ((n-- > 0)) && (($(jcount "$tmp/$name.err" "$NEXT") < 2)); do
    lo_alive "$s" || { wait "$s" || true; fail "$name: the service-mode worker exited instead of retrying"; }
    sleep 0.1
  done
  (($(jcount "$tmp/$name.err" "$NEXT") >= 2)) || fail "$name: fewer than two retries logged within 30 s"
  lo_alive "$s" || fail "$name: the service-mode worker exited"
  for k in 1 2; do
    e=$(jfield "$tmp/$name.err" "$NEXT" exit_code $k)
    [[ $e == 4 ]] || fail "$name: retry $k after exit_code '$e', expected 4 (no peer within WS_RECV_TIMEOUT)"
  done
  r1=$(jfield "$tmp/$name.err" "$NEXT" retry_in_ms 1)
  r2=$(jfield "$tmp/$name.err" "$NEXT" retry_in_ms 2)
  in_range "$r1" 750 1250 || fail "$name: first retry_in_ms '$r1', expected 1000 +-25 %"
  in_range "$r2" 1500 2500 || fail "$name: second retry_in_ms '$r2', expected 2000 +-25 % (doubled)"
  h=$(health "$hp")
  [[ -n "$h" ]] || fail "$name: GET /healthz on :$hp did not answer during the retries"
  [[ $(hfield "$h" status) == ok && $(hfield "$h" id) == svc && $(hfield "$h" room) == "$room" ]] ||
    fail "$name: /healthz: $h"
  att=$(hfield "$h" attempts)
  in_range "$att" 2 1000 || fail "$name: /healthz attempts '$att', expected >= 2: $h"
  say "ok: $name retried (backoff ${r1} ms, then ${r2} ms), still alive; /healthz: $h"

  # 3. a one-shot peer: the pair connects, the service-mode worker goes on
  "${worker_env[@]}" SERVICE_MODE=0 ROOM="$room" WORKER_ID=peer PORT=0 INTERNAL_TCP_PORT="$pb" \
    WS_RECV_TIMEOUT=30 "$B/holepunch" >"$tmp/$name-peer.out" 2>"$tmp/$name-peer.err" </dev/null &
  p=$!
  pids+=("$p")
  wait_exit "$p" 40
  ((RC == 0)) || fail "$name: the one-shot peer exited with $RC, expected 0"
  [[ "$(cat "$tmp/$name-peer.out")" == "peer svc says: hello from svc in room $room" ]] ||
    fail "$name: the one-shot peer printed: $(cat "$tmp/$name-peer.out")"
  n=100
  while ((n-- > 0)) && (($(jcount "$tmp/$name.err" "$NEXT" exit_code 0) < 1)); do
    lo_alive "$s" || break
    sleep 0.1
  done
  lo_alive "$s" || { wait "$s" || true; fail "$name: the service-mode worker exited after the pairing"; }
  (($(jcount "$tmp/$name.err" '^direct connection established$' peer peer) == 1)) ||
    fail "$name: the service-mode worker logged no direct connection to peer"
  (($(jcount "$tmp/$name.err" '^message exchange complete$') == 1)) ||
    fail "$name: the service-mode worker logged no complete message exchange"
  grep -qx "peer peer says: hello from peer in room $room" "$tmp/$name.out" ||
    fail "$name: the service-mode worker printed: $(cat "$tmp/$name.out")"
  r0=$(jwhere "$tmp/$name.err" "$NEXT" exit_code 0 retry_in_ms)
  [[ -n $r0 ]] || fail "$name: no 'next attempt' line with exit_code 0 after the pairing"
  in_range "$r0" 750 1250 || fail "$name: retry_in_ms after a success '$r0', expected 1000 +-25 % (reset)"
  att_ok=$(hfield "$(health "$hp")" attempts 2>/dev/null || true)
  in_range "$att_ok" 1 1000 || fail "$name: /healthz did not answer after the pairing"
  n=100 # the next attempt starts after about 1 s
  while ((n-- > 0)); do
    att=$(hfield "$(health "$hp")" attempts 2>/dev/null || echo 0)
    in_range "$att" $((att_ok + 1)) 1000 && break
    sleep 0.1
  done
  in_range "$att" $((att_ok + 1)) 1000 ||
    fail "$name: /healthz attempts stayed at '$att' after the success ($att_ok): no new attempt"
  lo_alive "$s" || fail "$name: the service-mode worker exited after the pairing"
  say "ok: $name paired with the one-shot peer (which exited 0), backoff reset (${r0} ms), attempt $att started"

  # 4. SIGTERM: 143, health port closed
  kill -TERM "$s"
  wait_exit "$s" 10
  ((RC == 143)) || fail "$name: exit code $RC after SIGTERM, expected 143"
  port_closed "$hp" || fail "$name: the health port $hp still accepts connections after the exit"
  say "ok: $name exited with 143 on SIGTERM, health port $hp closed"
}

run_variant svc SERVICE_MODE=1
run_variant ksvc K_SERVICE=hp-test

# Control: K_SERVICE with SERVICE_MODE=0 is a one-shot worker (exit 4).
hp=$(lo_free_port) ip=$(lo_free_port)
"${worker_env[@]}" K_SERVICE=hp-test SERVICE_MODE=0 ROOM="svc-off-$$" WORKER_ID=off PORT="$hp" \
  INTERNAL_TCP_PORT="$ip" WS_RECV_TIMEOUT=1 "$B/holepunch" >"$tmp/off.out" 2>"$tmp/off.err" </dev/null &
o=$!
pids+=("$o")
wait_exit "$o" 20
((RC == 4)) || fail "control: K_SERVICE=hp-test SERVICE_MODE=0 exited with $RC, expected 4 (no peer, one shot)"
[[ "$(jfield "$tmp/off.err" ' starting$' service_mode)" == false ]] ||
  fail "control: the start line does not say service_mode false"
(($(jcount "$tmp/off.err" "$NEXT") == 0)) || fail "control: the one-shot worker scheduled a retry"
say "ok: control: K_SERVICE with SERVICE_MODE=0 is one-shot (exit 4)"

kill -TERM "$LO_RDV_PID"
wait_exit "$LO_RDV_PID" 15
LO_RDV_PID=""
((RC == 0)) || fail "the rendezvous exited with $RC after SIGTERM, expected 0"
echo "PASS"
