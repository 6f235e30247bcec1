#!/usr/bin/python3
"""unfinished.py - server memory per connection holding a maximal unfinished
WebSocket message (issue 11 item 1), printed (a benchmark, not a test).

Usage: /usr/bin/python3 bench/unfinished.py PORT SERVER_PID N [--after-hello]

Opens N WebSockets to 127.0.0.1:PORT; each (after its hello, with
--after-hello) sends the header of a 65,000-byte text frame and 64,000 bytes
of it, and holds. Prints the server's VmRSS before and after and the
difference per connection, and how many connections the server refused
(error message or close) instead of buffering. Bounded: 120 s.
"""
import base64
import json
import os
import socket
import struct
import sys
import time

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
after_hello = "--after-hello" in sys.argv
TOTAL, SENT = 65000, 64000


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def masked(op, payload, total=None):
    n = len(payload) if total is None else total
    key = os.urandom(4)
    hdr = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    d = b""
    while b"\r\n\r\n" not in d:
        d += s.recv(4096)
    return s


deadline = time.monotonic() + 120
time.sleep(1)
r0 = rss_kib()
conns = []
payload = masked(1, b"x" * SENT, TOTAL)
for i in range(n):
    if time.monotonic() > deadline:
        break
    s = upgrade()
    if after_hello:
        s.sendall(masked(1, json.dumps({"type": "hello", "v": 1,
                                        "room": f"unf{os.getpid()}-{i}"}).encode()))
        s.recv(4096)  # welcome
    s.sendall(payload)
    conns.append(s)
time.sleep(2)
r1 = rss_kib()
refused = 0
for s in conns:
    s.setblocking(False)
    try:
        if s.recv(4096) is not None:
            refused += 1  # an error message or a close: not buffered
    except BlockingIOError:
        pass
    except OSError:
        refused += 1
print(f"{'after' if after_hello else 'before'} hello: {len(conns)} connections each holding "
      f"{SENT} of a {TOTAL}-byte message: server VmRSS {r0} -> {r1} KiB, "
      f"{(r1 - r0) / max(1, len(conns)):.1f} KiB per connection; refused by the server: {refused}")
for s in conns:
    s.close()
