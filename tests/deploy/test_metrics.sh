#!/usr/bin/env bash
# tests/deploy/test_metrics.sh - holepunch-rendezvous on a loopback port:
#  1. a pairing (with results) and one bad message move the /metrics counters,
#     read with prometheus_client's parser;
#  2. SIGTERM with connected clients: each gets a close 1001 (going away), a
#     client that never answers the close does not hold the exit, and the
#     service exits 0.
# Env: HP_BUILD_DIR (default build/), HP_SOURCE_DIR. Bounded in time.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
RDV=$HP_BUILD_DIR/holepunch-rendezvous
PY=/usr/bin/python3
# shellcheck source=../lib/loopback.sh
. "$top/tests/lib/loopback.sh"

die() { echo "test_metrics: FAIL: $*" >&2; exit 1; }

[[ -x $RDV ]] || die "$RDV is not built"
$PY -c 'import websockets, prometheus_client' 2>/dev/null ||
  die "$PY lacks websockets or prometheus_client (scripts/deps.sh)"

tmp=$(mktemp -d "/tmp/hp-test-metrics.$$.XXXXXX")
cleanup() {
  local rc=$?
  set +e
  lo_stop "$LO_RDV_PID"
  if ((rc != 0)); then
    echo "test_metrics: server log:" >&2
    tail -n 30 "$tmp/rdv.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

lo_start_rendezvous "$tmp/rdv.log" LOG_LEVEL=info SHUTDOWN_TIMEOUT=3 || die "$LO_ERR"
SRV_PID=$LO_RDV_PID port=$LO_RDV_PORT
echo "test_metrics: service pid $SRV_PID on 127.0.0.1:$port"

timeout 60 "$PY" - "$port" "$SRV_PID" "$top/tests/tools" <<'EOF'
import asyncio, json, os, signal, socket, sys, time, urllib.request

port, srv_pid, tools = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, tools)
import rdv_badinput as rb
from prometheus_client.parser import text_string_to_metric_families

base = f"http://127.0.0.1:{port}"
ws_url = f"ws://127.0.0.1:{port}/ws"

