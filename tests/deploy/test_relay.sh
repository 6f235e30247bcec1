#!/usr/bin/env bash
# tests/deploy/test_relay.sh - the relay of holepunch-rendezvous (GET /relay,
# docs/PROTOCOL.md section 8) with real pairings made through /ws first
# (tests/tools/relay_client.py), on loopback:
#
#  service A (no rate limit, RELAY_SESSION_TTL=3, HELLO_TIMEOUT=2):
#   1. refusals: an unknown session, a wrong id, a third connection for a
#      joined worker, a reused (ended) session, an expired one, a bad and a
#      late join, binary data before ready, the peer never joining;
#   2. 20 MiB each way at once, sha256 equal on both sides;
#   3. the same pairing code through nginx as a reverse proxy (same port,
#      plain WebSocket upgrade): 4 MiB each way;
#   4. a slow reader: 48 MiB pushed at a receiver that does not read for a
#      while; the service's RSS stays bounded (backpressure, no queue growth),
#      then everything arrives intact;
#   5. /metrics: relayed bytes, sessions, refusals by reason, backpressure;
#   6. SIGTERM with a relayed session open: both workers get close 1001 and
#      the service exits 0.
#  service B (RELAY_RATE=512 KiB/s, RELAY_MAX_BYTES=2 MiB, RELAY_IDLE_TIMEOUT=2,
#  RELAY_MAX_SESSIONS=1): the rate is not exceeded (1.5 MiB cannot arrive
#  faster than the bucket allows) and throttling is counted; over the byte
#  limit both get relay_limit and at most 2 MiB arrived; an idle session gets
#  relay_idle; a second session is refused with relay_full.
#  service C (RELAY=off): /relay answers 404 relay_disabled.
#
# Env: HP_BUILD_DIR (default build/), HP_SOURCE_DIR. Bounded in time.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
RDV=$HP_BUILD_DIR/holepunch-rendezvous
PY=/usr/bin/python3
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"

die() { echo "test_relay: FAIL: $*" >&2; exit 1; }

[[ -x $RDV ]] || die "$RDV is not built"
$PY -c 'import websockets, prometheus_client' 2>/dev/null ||
  die "$PY lacks websockets or prometheus_client (scripts/deps.sh)"
command -v nginx >/dev/null || die "nginx missing (scripts/deps.sh)"

tmp=$(mktemp -d "/tmp/hp-test-relay.$$.XXXXXX")
A_PID="" B_PID="" C_PID="" NGINX_PID=""
cleanup() {
  local rc=$?
  set +e
  lo_stop "$A_PID"
  lo_stop "$B_PID"
  lo_stop "$C_PID"
  lo_stop "$NGINX_PID"
  if ((rc != 0)); then
    for f in a b c; do
      [[ -f $tmp/rdv-$f.log ]] || continue
      echo "test_relay: service $f log (last 25 lines):" >&2
      tail -n 25 "$tmp/rdv-$f.log" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

lo_start_rendezvous "$tmp/rdv-a.log" LOG_LEVEL=info RELAY_RATE=0 RELAY_SESSION_TTL=3 \
  HELLO_TIMEOUT=2 SHUTDOWN_TIMEOUT=3 || die "service A: $LO_ERR"
A_PID=$LO_RDV_PID A_PORT=$LO_RDV_PORT
lo_start_rendezvous "$tmp/rdv-b.log" LOG_LEVEL=info RELAY_RATE=524288 RELAY_MAX_BYTES=2097152 \
  RELAY_IDLE_TIMEOUT=2 RELAY_MAX_SESSIONS=1 || die "service B: $LO_ERR"
B_PID=$LO_RDV_PID B_PORT=$LO_RDV_PORT
lo_start_rendezvous "$tmp/rdv-c.log" RELAY=off || die "service C: $LO_ERR"
C_PID=$LO_RDV_PID C_PORT=$LO_RDV_PORT

# nginx in front of service A, as a Cloud Run front end or any reverse proxy.
NGINX_PORT=$(lo_free_port)
mkdir -p "$tmp/nginx/tmp"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $tmp/nginx/tmp/body;
  proxy_temp_path $tmp/nginx/tmp/proxy;
  fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
  uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
  scgi_temp_path $tmp/nginx/tmp/scgi;
  access_log off;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://127.0.0.1:$A_PORT;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
    }
  }
}
EOF
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" >"$tmp/nginx/out.log" 2>&1 &
NGINX_PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null 2>&1 && break
  lo_alive "$NGINX_PID" || die "nginx exited: $(tail -n 5 "$tmp/nginx/error.log")"
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null || die "nginx does not answer"
echo "test_relay: services A :$A_PORT (nginx :$NGINX_PORT), B :$B_PORT, C :$C_PORT"

