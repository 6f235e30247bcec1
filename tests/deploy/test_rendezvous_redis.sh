#!/usr/bin/env bash
# tests/deploy/test_rendezvous_redis.sh - issue 10: several rendezvous
# instances sharing their rooms in Redis, behind nginx round-robin.
#
# A redis-server (Debian's) on a unix socket in a temporary directory, no
# persistence; three holepunch-rendezvous with REDIS_URL=unix:..., each its
# own INSTANCE_ID and INSTANCE_URL, on 127.0.0.1 (kernel-chosen ports);
# nginx on 127.0.0.1 with the three as a round-robin upstream. Then:
#  1. 1,000 pairings through nginx (bench_loadgen pairs, one at a time, so
#     the two workers of a pairing are consecutive connections and
#     round-robin puts them on two instances): every pairing with the right
#     partner, one session, roles a and b, one relay URL (the loadgen checks
#     each); every instance's remote pairings add up to 1,000 (no pairing
#     within one instance), and so do their pairings.
#  2. Duplicate ids are judged per room across instances: id "dup" in room
#     r1 on instance 1, then on instance 2: duplicate_id; in room r2 on
#     instance 2: welcome. peer.relay_url is the waiter's instance URL.
#  3. Redis killed in the middle of a run of pairings: clear "unavailable"
#     errors (close 1013), /healthz "degraded" on every instance, which keep
#     answering; Redis started again: each instance says "ok" by itself and
#     200 pairings succeed.
#  4. An instance killed (SIGKILL) with waiting workers: the others' waiters
#     leave with their connections, the dead one's stay in Redis until
#     REDIS_TTL and are then gone.
# Loopback and a unix socket only; every wait bounded; everything stopped
# and removed at the end, also on failure.
# Env: HP_BUILD_DIR, HP_SOURCE_DIR.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"
PY=$LO_PY
LG=$HP_BUILD_DIR/bench/bench_loadgen
N_PAIRS=${N_PAIRS:-1000}
TTL=3 # REDIS_TTL, s (its minimum): the dead instance's waiters expire after it

die() { echo "test_rendezvous_redis: FAIL: $*" >&2; exit 1; }
say() { echo "test_rendezvous_redis: $*"; }

[[ -x $HP_BUILD_DIR/holepunch-rendezvous ]] || die "$HP_BUILD_DIR/holepunch-rendezvous is not built"
[[ -x $LG ]] || die "$LG is not built"
command -v redis-server >/dev/null || die "redis-server is missing (scripts/deps.sh installs it)"
command -v redis-cli >/dev/null || die "redis-cli is missing (scripts/deps.sh installs redis-tools)"
command -v nginx >/dev/null || die "nginx is missing (scripts/deps.sh installs nginx-light)"

tmp=$(mktemp -d "/tmp/hp-test-redis.$$.XXXXXX")
SOCK=$tmp/redis.sock
REDIS_PID="" NGINX_PID="" LG_PID=""
declare -a PIDS=() PORTS=()

