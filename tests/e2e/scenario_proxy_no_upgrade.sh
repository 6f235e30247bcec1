#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# e2e.proxy_no_upgrade: nginx in front of the rendezvous, configured without
# the WebSocket upgrade headers (a common mistake): GET /whoami works through
# it, the WebSocket upgrade does not. Issue 6 item 4, on the old code the
# worker hung forever here, and in service mode leaked a libwebsockets
# context (descriptors) per retry and ignored SIGTERM.
# Expected:
#   1. a one-shot worker exits 3 within WS_OPEN_TIMEOUT plus a margin, with
#      an ERROR line saying the server did not accept the upgrade;
#   2. a service-mode worker retries (exit_code 3 per attempt) with the
#      same number of open descriptors after its 2nd and its 4th attempt
#      (/proc/PID/fd, counted in the backoff between attempts);
#   3. it stops on SIGTERM with 143.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"
LAB_PROXY_UPGRADE=0
# shellcheck source=lib/proxy.sh
source "$(dirname "$0")/lib/proxy.sh"

lab_create
lab_require_binaries
lab_add_nat nata preserving
lab_add_worker_host a nata
lab_add_public_host c
lab_start_rendezvous_behind_proxy
lab_describe >&2
grep -q 'proxy_set_header Upgrade' "$LAB_DIR/nginx.conf" &&
  lab_fail "the proxy configuration passes the upgrade; this scenario needs one that does not"

NEXT='^service mode: next attempt in '
UPGRADE_MSG='did not accept the WebSocket upgrade'

# 1. one shot
lab_run_worker a a noup WS_OPEN_TIMEOUT=5
lab_wait_exit a 20 || lab_fail "the one-shot worker did not exit within 20 s (hangs)"
lab_expect_rc a 3
msg=$(lab_json_field a "$UPGRADE_MSG" message)
[[ -n $msg ]] || lab_fail "worker a logged no '$UPGRADE_MSG' line: $(grep -m1 ERROR "$LAB_DIR/a.err")"
lab_log "ok: one-shot worker: exit 3 after ${LAB_ELAPSED[a]} s: $msg"

# 2. service mode: bounded descriptors over the retries
lab_run_worker s c noup2 SERVICE_MODE=1 WS_OPEN_TIMEOUT=5
pid=${LAB_PID[s]}
fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# wait_attempts N: N "next attempt" lines (bounded: 1+2+4+8 s of backoff,
# +-25 %, plus the attempts themselves).
wait_attempts() {
  local n=400
  while ((n-- > 0)) && (($(lab_json_count s "$NEXT") < $1)); do
    _lab_alive "$pid" || lab_fail "the service-mode worker exited: $(tail -n 3 "$LAB_DIR/s.err")"
    sleep 0.1
  done
  (($(lab_json_count s "$NEXT") >= $1)) || lab_fail "fewer than $1 retries within 40 s"
  sleep 0.3 # into the backoff: the failed attempt's handles have closed
}
wait_attempts 2
f2=$(fds)
wait_attempts 4
f4=$(fds)
for k in 1 2 3 4; do
  e=$("$LAB_PY" "$LAB_JSONLOG" field "$LAB_DIR/s.err" "$NEXT" exit_code "$k")
  [[ $e == 3 ]] || lab_fail "retry $k was not after exit_code 3"
done
((f4 <= f2)) || lab_fail "descriptors grew over the retries: $f2 after attempt 2, $f4 after attempt 4"
lab_log "ok: service mode retried 4 times with bounded descriptors ($f2 after attempt 2, $f4 after attempt 4)"

# 3. SIGTERM
kill -TERM "$pid"
lab_wait_exit s 10 || lab_fail "the service-mode worker ignored SIGTERM"
lab_expect_rc s 143
lab_pass "proxy_no_upgrade: exit 3 with the reason, bounded retries, SIGTERM honoured"
