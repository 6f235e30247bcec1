#!/usr/bin/env bash
# loopback.test_app_pipe: `pipe` (src/lib/app/pipe.c) between two processes
# joined by one loopback TCP connection (the TCP carrier; hp_app_loop), no
# punching. Asserts, each both ways at once with equal sha256 and exit 0 on
# both sides:
#   1. files: 4 MiB of random bytes one way, 3 MiB the other;
#   2. pipes: the same through `cat |` and `| sha256sum`, with a slow
#      reader on one side (backpressure: nothing lost, nothing stuck);
#   3. half-close: one side's input is empty (/dev/null): it still receives
#      everything, the other side gets 0 bytes and both exit 0;
#   4. SIGTERM while piping: exit 143.
# Loopback only, every process bounded by timeout(1), temp files removed.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
[[ -x $B/hp_app_loop ]] || { echo "FAIL: $B/hp_app_loop is missing; build first" >&2; exit 1; }
tmp=$(mktemp -d "/tmp/hp-pipe-$$-XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
sum() { sha256sum "$1" | cut -d' ' -f1; }

head -c $((4 * 1024 * 1024)) /dev/urandom >"$tmp/a"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$tmp/b"

# 1. files both ways
port=$(lo_free_port)
timeout 60 "$B/hp_app_loop" listen "$port" pipe <"$tmp/a" >"$tmp/b.out" 2>"$tmp/l1.err" &
l=$!
pids+=("$l")
rc_c=0
timeout 60 "$B/hp_app_loop" connect "$port" pipe <"$tmp/b" >"$tmp/a.out" 2>"$tmp/c1.err" || rc_c=$?
rc_l=0
wait "$l" || rc_l=$?
if [[ $rc_l -ne 0 || $rc_c -ne 0 ]]; then
  bad "files: exit codes $rc_l/$rc_c: $(cat "$tmp/l1.err" "$tmp/c1.err")"
elif [[ $(sum "$tmp/a") != "$(sum "$tmp/a.out")" || $(sum "$tmp/b") != "$(sum "$tmp/b.out")" ]]; then
  bad "files: checksums differ ($(stat -c %s "$tmp/a.out") and $(stat -c %s "$tmp/b.out") bytes received)"
else
  ok
fi

# 2. pipes, with a slow reader on the connect side (1 ms per 16 KiB read)
port=$(lo_free_port)
# shellcheck disable=SC2002 # cat: the input must be a pipe, not the file
(cat "$tmp/a" | timeout 60 "$B/hp_app_loop" listen "$port" pipe 2>"$tmp/l2.err" | sha256sum >"$tmp/l2.sum") &
l=$!
pids+=("$l")
rc_c=0
# shellcheck disable=SC2002 # cat: the input must be a pipe, not the file
cat "$tmp/b" | timeout 60 "$B/hp_app_loop" connect "$port" pipe 2>"$tmp/c2.err" | "$LO_PY" -c '
import hashlib, sys, time
h = hashlib.sha256()
while True:
    b = sys.stdin.buffer.read(16384)
    if not b:
        break
    h.update(b)
    time.sleep(0.001)
print(h.hexdigest())' >"$tmp/c2.sum" || rc_c=$?
wait "$l" || true
if [[ $rc_c -ne 0 ]] || ! grep -q 'pipe done' "$tmp/l2.err" || ! grep -q 'pipe done' "$tmp/c2.err"; then
  bad "pipes: not done on both sides: $(cat "$tmp/l2.err" "$tmp/c2.err")"
elif [[ $(cut -d' ' -f1 "$tmp/l2.sum") != "$(sum "$tmp/b")" || $(cat "$tmp/c2.sum") != "$(sum "$tmp/a")" ]]; then
  bad "pipes: checksums differ"
else
  ok
fi

# 3. half-close: the listen side sends nothing
port=$(lo_free_port)
timeout 60 "$B/hp_app_loop" listen "$port" pipe </dev/null >"$tmp/b3.out" 2>"$tmp/l3.err" &
l=$!
pids+=("$l")
rc_c=0
timeout 60 "$B/hp_app_loop" connect "$port" pipe <"$tmp/b" >"$tmp/a3.out" 2>"$tmp/c3.err" || rc_c=$?
rc_l=0
wait "$l" || rc_l=$?
if [[ $rc_l -ne 0 || $rc_c -ne 0 ]]; then
  bad "half-close: exit codes $rc_l/$rc_c: $(cat "$tmp/l3.err" "$tmp/c3.err")"
elif [[ -s $tmp/a3.out || $(sum "$tmp/b") != "$(sum "$tmp/b3.out")" ]]; then
  bad "half-close: wrong output ($(stat -c %s "$tmp/a3.out") and $(stat -c %s "$tmp/b3.out") bytes)"
else
  ok
fi

# 4. SIGTERM while the input is still open (a fifo nobody finishes)
port=$(lo_free_port)
mkfifo "$tmp/fifo"
sleep 30 >"$tmp/fifo" &
pids+=("$!")
timeout 60 "$B/hp_app_loop" listen "$port" pipe <"$tmp/fifo" >/dev/null 2>"$tmp/l4.err" &
l=$!
pids+=("$l")
timeout 60 "$B/hp_app_loop" connect "$port" pipe </dev/null >/dev/null 2>"$tmp/c4.err" &
c=$!
pids+=("$c")
for _ in $(seq 100); do [[ -n $(ss -Htn state established "dport = :$port") ]] && break; sleep 0.05; done
kill -TERM "$l"
if lo_wait "$l" 10 && [[ $LO_RC -eq 143 ]]; then ok; else bad "SIGTERM: exit ${LO_RC:-none}, expected 143: $(cat "$tmp/l4.err")"; fi
# The other side sees the channel end and stops too.
if lo_wait "$c" 10; then ok; else bad "the other side did not stop after its peer's SIGTERM"; fi

echo "app pipe: $passed passed, $failed failed"
((failed == 0))