cleanup() {
  local rc=$?
  set +e
  lo_stop "$LG_PID" 5
  for p in "${PIDS[@]}"; do lo_stop "$p" 5; done
  lo_stop "$NGINX_PID" 5
  lo_stop "$REDIS_PID" 5
  if ((rc != 0)); then
    for i in 1 2 3; do
      [[ -f $tmp/rdv$i.log ]] || continue
      echo "--- rendezvous $i (last lines)" >&2
      tail -n 8 "$tmp/rdv$i.log" | cut -c1-300 >&2
    done
    echo "--- loadgen / nginx (last lines)" >&2
    tail -n 5 "$tmp"/lg*.err "$tmp/nginx.err" 2>/dev/null | cut -c1-300 >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

rcli() { timeout 5 redis-cli -s "$SOCK" "$@"; }

start_redis() {
  redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save "" --appendonly no \
    --dir "$tmp" --daemonize no --loglevel warning >>"$tmp/redis.log" 2>&1 </dev/null &
  REDIS_PID=$!
  for _ in $(seq 100); do
    [[ $(rcli ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  die "redis-server did not answer PING within 5 s"
}

# healthz I: the body of instance I's /healthz (fails the test if none).
healthz() {
  curl -fsS -m 3 "http://127.0.0.1:${PORTS[$1]}/healthz" || die "instance $1: /healthz did not answer"
}

# wait_status I STATUS SECONDS
wait_status() {
  local n=$(($3 * 10)) body=""
  while ((n-- > 0)); do
    body=$(curl -fsS -m 2 "http://127.0.0.1:${PORTS[$1]}/healthz" 2>/dev/null || true)
    [[ $body == *"\"status\":\"$2\""* ]] && return 0
    sleep 0.1
  done
  die "instance $1: /healthz did not say \"$2\" within $3 s (last: $body)"
}

# metric I NAME: the value of an unlabelled (or fully written) series.
metric() {
  curl -fsS -m 3 "http://127.0.0.1:${PORTS[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

sum_metric() {
  local s=0 v i
  for i in 1 2 3; do
    v=$(metric "$i" "$1")
    [[ $v =~ ^[0-9]+$ ]] || die "instance $i: metric $1 missing ('$v')"
    s=$((s + v))
  done
  echo "$s"
}

# ---- bad settings stop the start (exit 2, a sentence, no password) ---------
bad_start() {
  local want=$1 out rc=0
  shift
  out=$(env "$@" PORT=0 BIND=127.0.0.1 timeout 10 "$HP_BUILD_DIR/holepunch-rendezvous" 2>&1) || rc=$?
  ((rc == 2)) || die "$* : exit $rc, expected 2 ($out)"
  [[ $out == *"$want"* ]] || die "$* : no \"$want\" in: $out"
  [[ $out != *sekret* ]] || die "$* : the password is in the message: $out"
}
bad_start "REDIS_URL is not valid" REDIS_URL="rediss://:sekret@127.0.0.1:6379"
bad_start "REDIS_URL is not valid" REDIS_URL="http://127.0.0.1"
bad_start "INSTANCE_URL=" INSTANCE_URL="ftp://rdv.example"
bad_start "INSTANCE_ID=" INSTANCE_ID="has space"
bad_start "REDIS_TTL" REDIS_TTL=1
say "ok: bad REDIS_URL, INSTANCE_URL, INSTANCE_ID, REDIS_TTL stop the start with exit 2"

# ---- Redis, three instances, nginx ------------------------------------------
start_redis
say "redis-server on $SOCK"
for i in 1 2 3; do
  lo_start_rendezvous "$tmp/rdv$i.log" LOG_LEVEL=info REDIS_URL="unix:$SOCK" REDIS_TTL=$TTL \
    INSTANCE_ID="i$i" INSTANCE_URL="http://rdv-$i.example:8080" MAX_CONNECTIONS_PER_IP=100000 \
    MAX_HELLOS_PER_MINUTE=10000000 SHUTDOWN_TIMEOUT=2 || die "instance $i: $LO_ERR"
  PIDS[i]=$LO_RDV_PID PORTS[i]=$LO_RDV_PORT
done
for i in 1 2 3; do wait_status "$i" ok 10; done
body=$(healthz 1)
[[ $body == *'"store":"redis"'* ]] || die "instance 1: /healthz does not name the store: $body"
say "instances on ports ${PORTS[1]} ${PORTS[2]} ${PORTS[3]}: $body"

NGINX_PORT=$(lo_free_port)
mkdir -p "$tmp/nginx/tmp"
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"
cat >"$tmp/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
$user_line
pid $tmp/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $tmp/nginx/tmp/body;
  proxy_temp_path $tmp/nginx/tmp/proxy;
  fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
  uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
  scgi_temp_path $tmp/nginx/tmp/scgi;
  access_log off;
  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      close;
  }
  upstream rdv {
    # round-robin (nginx's default)
    server 127.0.0.1:${PORTS[1]};
    server 127.0.0.1:${PORTS[2]};
    server 127.0.0.1:${PORTS[3]};
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://rdv;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_read_timeout 120s;
      proxy_next_upstream off;
    }
  }
}
EOF
nginx -t -q -e stderr -p "$tmp/nginx/" -c "$tmp/nginx.conf" 2>"$tmp/nginx.err" ||
  die "nginx refuses its configuration: $(cat "$tmp/nginx.err")"
nginx -e stderr -p "$tmp/nginx/" -c "$tmp/nginx.conf" 2>>"$tmp/nginx.err" </dev/null &
NGINX_PID=$!
for _ in $(seq 100); do
  curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$NGINX_PORT/healthz" 2>/dev/null && break
  sleep 0.05
done
curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$NGINX_PORT/healthz" ||
  die "nginx on 127.0.0.1:$NGINX_PORT did not answer within 5 s"
say "nginx on 127.0.0.1:$NGINX_PORT, round-robin over the three"

# loadgen NAME ARGS...: bench_loadgen against nginx, bounded; output in
# $tmp/NAME.out / .err, status in LG_RC.
loadgen() {
  local name=$1
  shift
  LG_RC=0
  timeout 170 "$LG" --host 127.0.0.1 --port "$NGINX_PORT" --retries 0 --timeout 150 --quiet "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null || LG_RC=$?
}

# ---- 1. pairings across instances ---------------------------------------------
p0=$(sum_metric holepunch_pairings_total)
r0=$(sum_metric holepunch_remote_pairings_total)
loadgen lg1 pairs "$N_PAIRS" concurrency 1
line=$(cat "$tmp/lg1.out")
say "loadgen: $line"
((LG_RC == 0)) || die "pairings through nginx failed (status $LG_RC): $(head -c 600 "$tmp/lg1.err")"
[[ $line == *" done=$N_PAIRS "* && $line == *" errors=0 "* && $line == *" mismatches=0"* ]] ||
  die "not every pairing completed with the right partner: $line"
p=$(($(sum_metric holepunch_pairings_total) - p0))
r=$(($(sum_metric holepunch_remote_pairings_total) - r0))
((p == N_PAIRS)) || die "the instances counted $p pairings, expected $N_PAIRS (each once)"
((r == N_PAIRS)) ||
  die "$r of $N_PAIRS pairings had their two workers on two instances, expected all (round-robin)"
for i in 1 2 3; do
  v=$(metric "$i" holepunch_pairings_total)
  ((v > 0)) || die "instance $i completed no pairing: round-robin did not spread the load"
done
say "ok: $N_PAIRS pairings, each across two instances, right partner, one session"

# ---- 2. duplicate ids per room across instances, relay_url --------------------
out=$(timeout 30 "$PY" - "${PORTS[1]}" "${PORTS[2]}" 2>&1 <<'PYEOF'
import asyncio, json, sys
import websockets

p1, p2 = int(sys.argv[1]), int(sys.argv[2])

async def hello(port, room, wid):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5)
    msg = {"type": "hello", "v": 1, "room": room}
    if wid:
        msg["id"] = wid
    await ws.send(json.dumps(msg))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 5))