def fail(msg):
    print(f"test_metrics: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)

def scrape():
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode()
    if not ctype.startswith("text/plain") or "version=0.0.4" not in ctype:
        fail(f"/metrics content type {ctype!r}")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {}
    for f in fams.values():
        for s in f.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return fams, samples, text

def val(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        fail(f"series {name}{labels} missing from /metrics")
    return samples[key]

scrapes = 0  # each scrape counts itself in http_requests{route="metrics"}
fams, before, text = scrape()
expect_types = {
    "holepunch_connections": "gauge", "holepunch_waiting_workers": "gauge",
    "holepunch_pairings": "counter", "holepunch_results": "counter",
    "holepunch_errors": "counter", "holepunch_bytes_received": "counter",
    "holepunch_bytes_sent": "counter", "holepunch_http_requests": "counter",
}
for name, typ in expect_types.items():
    if name not in fams or fams[name].type != typ:
        fail(f"family {name} of type {typ} missing (have {sorted((n, f.type) for n, f in fams.items())})")
    if not fams[name].documentation:
        fail(f"family {name} has no # HELP")
for line in ("# TYPE holepunch_pairings_total counter", "# HELP holepunch_connections "):
    if line not in text:
        fail(f"line {line!r} missing from the exposition")

async def traffic():
    await rb.pair(ws_url, result="direct")
    await rb.expect_error(ws_url, ['{"type": "hello", '], "bad_message")

asyncio.run(asyncio.wait_for(traffic(), 20))

# Results arrive just before the clients close: wait (bounded) until counted.
# Poll as often as needed; the scrapes are counted, not assumed to be one.
deadline = time.monotonic() + 20
while True:
    _, after, _ = scrape()
    scrapes += 1
    if val(after, "holepunch_results_total", status="direct") >= \
       val(before, "holepunch_results_total", status="direct") + 2 and \
       val(after, "holepunch_connections") == 0:
        break
    if time.monotonic() > deadline:
        fail(f"results/connections did not settle: {after}")
    time.sleep(0.1)

def moved(name, by, **labels):
    d = val(after, name, **labels) - val(before, name, **labels)
    if d != by:
        fail(f"{name}{labels} moved by {d}, expected {by}")
    print(f"ok   {name}{labels} +{d:g}")

moved("holepunch_pairings_total", 1)
moved("holepunch_results_total", 2, status="direct")
moved("holepunch_results_total", 0, status="failed")
moved("holepunch_errors_total", 1, code="bad_message")
moved("holepunch_errors_total", 0, code="too_large")
moved("holepunch_http_requests_total", scrapes, route="metrics")
for name in ("holepunch_bytes_received_total", "holepunch_bytes_sent_total"):
    if not val(after, name) > val(before, name):
        fail(f"{name} did not grow")
    print(f"ok   {name} +{val(after, name) - val(before, name):g}")
if val(after, "holepunch_waiting_workers") != 0:
    fail("a worker is still counted as waiting")

# Shutdown: one waiting worker, one WebSocket without hello, and one raw
# client that completes the upgrade but never reads (never answers the close).
async def shutdown():
    waiting = await rb.connect(ws_url)
    await waiting.send(rb.hello(rb.uniq("shut")))
    w = await rb.recv_json(waiting)
    if w.get("type") != "welcome":
        fail(f"no welcome: {w}")
    fresh = await rb.connect(ws_url)
    mute = socket.create_connection(("127.0.0.1", port), timeout=5)
    mute.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    if not mute.recv(4096).startswith(b"HTTP/1.1 101"):
        fail("the raw client's upgrade was not accepted")
    os.kill(srv_pid, signal.SIGTERM)
    for name, ws in (("waiting worker", waiting), ("client without hello", fresh)):
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            fail(f"{name}: not closed within 10 s of SIGTERM")
        if ws.close_code != 1001:
            fail(f"{name}: close status {ws.close_code}, expected 1001")
        print(f"ok   {name} closed with 1001 on SIGTERM")
    # The mute client gets the close frame too, and is dropped although it
    # never answers (after SHUTDOWN_TIMEOUT at the latest).
    loop = asyncio.get_running_loop()
    def drain():
        mute.settimeout(15)
        data = b""
        while True:
            chunk = mute.recv(4096)
            if not chunk:
                return data
            data += chunk
    try:
        data = await loop.run_in_executor(None, drain)
    except OSError as e:
        fail(f"mute client: not dropped within 15 s of SIGTERM ({e})")
    finally:
        mute.close()
    # The service may have pinged first (sync start measures each client's
    # round trip with pings): skip unmasked short ping frames (0x89), then
    # expect an unmasked close frame: 0x88, length, status 1001 (0x03e9).
    frames = data
    while len(frames) >= 2 and frames[0] == 0x89 and frames[1] < 126:
        frames = frames[2 + frames[1]:]
    if len(frames) < 4 or frames[0] != 0x88 or frames[2:4] != b"\x03\xe9":
        fail(f"mute client: expected a close frame with 1001, got {data[:32]!r}")
    print("ok   client that never answers the close got 1001 and was dropped")

asyncio.run(asyncio.wait_for(shutdown(), 30))
EOF

# SHUTDOWN_TIMEOUT=3: the mute client must not keep the service beyond it
# (bound 15 s here: this checks that it stops, not how fast).
lo_wait "$SRV_PID" 15 || die "the service still runs 15 s after SIGTERM"
LO_RDV_PID="" rc=$LO_RC
((rc == 0)) || die "the service exited with $rc after SIGTERM, expected 0"
grep -q '"message":"stopped"' "$tmp/rdv.log" || die "no \"stopped\" event in the log"
if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)' "$tmp/rdv.log"; then
  die "sanitizer report in the service log"
fi
echo "test_metrics: PASS"
