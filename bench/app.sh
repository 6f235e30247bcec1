#!/usr/bin/env bash
# bench/app.sh - figures of the data subcommands on loopback (prints, never
# asserts):
#   (a) `pipe` throughput vs a plain TCP copy (bench_tcpcopy, what nc does)
#       in one run, N MiB one way, both from `head -c N /dev/zero |` to
#       /dev/null: MiB/s of each and their ratio, and the CPU time per GiB of
#       each side (user+sys). The pipe goes through the whole stack: a
#       rendezvous on 127.0.0.1, the punch, the secure channel (with a
#       code), records; its rate counts from the receiver's "secure channel
#       up" log line to its "pipe done" line (the punch is not transfer).
#   (b) memory of `forward` + `expose` holding 100 idle streams: VmRSS of
#       each process before and after opening 100 connections (each echoed
#       once end to end, then left idle), per stream;
#   (c) one stream of MIB/2 MiB through forward -> expose -> a sink
#       (bench_tcpcopy), against (a)'s plain TCP copy.
# Usage: bench/app.sh [BUILD_DIR] [MIB] [ROUNDS]   (default build/, 1024 MiB, 3)
# Loopback only; every process bounded by timeout(1), killed on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$top/build}
MIB=${2:-1024}
ROUNDS=${3:-3}
export HP_BUILD_DIR=$B
# shellcheck source=../tests/lib/loopback.sh
. "$top/tests/lib/loopback.sh"
CHECK=$top/tests/lib/tunnel_check.py
for b in holepunch holepunch-rendezvous bench/bench_tcpcopy; do
  [[ -x $B/$b ]] || { echo "bench/app.sh: $B/$b is missing; build first" >&2; exit 1; }
done
tmp=$(mktemp -d "/tmp/hp-bench-app-$$-XXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  lo_stop "$LO_RDV_PID"
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
T=(/usr/bin/time -f '%e %U %S')
bytes=$((MIB * 1024 * 1024))

# plain_round K: one plain TCP copy; appends "wall ru rs su ss" to plain.txt
plain_round() {
  local port r pw pru prs psu pss
  port=$(lo_free_port)
  "${T[@]}" -o "$tmp/plain.recv.time" timeout 300 "$B/bench/bench_tcpcopy" recv "$port" >/dev/null &
  r=$!
  head -c "$bytes" /dev/zero | "${T[@]}" -o "$tmp/plain.send.time" timeout 300 \
    "$B/bench/bench_tcpcopy" send "$port"
  wait "$r"
  read -r pw pru prs <"$tmp/plain.recv.time"
  read -r _ psu pss <"$tmp/plain.send.time"
  echo "$pw $pru $prs $psu $pss" >>"$tmp/plain.txt"
}

# pipe_round: one holepunch pipe; appends "transfer_s ru rs su ss wall" to pipe.txt
pipe_round() {
  local code r hw hru hrs hsu hss data_s
  code=$("$B/holepunch" code)
  "${T[@]}" -o "$tmp/pipe.recv.time" timeout 300 "$B/holepunch" pipe --code "$code" \
    --internal-tcp-port "$(lo_free_port)" </dev/null >/dev/null 2>"$tmp/recv.log" &
  r=$!
  head -c "$bytes" /dev/zero | "${T[@]}" -o "$tmp/pipe.send.time" timeout 300 "$B/holepunch" \
    pipe --code "$code" --internal-tcp-port "$(lo_free_port)" >/dev/null 2>"$tmp/send.log"
  wait "$r"
  read -r hw hru hrs <"$tmp/pipe.recv.time"
  read -r _ hsu hss <"$tmp/pipe.send.time"
  data_s=$("$LO_PY" - "$tmp/recv.log" <<'PY'
import datetime, json, sys
t = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    m = e.get("message", "")
    k = "up" if m.startswith("secure channel up") else "done" if m.startswith("pipe done") else None
    if k:
        t[k] = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
print("%.3f" % (t["done"] - t["up"]))
PY
  )
  echo "$data_s $hru $hrs $hsu $hss $hw" >>"$tmp/pipe.txt"
}

# (a) ROUNDS rounds, plain and pipe alternating; the best round of each counts
# (the machine is shared: the best round is the one least disturbed).
lo_start_rendezvous "$tmp/rdv.log" || { echo "bench/app.sh: $LO_ERR" >&2; exit 1; }
export RENDEZVOUS_SERVICE_URL=http://127.0.0.1:$LO_RDV_PORT LOG_FORMAT=json ALLOW_LOOPBACK_CANDIDATES=1
for _ in $(seq "$ROUNDS"); do
  plain_round
  pipe_round
done
"$LO_PY" - "$MIB" "$tmp/plain.txt" "$tmp/pipe.txt" <<'PY'
import sys
mib = float(sys.argv[1]); gib = mib / 1024
plain = [list(map(float, l.split())) for l in open(sys.argv[2])]
pipe = [list(map(float, l.split())) for l in open(sys.argv[3])]
pw, pru, prs, psu, pss = min(plain, key=lambda r: r[0])
hd, hru, hrs, hsu, hss, hw = min(pipe, key=lambda r: r[0])
prate, hrate = mib / pw, mib / hd
print("(a) %d MiB one way on loopback, best of %d rounds each" % (mib, len(plain)))
print("    plain TCP copy : %8.1f MiB/s  (%.2f s); CPU per GiB: sender %.2f s, receiver %.2f s"
      % (prate, pw, (psu + pss) / gib, (pru + prs) / gib))
print("    holepunch pipe : %8.1f MiB/s  (%.2f s of transfer, %.2f s with rendezvous + punch + "
      "handshake); CPU per GiB: sender %.2f s, receiver %.2f s"
      % (hrate, hd, hw, (hsu + hss) / gib, (hru + hrs) / gib))
print("    ratio pipe / plain TCP: %.2f   (all rounds: plain %s MiB/s, pipe %s MiB/s)"
      % (hrate / prate, " ".join("%.0f" % (mib / r[0]) for r in plain),
         " ".join("%.0f" % (mib / r[0]) for r in pipe)))
PY
code=$("$B/holepunch" code)

# (b) 100 idle forwarded streams
echo_port=$(lo_free_port)
"$LO_PY" "$CHECK" serve "$echo_port" 120 &
pids+=("$!")
fwd=$(lo_free_port)
timeout 120 "$B/holepunch" expose --code "$code" --internal-tcp-port "$(lo_free_port)" \
  "127.0.0.1:$echo_port" 2>"$tmp/x.log" &
xp=$!
pids+=("$xp")
timeout 120 "$B/holepunch" forward --code "$code" --internal-tcp-port "$(lo_free_port)" "$fwd" \
  2>"$tmp/f.log" &
fp=$!
pids+=("$fp")
for _ in $(seq 300); do grep -q "forwarding connections" "$tmp/f.log" 2>/dev/null && break; sleep 0.05; done
# timeout(1)'s child is the holepunch process.
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$(pgrep -P "$1")/status"; }
grep -q 'forwarding connections' "$tmp/f.log" || { echo "bench/app.sh: forward did not start:" >&2; tail -n 5 "$tmp/f.log" "$tmp/x.log" >&2; exit 1; }
sleep 0.5
f0=$(rss "$fp") x0=$(rss "$xp")
"$LO_PY" - "$fwd" "$tmp/holding" <<'PY' &
import socket, sys, time, os
port, flag = int(sys.argv[1]), sys.argv[2]
cs = []
for i in range(100):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"x")
    if c.recv(1) != b"x":
        sys.exit("no echo on connection %d" % i)
    cs.append(c)