async def main():
    a, m = await hello(p1, "dup-r1", "dup")
    assert m["type"] == "welcome", m
    b, m = await hello(p2, "dup-r1", "dup")
    assert m["type"] == "error" and m["code"] == "duplicate_id", m
    await b.close()
    c, m = await hello(p2, "dup-r2", "dup")
    assert m["type"] == "welcome", m
    # a waits on instance 1; a newcomer on instance 2 pairs with it: both
    # peer messages name instance 1's URL (the waiter's).
    d, m = await hello(p2, "dup-r1", "newcomer")
    assert m["type"] == "welcome", m
    pd = json.loads(await asyncio.wait_for(d.recv(), 5))
    pa = json.loads(await asyncio.wait_for(a.recv(), 5))
    assert pd["type"] == "peer" and pa["type"] == "peer", (pa, pd)
    assert pa["role"] == "a" and pd["role"] == "b", (pa, pd)
    assert pa["peer"]["id"] == "newcomer" and pd["peer"]["id"] == "dup", (pa, pd)
    assert pa["session"] == pd["session"], (pa, pd)
    want = "http://rdv-1.example:8080"
    assert pa.get("relay_url") == want and pd.get("relay_url") == want, (pa, pd)
    for w in (a, c, d):
        await w.close()
    print("duplicate per room across instances, relay_url of the waiter:", want)