timeout 240 "$PY" - "$A_PORT" "$A_PID" "$B_PORT" "$C_PORT" "$NGINX_PORT" "$top/tests/tools" <<'EOF'
import asyncio, json, os, secrets, signal, socket, sys, time, urllib.request

a_port, a_pid, b_port, c_port, nginx_port, tools = (int(sys.argv[1]), int(sys.argv[2]),
    int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
sys.path.insert(0, tools)
import relay_client as rc
import websockets.exceptions
from prometheus_client.parser import text_string_to_metric_families

A, B, C = (f"http://127.0.0.1:{p}" for p in (a_port, b_port, c_port))
PROXY = f"http://127.0.0.1:{nginx_port}"
MiB = 2**20

def fail(msg):
    print(f"test_relay: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def ok(msg):
    print(f"ok   {msg}")

def metrics(base):
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out

def val(m, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    if key not in m:
        fail(f"series {name}{labels} missing from /metrics")
    return m[key]

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS")

async def refused(ws, code, what, close=1008):
    try:
        msg, cc = await rc.expect_error(ws, code)
    except rc.RelayError as e:
        fail(f"{what}: {e}")
    if cc != close:
        fail(f"{what}: close code {cc}, expected {close}")
    ok(f"{what}: error {code} ({msg!r}), close {cc}")

async def part_a():
    m0 = metrics(A)
    # 4. (first, while the service's heap is still small) slow reader: b does not read for a while (its client queue holds
    # one frame), a pushes 48 MiB; the service's RSS stays bounded.
    p5 = await rc.pair(A)
    a5 = await rc.join(A, p5.session, p5.id_a)
    b5 = await rc.join(A, p5.session, p5.id_b, max_queue=1)
    await rc.ready(a5)
    await rc.ready(b5)
    rss0 = rss_kib(a_pid)
    n = 48 * MiB
    sender = asyncio.create_task(rc.send_stream(a5, n, b"slow"))
    peak = rss0
    for _ in range(30):  # 3 s of not reading
        await asyncio.sleep(0.1)
        peak = max(peak, rss_kib(a_pid))
    if sender.done():
        fail("the sender finished 48 MiB while the receiver read nothing: no backpressure")
    grow = peak - rss0
    # Per direction the service holds at most ~1.1 MiB (write queue and the
    # staging buffer); 16 MiB leaves room for the allocator.
    if grow > 16 * 1024:
        fail(f"service RSS grew by {grow} KiB while the reader was stalled")
    mm = metrics(A)
    if val(mm, "holepunch_relay_backpressure_total") < 1:
        fail("holepunch_relay_backpressure_total did not move for a stalled reader")
    got, nbytes = await asyncio.wait_for(rc.recv_stream(b5, n, 30), 120)
    sent = await sender
    if (got, nbytes) != (sent, n):
        fail(f"slow reader: {nbytes} bytes, sha {got} != {sent}")
    ok(f"slow reader: service RSS grew by {grow} KiB (peak) while stalled; 48 MiB then arrived intact")
    await a5.close()
    await b5.close()

    # 1. unknown session
    ws = await rc.join(A, secrets.token_hex(16), "w-1")
    await refused(ws, "unknown_session", "unknown session")
    # wrong id, third connection, then the pair relays 20 MiB each way
    p = await rc.pair(A)
    a = await rc.join(A, p.session, p.id_a)
    ws = await rc.join(A, p.session, "mallory")
    await refused(ws, "not_in_session", "wrong id")
    ws = await rc.join(A, p.session, p.id_a)
    await refused(ws, "session_in_use", "third connection for a joined worker")
    b = await rc.join(A, p.session, p.id_b)
    if await rc.ready(a) != p.id_b or await rc.ready(b) != p.id_a:
        fail("ready names the wrong peer")
    n = 20 * MiB
    t0 = time.monotonic()
    sa, sb, (gb, nb), (ga, na) = await asyncio.wait_for(asyncio.gather(
        rc.send_stream(a, n, b"a"), rc.send_stream(b, n, b"b"),
        rc.recv_stream(b, n, 30), rc.recv_stream(a, n, 30)), 120)
    dt = time.monotonic() - t0
    if (sa, n) != (gb, nb) or (sb, n) != (ga, na):
        fail(f"20 MiB each way: a->b {sa} {gb} {nb}, b->a {sb} {ga} {na}")
    ok(f"20 MiB each way, sha256 equal ({sa[:16]}..., {sb[:16]}...), {40 / dt:.0f} MiB/s in all")
    # The third connection's refusal did not disturb the session (it ran);
    # a worker's close reaches the other as a normal close.
    await a.close()
    try:
        await asyncio.wait_for(b.wait_closed(), 10)
    except asyncio.TimeoutError:
        fail("b not closed within 10 s after a closed")
    if b.close_code != 1000:
        fail(f"b: close {b.close_code} after a closed normally, expected 1000")
    ok("a's close reached b as close 1000")
    # reused session
    ws = await rc.join(A, p.session, p.id_a)
    await refused(ws, "session_used", "reused session")
    # bad and late joins
    ws = await rc.join(A, "", "", raw_first="not json")
    await refused(ws, "bad_message", "join that is not JSON")
    ws = await rc.join(A, "", "", raw_first=json.dumps({"type": "eof"}))
    await refused(ws, "unexpected_message", "eof as the first message")
    ws = await rc._connect(rc.ws_base(A) + "/relay")
    await refused(ws, "join_timeout", "no join within HELLO_TIMEOUT")
    # binary before ready
    p2 = await rc.pair(A)
    a2 = await rc.join(A, p2.session, p2.id_a)
    await a2.send(b"early")
    await refused(a2, "unexpected_message", "binary data before ready")
    # the peer never joins: relay_timeout at RELAY_SESSION_TTL (3 s)
    p3 = await rc.pair(A)
    a3 = await rc.join(A, p3.session, p3.id_a)
    await refused(a3, "relay_timeout", "peer never joined")
    # expired: nobody joined within the ttl
    p4 = await rc.pair(A)
    await asyncio.sleep(3.5)
    ws = await rc.join(A, p4.session, p4.id_b)
    await refused(ws, "unknown_session", "session past RELAY_SESSION_TTL")

    # 3. through nginx
    r = await rc.copy_both_ways(PROXY, 4 * MiB, 60)
    if r["sha_a_sent"] != r["sha_b_got"] or r["sha_b_sent"] != r["sha_a_got"]:
        fail(f"through nginx: checksums differ {r}")
    ok("through nginx (reverse proxy, same port): 4 MiB each way, sha256 equal")

    # 5. metrics
    await asyncio.sleep(0.3)
    m1 = metrics(A)
    def moved(name, at_least, **labels):
        d = val(m1, name, **labels) - val(m0, name, **labels)
        if d < at_least:
            fail(f"{name}{labels} moved by {d}, expected at least {at_least}")
        ok(f"{name}{labels} +{d:g}")
    moved("holepunch_relay_bytes_total", 2 * 20 * MiB + 2 * 4 * MiB + 48 * MiB)
    moved("holepunch_relay_sessions_total", 3)
    for reason, k in (("unknown_session", 2), ("not_in_session", 1), ("session_in_use", 1),
                      ("session_used", 1), ("bad_join", 3), ("join_timeout", 1)):
        moved("holepunch_relay_refusals_total", k, reason=reason)
    moved("holepunch_relay_ends_total", 1, reason="peer_timeout")
    moved("holepunch_relay_ends_total", 3, reason="closed")
    if val(m1, "holepunch_relay_sessions_open") != 0:
        fail("a relayed session is still counted as open")
    if val(m1, "holepunch_relay_enabled") != 1:
        fail("holepunch_relay_enabled is not 1")

    # 6. SIGTERM with a relayed session open
    p6 = await rc.pair(A)
    a6 = await rc.join(A, p6.session, p6.id_a)
    b6 = await rc.join(A, p6.session, p6.id_b)
    await rc.ready(a6)
    await rc.ready(b6)
    await a6.send(b"x" * 1000)
    os.kill(a_pid, signal.SIGTERM)
    for name, ws in (("a", a6), ("b", b6)):
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            fail(f"{name}: not closed within 10 s of SIGTERM")
        if ws.close_code != 1001:
            fail(f"{name}: close {ws.close_code} on SIGTERM, expected 1001")
    ok("SIGTERM: both relayed workers got close 1001")

async def part_b():
    m0 = metrics(B)
    # rate: 1.5 MiB at 512 KiB/s with a bucket of 128 KiB
    p = await rc.pair(B)
    a = await rc.join(B, p.session, p.id_a)
    b = await rc.join(B, p.session, p.id_b)
    await rc.ready(a)
    await rc.ready(b)
    n = 3 * MiB // 2
    t0 = time.monotonic()
    sent, (got, nb) = await asyncio.wait_for(asyncio.gather(
        rc.send_stream(a, n, b"r"), rc.recv_stream(b, n, 30)), 60)
    dt = time.monotonic() - t0
    if (got, nb) != (sent, n):
        fail("rate: data differs")
    # The bucket starts full (128 KiB) and the last read (64 KiB at most)
    # goes out before its debt is paid: the rest must take its time.
    floor = (n - 128 * 1024 - 64 * 1024) / (512 * 1024)
    if dt < 0.95 * floor:
        fail(f"rate: 1.5 MiB arrived in {dt:.2f} s, faster than RELAY_RATE allows ({floor:.2f} s)")
    mm = metrics(B)
    if val(mm, "holepunch_relay_throttled_total") - val(m0, "holepunch_relay_throttled_total") < 1:
        fail("holepunch_relay_throttled_total did not move")
    ok(f"RELAY_RATE: 1.5 MiB took {dt:.2f} s (at least {floor:.2f} s by the limit), throttling counted")
    # max sessions: the session above is open; another pairing's join is refused
    q = await rc.pair(B)
    ws = await rc.join(B, q.session, q.id_a)
    await refused(ws, "relay_full", "RELAY_MAX_SESSIONS=1, a second session")
    await a.close()
    await asyncio.wait_for(b.wait_closed(), 10)
    # max bytes: 3 MiB pushed, at most 2 MiB may arrive, both get relay_limit
    p = await rc.pair(B)
    a = await rc.join(B, p.session, p.id_a)
    b = await rc.join(B, p.session, p.id_b)
    await rc.ready(a)
    await rc.ready(b)
    async def push():
        try:
            await rc.send_stream(a, 3 * MiB, b"m", eof=False)
        except websockets.exceptions.ConnectionClosed:
            pass
    async def drain():
        got = 0
        while True:
            msg = await asyncio.wait_for(b.recv(), 30)
            if isinstance(msg, str):
                return got, json.loads(msg)
            got += len(msg)
    pusher = asyncio.create_task(push())
    got, err = await asyncio.wait_for(drain(), 60)
    if err.get("code") != "relay_limit":
        fail(f"max bytes: receiver got {err}, expected relay_limit")
    if got > 2 * MiB:
        fail(f"max bytes: {got} bytes arrived, more than RELAY_MAX_BYTES")
    await asyncio.wait_for(pusher, 30)
    await asyncio.wait_for(a.wait_closed(), 10)
    await asyncio.wait_for(b.wait_closed(), 10)
    if a.close_code != 1008 or b.close_code != 1008:
        fail(f"max bytes: close codes {a.close_code} {b.close_code}, expected 1008")
    ok(f"RELAY_MAX_BYTES: {got} bytes arrived (limit 2 MiB), both got relay_limit and 1008")
    # idle
    p = await rc.pair(B)
    a = await rc.join(B, p.session, p.id_a)
    b = await rc.join(B, p.session, p.id_b)
    await rc.ready(a)
    await rc.ready(b)
    await refused(a, "relay_idle", "idle session (a)")
    await refused(b, "relay_idle", "idle session (b)")
    m1 = metrics(B)
    for reason in ("max_bytes", "idle"):
        if val(m1, "holepunch_relay_ends_total", reason=reason) < 1:
            fail(f"holepunch_relay_ends_total{{reason={reason}}} did not move")
    if val(m1, "holepunch_relay_refusals_total", reason="relay_full") < 1:
        fail("relay_full refusal not counted")
    ok("service B: ends by max_bytes and idle, relay_full refusal counted")

def part_c():
    # A raw upgrade request (urllib would replace the Connection header).
    with socket.create_connection(("127.0.0.1", c_port), timeout=5) as sk:
        sk.sendall(b"GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        resp = b""
        while True:
            chunk = sk.recv(4096)
            if not chunk:
                break
            resp += chunk
    head, _, body = resp.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 404") or json.loads(body).get("error") != "relay_disabled":
        fail(f"RELAY=off: {resp[:300]!r}")
    m = metrics(C)
    if val(m, "holepunch_relay_enabled") != 0 or \
       val(m, "holepunch_relay_refusals_total", reason="disabled") != 1:
        fail("RELAY=off: metrics do not say so")
    ok("RELAY=off: /relay answers 404 relay_disabled, counted")

asyncio.run(asyncio.wait_for(part_b(), 90))
part_c()
asyncio.run(asyncio.wait_for(part_a(), 120))
EOF

lo_wait "$A_PID" 15 || die "service A still runs 15 s after SIGTERM"
A_PID="" rc=$LO_RC
((rc == 0)) || die "service A exited with $rc after SIGTERM, expected 0"
for f in a b c; do
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)\|runtime error:' "$tmp/rdv-$f.log"; then
    die "sanitizer report in the log of service $f"
  fi
done
echo "test_relay: PASS"
