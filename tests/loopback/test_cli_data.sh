#!/usr/bin/env bash
# loopback.test_cli_data: the data subcommands as a user runs them, two
# `holepunch` processes meeting through `holepunch-rendezvous` on 127.0.0.1
# (punch, secure channel, app). Asserts:
#   1. `holepunch code` prints one code of the documented shape, a fresh
#      one each time;
#   2. `pipe --code C` both ways: 4 MiB and 3 MiB of random bytes, equal
#      sha256, both exit 0, both log that proved it knows the code;
#   3. HOLEPUNCH_CODE works as --code does; without a code (ROOM) pipe still
#      works and the log says the peer is unauthenticated;
#   4. a stranger who joins the code's room by its name, without the code:
#      the engine drops it and waits for the right peer until WS_RECV_TIMEOUT;
#      both sides exit 7, the side with the code says the peer does not know
#      the code, and no byte of user data crosses either way;
#   5. `forward --code C PORT` / `expose --code C 127.0.0.1:ECHO`: 8
#      concurrent echoes exact; SIGTERM on forward: 143, expose then exits 0;
#   6. bad arguments: exit 2 naming what is wrong;
#   7. a sender killed (SIGKILL) in the middle of a transfer: the receiver
#      does not take the cut stream for a complete one: exit 6, not 0.
# Loopback only, every process bounded by timeout(1), killed on exit.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
CHECK="$(dirname "$0")/../lib/tunnel_check.py"
tmp=$(mktemp -d "/tmp/hp-clidata-$$-XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  lo_stop "$LO_RDV_PID"
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
sum() { sha256sum "$1" | cut -d' ' -f1; }
wait_listen() {
  for _ in $(seq 200); do [[ -n $(ss -Hltn "sport = :$1") ]] && return 0; sleep 0.05; done
  return 1
}

lo_start_rendezvous "$tmp/rdv.log" || { echo "FAIL: $LO_ERR" >&2; exit 1; }
export RENDEZVOUS_SERVICE_URL=http://127.0.0.1:$LO_RDV_PORT LOG_FORMAT=json ALLOW_LOOPBACK_CANDIDATES=1
W=(timeout 60 "$B/holepunch")

# 1. codes
c1=$("$B/holepunch" code)
c2=$("$B/holepunch" code)
re='^[0-9a-z]{6}-[0-9a-z]{6}-[0-9a-z]{6}-[0-9a-z]{6}-[0-9a-z]{5}$'
if [[ $c1 =~ $re && $c2 =~ $re && $c1 != "$c2" ]]; then ok; else bad "codes: '$c1' '$c2'"; fi

head -c $((4 * 1024 * 1024)) /dev/urandom >"$tmp/a"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$tmp/b"

# pipe_pair TAG ARGS_A -- ARGS_B: a pipe each side (a sends a, b sends b);
# sets RA RB.
pipe_pair() {
  local tag=$1 a=() b=()
  shift
  while [[ $1 != -- ]]; do a+=("$1"); shift; done
  shift
  b=("$@")
  "${W[@]}" pipe --internal-tcp-port "$(lo_free_port)" "${a[@]}" <"$tmp/a" >"$tmp/$tag.b.out" \
    2>"$tmp/$tag.a.log" &
  local pa=$!
  pids+=("$pa")
  RB=0
  "${W[@]}" pipe --internal-tcp-port "$(lo_free_port)" "${b[@]}" <"$tmp/b" >"$tmp/$tag.a.out" \
    2>"$tmp/$tag.b.log" || RB=$?
  RA=0
  wait "$pa" || RA=$?
}

# 2. pipe with --code
pipe_pair code --code "$c1" -- --code "$c1"
if [[ $RA -ne 0 || $RB -ne 0 ]]; then
  bad "pipe --code: exit $RA/$RB: $(tail -n 3 "$tmp/code.a.log" "$tmp/code.b.log")"
elif [[ $(sum "$tmp/a") != "$(sum "$tmp/code.a.out")" || $(sum "$tmp/b") != "$(sum "$tmp/code.b.out")" ]]; then
  bad "pipe --code: checksums differ"
elif ! grep -q 'proved it knows the code' "$tmp/code.a.log" ||
  ! grep -q 'proved it knows the code' "$tmp/code.b.log"; then
  bad "pipe --code: no authentication line in the logs"
else
  ok
fi

# 3. HOLEPUNCH_CODE, and no code at all
export HOLEPUNCH_CODE=$c2
pipe_pair env --
unset HOLEPUNCH_CODE
if [[ $RA -eq 0 && $RB -eq 0 && $(sum "$tmp/a") == "$(sum "$tmp/env.a.out")" ]] &&
  grep -q 'proved it knows the code' "$tmp/env.a.log"; then
  ok
else
  bad "HOLEPUNCH_CODE: exit $RA/$RB"
fi
pipe_pair nocode --room "nocode$$" -- --room "nocode$$"
if [[ $RA -eq 0 && $RB -eq 0 && $(sum "$tmp/b") == "$(sum "$tmp/nocode.b.out")" ]] &&
  grep -q 'the peer is unauthenticated' "$tmp/nocode.a.log"; then
  ok
else
  bad "no code: exit $RA/$RB, or no unauthenticated warning"
fi

# 4. a stranger in the code's room, without the code
c3=$("$B/holepunch" code)
room=$(
  "${W[@]}" pipe --code "$c3" --ws-recv-timeout 0.5 --internal-tcp-port "$(lo_free_port)" </dev/null 2>&1 |
    sed -n 's/.*"room":"\(hp1\.[0-9a-f]*\)".*/\1/p' | head -n1
) || true
if [[ -z $room ]]; then
  bad "stranger: could not learn the code's room from the log"
else
  pipe_pair stranger --code "$c3" --ws-recv-timeout 4 -- --room "$room" --ws-recv-timeout 4
  if [[ $RA -eq 7 && $RB -eq 7 ]] && grep -q 'does not know the code' "$tmp/stranger.a.log" &&
    [[ ! -s $tmp/stranger.a.out && ! -s $tmp/stranger.b.out ]]; then
    ok
  else
    bad "stranger: exit $RA/$RB (want 7/7), outputs $(stat -c %s "$tmp/stranger.a.out" "$tmp/stranger.b.out" | tr '\n' ' ')"
  fi
fi

# 5. forward / expose
echo_port=$(lo_free_port)
"$LO_PY" "$CHECK" serve "$echo_port" 90 &
pids+=("$!")
wait_listen "$echo_port" || bad "echo server not up"
fwd=$(lo_free_port)
"${W[@]}" expose --code "$c1" --internal-tcp-port "$(lo_free_port)" "127.0.0.1:$echo_port" \
  2>"$tmp/x.log" &
xp=$!
pids+=("$xp")
"${W[@]}" forward --code "$c1" --internal-tcp-port "$(lo_free_port)" "$fwd" 2>"$tmp/f.log" &
fp=$!
pids+=("$fp")
if ! wait_listen "$fwd"; then
  bad "forward: not listening on $fwd: $(tail -n 3 "$tmp/f.log")"
else
  if out=$("$LO_PY" "$CHECK" concurrent "$fwd" 8 131072 2>&1); then ok; else bad "forward/expose: $out"; fi
  kill -TERM "$fp"
  if lo_wait "$fp" 10 && [[ $LO_RC -eq 143 ]]; then ok; else bad "forward after SIGTERM: exit ${LO_RC:-none}"; fi
  if lo_wait "$xp" 10 && [[ $LO_RC -eq 0 ]]; then ok; else bad "expose after the peer stopped: exit ${LO_RC:-none}: $(tail -n 2 "$tmp/x.log")"; fi
fi

# 6. bad arguments
expect2() {
  local re=$1 out rc=0
  shift
  out=$("$@" 2>&1 </dev/null) || rc=$?
  if [[ $rc -eq 2 ]] && grep -Eq -- "$re" <<<"$out"; then ok; else bad "'$*': exit $rc, output ${out:0:300}"; fi
}
expect2 'HOLEPUNCH_CODE is not valid' "$B/holepunch" pipe --code not-a-code
expect2 'forward needs \[BIND:\]PORT' "$B/holepunch" forward --code "$c1"
expect2 'the port must be 1..65535' "$B/holepunch" forward 70000
expect2 'is not HOST:PORT' "$B/holepunch" expose localhost
expect2 'cannot listen on 127.0.0.1:'"$LO_RDV_PORT" "$B/holepunch" forward "$LO_RDV_PORT"
expect2 'takes none' "$B/holepunch" code extra

# 7. the sender dies mid-transfer
mkfifo "$tmp/slowin"
"${W[@]}" pipe --code "$c1" --internal-tcp-port "$(lo_free_port)" </dev/null >"$tmp/cut.out" \
  2>"$tmp/cut.r.log" &
rp=$!
pids+=("$rp")
"${W[@]}" pipe --code "$c1" --internal-tcp-port "$(lo_free_port)" <"$tmp/slowin" >/dev/null \
  2>"$tmp/cut.s.log" &
sp=$!
pids+=("$sp")
# Feed 1 MiB, then hold the input open: the sender never reaches EOF.
(head -c 1048576 /dev/urandom; sleep 30) >"$tmp/slowin" &
pids+=("$!")
got=0
for _ in $(seq 300); do
  got=$(stat -c %s "$tmp/cut.out" 2>/dev/null || echo 0)
  ((got >= 1048576)) && break
  sleep 0.05
done
((got >= 1048576)) || bad "the first MiB never arrived ($got bytes)"
kill -KILL "$(pgrep -P "$sp")" 2>/dev/null || true
wait "$sp" 2>/dev/null || true
if lo_wait "$rp" 15 && [[ $LO_RC -eq 6 ]]; then
  ok
  echo "receiver's last line: $(tail -n 1 "$tmp/cut.r.log")"
else
  bad "receiver after its sender was killed: exit ${LO_RC:-none}, expected 6: $(tail -n 2 "$tmp/cut.r.log")"
fi

echo "cli data: $passed passed, $failed failed"
((failed == 0))