asyncio.run(main())
PYEOF
) || die "duplicate ids / relay_url: $out"
say "ok: $out"

# ---- 3. Redis killed mid-way, then back ---------------------------------------
timeout 170 "$LG" --host 127.0.0.1 --port "$NGINX_PORT" --retries 0 --timeout 60 --quiet \
  pairs 100000 concurrency 4 >"$tmp/lg3.out" 2>"$tmp/lg3.err" </dev/null &
LG_PID=$!
sleep 1
u0=$(sum_metric 'holepunch_errors_total{code="unavailable"}')
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=""
say "redis-server killed (SIGKILL) during a run of pairings"
for i in 1 2 3; do wait_status "$i" degraded 10; done
# Every instance keeps answering while degraded.
for i in 1 2 3; do
  curl -fsS -m 3 -o /dev/null "http://127.0.0.1:${PORTS[$i]}/whoami" ||
    die "instance $i: /whoami did not answer while Redis was down"
done
sleep 1.5 # hellos arrive meanwhile and are refused
u=$(($(sum_metric 'holepunch_errors_total{code="unavailable"}') - u0))
((u > 0)) || die "no hello was refused with \"unavailable\" while Redis was down"
lo_stop "$LG_PID" 5
LG_PID=""
grep -q 'rendezvous sent error (unavailable: The rendezvous cannot reach its room store; retry in a few seconds.)' \
  "$tmp/lg3.err" || die "the workers did not get the clear \"unavailable\" error: $(head -c 600 "$tmp/lg3.err")"
grep -q '"code":"unavailable".*"close":1013' "$tmp/rdv1.log" "$tmp/rdv2.log" "$tmp/rdv3.log" ||
  die "no \"unavailable\" error with close 1013 in the logs"
for i in 1 2 3; do
  grep -q 'redis unavailable: ' "$tmp/rdv$i.log" ||
    die "instance $i did not log that Redis is unavailable"
done
say "ok: Redis down: $u hello(s) refused with \"unavailable\" (1013), /healthz degraded, still serving"
start_redis
for i in 1 2 3; do wait_status "$i" ok 15; done
loadgen lg4 pairs 200 concurrency 1
line=$(cat "$tmp/lg4.out")
if ((LG_RC != 0)) || [[ $line != *" done=200 "* || $line != *" mismatches=0"* ]]; then
  die "pairing after Redis came back failed (status $LG_RC): $line $(head -c 600 "$tmp/lg4.err")"
fi
say "ok: Redis back: every instance ok by itself, then $line"

