#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.hostile_rendezvous: the worker against a rendezvous that breaks the
# protocol (tests/tools/fake_rdv.py, a scripted python websockets server on
# the rdv host) and against signaling torn down at every phase. One case per
# violation (issue 11 item 7, issue 6 items 4 and 7): the worker exits with
# the documented code (3; 4 for a ping flood, which is not a violation and
# leaves it waiting for a peer; 5 when punching cannot succeed), logs the
# reason as an ERROR line, and does so by itself within its timeouts (the old
# code hung after every failure of the WebSocket). Under the ASan build any
# sanitizer report fails the case (abort_on_error: a wrong exit code, and the
# report is looked for in the log).
#
# The worker is a public host c (203.0.113.134); the fake serves
# 198.51.100.100:8080 and, where it pairs, plays the peer (role a) on :8099.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_public_host c
lab_describe >&2

FAKE="$LAB_SOURCE_DIR/tests/tools/fake_rdv.py"
ROOM=fake
WS_OPEN=3 WS_RECV=4 P2P=2 MSG=3
BOUND=$((WS_OPEN + WS_RECV + P2P + MSG + 10)) # every timeout at once, plus a margin
failed=()

# start_fake CASE MODE: the fake on the rdv host, ready to serve.
start_fake() {
  lab_run "fake_$1" rdv "$LAB_PY" "$FAKE" --mode "$2" --port "$LAB_RDV_PORT" \
    --public-ip "$LAB_RDV_IP" --punch-port 8099 --room "$ROOM" --duration $((BOUND + 5))
  lab_wait_listen rdv "$LAB_RDV_PORT" 10 "fake_$1" || lab_fail "the fake rendezvous ($2) did not start"
}

# run_worker CASE: the worker with short timeouts.
run_worker() {
  lab_run_worker "w_$1" c "$ROOM" WS_OPEN_TIMEOUT=$WS_OPEN WS_RECV_TIMEOUT=$WS_RECV \
    P2P_CONNECT_TIMEOUT=$P2P P2P_MSG_TIMEOUT=$MSG
}

# error_line PROC: the first ERROR message of PROC's JSON log.
error_line() {
  "$LAB_PY" - "$LAB_DIR/$1.err" <<'EOF'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if isinstance(e, dict) and e.get("severity") == "ERROR":
        print(e.get("message", ""))
        break
EOF
}

# sanitizer_clean PROC: no ASan/UBSan report in PROC's stderr.
sanitizer_clean() {
  ! grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LAB_DIR/$1.err"
}

# check CASE MODE RC REGEX: one violation, one verdict.
check() {
  local c=$1 mode=$2 want=$3 re=$4 msg why=""
  start_fake "$c" "$mode"
  run_worker "$c"
  if ! lab_wait_exit "w_$c" "$BOUND"; then
    why="did not exit within $BOUND s (hangs)"
  else
    msg=$(error_line "w_$c")
    if [[ ${LAB_RC[w_$c]} != "$want" ]]; then
      why="exit ${LAB_RC[w_$c]}, expected $want (error: $msg)"
    elif ! grep -Eq -- "$re" <<<"$msg"; then
      why="error line '$msg' does not match /$re/"
    elif ! sanitizer_clean "w_$c"; then
      why="sanitizer report in its log"
    fi
  fi
  lab_stop "fake_$c"
  if [[ -n $why ]]; then
    failed+=("$c: $why")
    lab_log "FAIL $c ($mode): $why"
  else
    lab_log "ok: $c ($mode): exit $want in ${LAB_ELAPSED[w_$c]} s: $msg"
  fi
}