open(flag, "w").close()
time.sleep(30)
PY
holder=$!
pids+=("$holder")
for _ in $(seq 400); do [[ -e $tmp/holding ]] && break; sleep 0.05; done
[[ -e $tmp/holding ]] || { echo "bench/app.sh: the 100 connections did not all echo" >&2; exit 1; }
sleep 0.5
f1=$(rss "$fp") x1=$(rss "$xp")
"$LO_PY" - "$f0" "$f1" "$x0" "$x1" <<'PY'
import sys
f0, f1, x0, x1 = map(int, sys.argv[1:])
print("(b) 100 idle forwarded streams (each echoed once end to end)")
print("    forward: VmRSS %d -> %d KiB, %.2f KiB per stream" % (f0, f1, (f1 - f0) / 100))
print("    expose : VmRSS %d -> %d KiB, %.2f KiB per stream" % (x0, x1, (x1 - x0) / 100))
PY

# (c) one stream through forward/expose to a sink
half=$((MIB / 2))
sink=$(lo_free_port)
"$B/bench/bench_tcpcopy" recv "$sink" >/dev/null &
pids+=("$!")
fwd2=$(lo_free_port)
code=$("$B/holepunch" code)
timeout 120 "$B/holepunch" expose --code "$code" --internal-tcp-port "$(lo_free_port)" \
  "127.0.0.1:$sink" 2>"$tmp/x2.log" &
pids+=("$!")
timeout 120 "$B/holepunch" forward --code "$code" --internal-tcp-port "$(lo_free_port)" "$fwd2" \
  2>"$tmp/f2.log" &
pids+=("$!")
for _ in $(seq 300); do grep -q "forwarding connections" "$tmp/f2.log" 2>/dev/null && break; sleep 0.05; done
t0=$(date +%s.%N)
head -c $((half * 1024 * 1024)) /dev/zero | timeout 120 "$B/bench/bench_tcpcopy" send "$fwd2"
t1=$(date +%s.%N)
"$LO_PY" -c 'import sys; mib, s = float(sys.argv[1]), float(sys.argv[2]) - float(sys.argv[3])
print("(c) one stream of %d MiB through forward/expose: %.1f MiB/s (%.2f s; until the sender'"'"'s last byte was taken)" % (mib, mib / s, s))' "$half" "$t1" "$t0"
