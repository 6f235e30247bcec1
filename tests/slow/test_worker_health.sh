#!/usr/bin/env bash
# The worker's health server (src/worker/health.c on src/net's listener and
# HTTP reader) against good and bad clients, on 127.0.0.1, bounded:
#  - GET /healthz: 200, application/json, no-store, the worker's state;
#  - another path, or another method: 404 with a JSON error;
#  - a request head over its cap (4 KiB): 431; a request that is not HTTP: 400;
#  - a connection that never sends a request is closed by the server (its
#    5 s request timeout; the test waits at most 15 s);
#  - 40 silent connections at once: beyond the server's 32 the rest get a
#    503 at once, and /healthz answers again once they are gone;
#  - the worker still exits by itself (4: no peer) afterwards.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
tmp=$(mktemp -d "/tmp/hp-health-$$-XXXX")
W=""
cleanup() {
  [[ -n $W ]] && kill "$W" 2>/dev/null
  lo_stop "$LO_RDV_PID"
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }

lo_start_rendezvous "$tmp/rdv.log" || fail "$LO_ERR"
hp=$(lo_free_port)
RENDEZVOUS_SERVICE_URL=http://127.0.0.1:$LO_RDV_PORT ROOM=health$$ LOG_FORMAT=json \
  timeout 120 "$B/holepunch" --internal-tcp-port "$(lo_free_port)" --port "$hp" --ws-recv-timeout 20 \
  >/dev/null 2>"$tmp/w.log" &
W=$!
for _ in $(seq 100); do [[ -n "$(ss -Hltn "sport = :$hp")" ]] && break; sleep 0.05; done

/usr/bin/python3 - "$hp" <<'PY' || fail "health server checks"
import json, socket, sys, time
port = int(sys.argv[1])

def ask(raw, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(raw)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body

def expect(cond, what):
    if not cond:
        sys.exit(f"not ok: {what}")
    print(f"ok: {what}")

for _ in range(100):
    h, b = ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    if b'"state":"waiting_peer"' in b:
        break
    time.sleep(0.05)
j = json.loads(b)
expect(h.startswith("HTTP/1.1 200 ") and "application/json" in h and "no-store" in h,
       f"GET /healthz: 200 JSON no-store ({h.splitlines()[0]})")
expect(j.get("status") == "ok" and j.get("state") == "waiting_peer" and j.get("room"),
       f"GET /healthz body: {b.decode().strip()}")
h, b = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
expect(h.startswith("HTTP/1.1 404 ") and json.loads(b).get("error") == "not found", "GET /metrics: 404 JSON")
h, b = ask(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
expect(h.startswith("HTTP/1.1 404 "), "POST /healthz: 404")
h, b = ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
expect(h.startswith("HTTP/1.1 431 "), f"a 5000-byte header: {h.splitlines()[0] if h else 'no answer'}")
h, b = ask(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
expect(h.startswith("HTTP/1.1 400 "), f"not HTTP: {h.splitlines()[0] if h else 'no answer'}")

# A silent connection is closed by the server.
s = socket.create_connection(("127.0.0.1", port), 5)
s.settimeout(15)
t0 = time.monotonic()
try:
    closed = s.recv(1) == b""
except socket.timeout:
    closed = False
s.close()
expect(closed, f"a silent connection was closed by the server after {time.monotonic() - t0:.1f} s")

# 40 silent connections: the ones over the limit get a 503 at once.
held = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(40)]
refused = 0
for c in held:
    c.settimeout(0.5)
    try:
        d = c.recv(4096)
        if d.startswith(b"HTTP/1.1 503 "):
            refused += 1
    except socket.timeout:
        pass
expect(refused == 8, f"40 silent connections: {refused} refused with 503 (32 admitted)")
for c in held:
    c.close()
time.sleep(0.3)
h, b = ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
expect(h.startswith("HTTP/1.1 200 "), "GET /healthz answers again once they are gone")
PY
rc=0
wait "$W" || rc=$?
W=""
((rc == 4)) || fail "the worker exited $rc, expected 4 (no peer)"
echo "ok: the worker exited 4 by itself"
echo PASS