# ---- /metrics: Redis round trips, errors, reconnects (Prometheus parser) -------
out=$(curl -fsS -m 3 "http://127.0.0.1:${PORTS[1]}/metrics" | "$PY" -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
v = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        v[(s.name, tuple(sorted(s.labels.items())))] = s.value
def get(name, **labels):
    return v[(name, tuple(sorted(labels.items())))]
assert get("holepunch_store_available", backend="redis") == 1
assert get("holepunch_redis_rtt_seconds_count") > 0
assert get("holepunch_redis_rtt_seconds_bucket", le="+Inf") == get("holepunch_redis_rtt_seconds_count")
assert get("holepunch_redis_requests_total") >= get("holepunch_redis_rtt_seconds_count")
errs = get("holepunch_redis_errors_total", kind="other") + get("holepunch_redis_errors_total", kind="timeout")
# A kill with no command in flight fails none (the connection is seen lost
# and made again): the kill shows as errors or reconnects, not always both.
assert errs > 0 or get("holepunch_redis_reconnects_total") > 0, "Redis was killed: errors or reconnects expected"
assert get("holepunch_redis_reconnects_total") > 0
assert get("holepunch_remote_pairings_total") > 0
assert get("holepunch_errors_total", code="unavailable") > 0
print("rtt_count=%d requests=%d errors=%d reconnects=%d" % (get("holepunch_redis_rtt_seconds_count"),
      get("holepunch_redis_requests_total"), errs, get("holepunch_redis_reconnects_total")))
' 2>&1) || die "instance 1: /metrics: $out"
say "ok: /metrics of instance 1 (Prometheus parser): $out"

# ---- 4. an instance killed: its waiters expire --------------------------------
waiters() { rcli --scan --pattern 'hp:*:w' | wc -l; }
n0=$(waiters)
((n0 == 0)) || die "$n0 waiting workers in Redis before the idle phase, expected 0"
N_IDLE=30
timeout 60 "$LG" --host 127.0.0.1 --port "$NGINX_PORT" --retries 0 --timeout 20 --hold 40 --quiet \
  idle $N_IDLE concurrency 1 >"$tmp/lg5.out" 2>"$tmp/lg5.err" </dev/null &
LG_PID=$!
for _ in $(seq 200); do
  grep -q '^ready' "$tmp/lg5.out" && break
  sleep 0.05
done
grep -q "^ready connections=$N_IDLE errors=0" "$tmp/lg5.out" ||
  die "the idle workers were not all welcomed: $(cat "$tmp/lg5.out")"
n=$(waiters)
((n == N_IDLE)) || die "$n waiting workers in Redis, expected $N_IDLE"
w3=$(curl -fsS -m 3 "http://127.0.0.1:${PORTS[3]}/healthz" | sed -n 's/.*"waiting":\([0-9]*\).*/\1/p')
((w3 > 0)) || die "instance 3 holds no waiting worker"
kill -KILL "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
PIDS[3]=""
t_kill=$(date +%s.%N)
lo_stop "$LG_PID" 5 # the live instances' workers leave with their connections
LG_PID=""
for _ in $(seq 40); do
  [[ $(waiters) -le $w3 ]] && break
  sleep 0.05
done
n=$(waiters)
((n == w3)) ||
  die "right after the kill, $n waiters in Redis, expected the dead instance's $w3 (the others left)"
n=$w3
while ((n > 0)); do
  sleep 0.2
  n=$(waiters)
  t=$(awk -v a="$t_kill" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  awk -v t="$t" -v m="$((TTL * 3))" 'BEGIN { exit !(t > m) }' &&
    die "the dead instance's $n waiters are still in Redis $t s after the kill (REDIS_TTL=$TTL)"
done
say "ok: instance 3 killed with $w3 waiting workers: forgotten by Redis after ${t} s (REDIS_TTL=$TTL)"

# ---- the live instances stop cleanly (SIGTERM: exit 0, store closed) ------------
for i in 1 2; do
  lo_stop "${PIDS[$i]}" 10
  PIDS[i]=""
  ((LO_RC == 0)) || die "instance $i exited with $LO_RC on SIGTERM, expected 0"
  grep -q '"message":"stopped"' "$tmp/rdv$i.log" || die "instance $i did not log \"stopped\""
done
say "ok: instances 1 and 2 stopped on SIGTERM with exit 0"
say "PASS"