# --- protocol violations (issue 11 item 7) ---------------------------------
check binary binary 3 'binary frame'
check nonjson nonjson 3 'not valid JSON'
check oversized oversized 3 'larger than 65536 bytes'
check frag10m frag10m 3 'larger than 65536 bytes'
check session31 session31 3 'session "[0-9a-f]{31}" is not valid'
check session4000 session4000 3 'session "a{40}\.\.\." is not valid'
check session_upper session_upper 3 'session "[0-9A-F]{32}" is not valid: expected 32 lowercase'
check role_c role_c 3 'role "c" is not known'
check cands300 cands300 3 'has 300 entries; at most 8'
check welcome_use welcome_use 3 'id "use" is reserved'
check close_upgrade close_upgrade 3 'closed the WebSocket \(close code 1001\)'
check reset reset 3 'closed the WebSocket without a close frame while we waited for a peer'
check pingflood pingflood 4 'no peer in room fake within 4\.0 s \(WS_RECV_TIMEOUT\)'
# --- candidates that are not a peer (issue 11 item 6) ----------------------
check cand_multicast cand_multicast 3 '"224\.0\.0\.1:80" is a multicast address'
check cand_loopback cand_loopback 5 'host 127\.0\.0\.1:22: 0 sockets.*loopback.*169\.254\.169\.254:80: 0 sockets.*link-local'
# --- signaling torn down at every phase (issue 6 items 4 and 7) ------------
check before_welcome close_hello 3 'closed the WebSocket \(close code 1001\)'
check while_waiting close_welcome 3 'closed the WebSocket \(close code 1001\) while we waited for a peer in room fake'
check mid_punch close_punch 5 'giving up: no direct connection to fakepeer'
if ! lab_expect_grep "$LAB_DIR/w_mid_punch.err" 'punching goes on, the result cannot be reported' \
  "mid_punch: the worker kept punching after the WebSocket closed" 2>/dev/null; then
  failed+=("mid_punch: no 'punching goes on' line")
fi

# A good pairing with the fake as the peer: exit 0, and the result reached
# the service.
check peer_ok peer_ok 0 '^$'
grep -q '"event": "result".*"status": "direct"' "$LAB_DIR/fake_peer_ok.out" ||
  failed+=("peer_ok: the fake rendezvous got no result{direct}")

# The socket is handed over before the polite close: the fake stops reading
# after peer, so the worker's close frame is never answered (the close waits
# for its 2 s bound); the worker's greeting must arrive while its WebSocket
# is still open, not after the close gave up.
check fd_first fd_first 0 '^$'
gs=$("$LAB_PY" - "$LAB_DIR/fake_fd_first.out" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "greeting":
        print(e.get("ws_tcp_state"))
EOF
)
if [[ $gs == ESTABLISHED ]]; then
  lab_log "ok: fd_first: the greeting came while the worker's WebSocket was still open"
else
  failed+=("fd_first: the worker's WebSocket was '$gs' when its greeting arrived (the socket came after the close)")
fi

# SIGTERM after the punch, with the session's handle gone and the WebSocket
# closing on its own, while the greeting exchange waits (the peer sends none):
# exit 143, sanitizer-clean (issue 6 item 7: SIGTERM around the close).
start_fake sigterm hold_close
run_worker sigterm
lab_wait_log w_sigterm 'direct connection established' "$BOUND" ||
  failed+=("sigterm: the worker never connected to the fake peer")
kill -TERM "${LAB_PID[w_sigterm]}" 2>/dev/null || true
if ! lab_wait_exit w_sigterm 10; then
  failed+=("sigterm: no exit within 10 s of SIGTERM")
elif [[ ${LAB_RC[w_sigterm]} != 143 ]]; then
  failed+=("sigterm: exit ${LAB_RC[w_sigterm]}, expected 143")
elif ! sanitizer_clean w_sigterm; then
  failed+=("sigterm: sanitizer report")
else
  lab_log "ok: sigterm while the exchange waits: exit 143, clean"
fi
lab_stop fake_sigterm

if ((${#failed[@]})); then
  printf '  %s\n' "${failed[@]}" >&2
  lab_fail "${#failed[@]} hostile-rendezvous case(s) failed"
fi
lab_pass "hostile_rendezvous: every violation and teardown ends the worker with its documented exit code"
