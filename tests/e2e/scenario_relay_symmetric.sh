#!/usr/bin/env bash
# e2e.relay_symmetric: both workers behind port-randomizing NATs (nft
# "masquerade random,fully-random"), where a direct TCP connection is
# impossible (e2e.symmetric), with the relay on (issue 8):
#  1. greet: punching fails, the relay attempt (RELAY_AFTER=1) joins both on
#     the rendezvous' /relay, the secure handshake runs over it; both exit 0,
#     print the other's greeting, log "connected to ...: relayed" with why
#     direct failed and no direct connection; the rendezvous logs the
#     relayed session and both results "relayed";
#  2. pipe, 20 MiB each way through the relay: equal sha256 both ways, both
#     exit 0;
#  2b. only one worker relays (the other RELAY_AFTER=off): both exit 5,
#     the relaying one after its relay attempt's bound, saying so;
#  3. the rendezvous killed (SIGKILL) in the middle of a relayed pipe (a
#     4 MiB/s RELAY_RATE makes it last): both workers stop by themselves
#     with exit 6 (the transfer failed) and say why, within the bound.
# The bounds assert that nothing hangs; they are not speed measurements.
set -euo pipefail
# shellcheck source=lib/lab.sh
source "$(dirname "$0")/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata random
lab_add_nat natb random
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_describe >&2
lab_start_rendezvous RELAY_RATE=0

# --- 1. greet --------------------------------------------------------------
room="relay-greet-$$"
lab_run_worker ga a "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=1
lab_run_worker gb b "$room" P2P_CONNECT_TIMEOUT=5 RELAY_AFTER=1
lab_wait_exit ga 40 || lab_fail "worker ga did not finish within 40 s"
lab_wait_exit gb 40 || lab_fail "worker gb did not finish within 40 s"
for w in ga gb; do
  other=$([[ $w == ga ]] && echo gb || echo ga)
  lab_expect_rc $w 0
  lab_expect_grep "$LAB_DIR/$w.out" "^peer $other says: " "$w printed $other's greeting"
  [[ $(lab_json_count $w '^connected to .*: relayed \(no direct connection: ') == 1 ]] ||
    lab_fail "$w did not log a relayed connection with the reason"
  [[ $(lab_json_count $w "$LAB_MSG_DIRECT") == 0 ]] || lab_fail "$w logged a direct connection"
  lab_log "$w: $(grep -o '"message":"connected to [^"]*"' "$LAB_DIR/$w.err" | head -n1)"
done
lab_expect_grep "$LAB_DIR/rendezvous.err" '"message":"relaying between (ga and gb|gb and ga)"' \
  "the rendezvous relayed the pair"
[[ $(grep -c '"message":"result relayed from' "$LAB_DIR/rendezvous.err") == 2 ]] ||
  lab_fail "the rendezvous did not get two results \"relayed\""

# --- 2. pipe, 20 MiB each way ----------------------------------------------
head -c $((20 * 1024 * 1024)) /dev/urandom >"$LAB_DIR/in.a"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$LAB_DIR/in.b"
room="relay-pipe-$$"
for w in a b; do
  lab_run "p$w" $w env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8082 \
    ROOM="$room" WORKER_ID="p$w" P2P_CONNECT_TIMEOUT=5 WS_OPEN_TIMEOUT=5 WS_RECV_TIMEOUT=20 \
    RELAY_AFTER=1 LOG_FORMAT=json LOG_LEVEL=info \
    sh -c "exec \"\$0\" pipe <\"\$1\" >\"\$2\"" "$HP_BUILD_DIR/holepunch" "$LAB_DIR/in.$w" \
    "$LAB_DIR/got.$w"
done
lab_wait_exit pa 90 || lab_fail "pipe a did not finish within 90 s"
lab_wait_exit pb 90 || lab_fail "pipe b did not finish within 90 s"
lab_expect_rc pa 0
lab_expect_rc pb 0
for w in a b; do
  other=$([[ $w == a ]] && echo b || echo a)
  [[ $(sha256sum <"$LAB_DIR/in.$w") == "$(sha256sum <"$LAB_DIR/got.$other")" ]] ||
    lab_fail "pipe: what $w sent ($(wc -c <"$LAB_DIR/in.$w") bytes) is not what $other received ($(wc -c <"$LAB_DIR/got.$other") bytes)"
  [[ $(lab_json_count "p$w" '^connected to .*: relayed') == 1 ]] ||
    [[ $(lab_json_count "p$w" '^relayed connection to .* established') == 1 ]] ||
    lab_fail "pipe $w: no log line saying the connection is relayed"
done
lab_log "ok: 20 MiB each way through the relay, sha256 equal"

# --- 2b. only one side relays: both end with exit 5, bounded --------------
room="relay-oneside-$$"
lab_run_worker oa a "$room" P2P_CONNECT_TIMEOUT=3 RELAY_AFTER=1
lab_run_worker ob b "$room" P2P_CONNECT_TIMEOUT=3 RELAY_AFTER=off
lab_wait_exit ob 30 || lab_fail "worker ob (no relay) did not give up within 30 s"
lab_wait_exit oa 40 || lab_fail "worker oa (its peer never joins the relay) did not give up within 40 s"
lab_expect_rc oa 5
lab_expect_rc ob 5
lab_expect_grep "$LAB_DIR/oa.err" 'giving up: .*the relay failed too: ' "oa says the relay failed too"
lab_log "oa: $(grep -o 'the relay failed too: [^"]*' "$LAB_DIR/oa.err" | head -n1)"

# --- 3. the rendezvous killed mid-transfer ---------------------------------
lab_stop rendezvous
unset 'LAB_PID[rendezvous]'
lab_run rendezvous2 rdv env PORT="$LAB_RDV_PORT" LOG_FORMAT=json LOG_LEVEL=debug RELAY_RATE=4194304 \
  "$HP_BUILD_DIR/holepunch-rendezvous"
lab_wait_http rdv "$LAB_RDV_URL/healthz" 10 rendezvous2 || lab_fail "the second rendezvous did not start"
room="relay-kill-$$"
for w in a b; do
  lab_run "k$w" $w env RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" INTERNAL_TCP_PORT=8082 \
    ROOM="$room" WORKER_ID="k$w" P2P_CONNECT_TIMEOUT=5 WS_OPEN_TIMEOUT=5 WS_RECV_TIMEOUT=20 \
    RELAY_AFTER=1 LOG_FORMAT=json LOG_LEVEL=info \
    sh -c "exec \"\$0\" pipe <\"\$1\" >/dev/null" "$HP_BUILD_DIR/holepunch" "$LAB_DIR/in.$w"
done
# Wait until bytes flow through the relay, then kill the service.
n=300
until grep -q '"message":"relaying between' "$LAB_DIR/rendezvous2.err" 2>/dev/null; do
  ((n-- > 0)) || lab_fail "the relayed pipe did not start within 30 s"
  sleep 0.1
done
sleep 2
kill -KILL "${LAB_PID[rendezvous2]}"
lab_log "rendezvous killed (SIGKILL) while relaying"
for w in ka kb; do
  lab_wait_exit $w 30 || lab_fail "$w did not stop within 30 s of the rendezvous' death"
  lab_expect_rc $w 6
  lab_expect_grep "$LAB_DIR/$w.err" '"message":"pipe failed after' "$w said the transfer failed"
  lab_log "$w: $(grep -o '"message":"pipe failed[^"]*"' "$LAB_DIR/$w.err" | head -n1)"
done
lab_pass "relay_symmetric: relayed greet and 20 MiB pipe each way; the rendezvous' death ends both with exit 6"
