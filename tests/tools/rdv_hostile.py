#!/usr/bin/python3
"""rdv_hostile.py - hostile clients against a running holepunch-rendezvous, on
raw sockets (WebSocket frames built by hand here, so that the test can break
RFC 6455 on purpose; the service itself never hand-writes framing).

Usage: /usr/bin/python3 rdv_hostile.py HOST PORT GROUP [options]

GROUP selects the cases; the service must run with the settings the group
expects (tests/deploy/test_rendezvous_hostile.sh starts one per group):
  rfc       RFC 6455 rules (issue 11 item 2): unmasked frames, bad close
            codes and reasons, RSV bits, reserved opcodes, version 8 -> 426;
            ping answered, a valid close echoed
  memory    reassembly bounds (issue 11 item 1): a large unfinished message
            before hello, too many fragments, the global input budget
            (service: INPUT_BUFFER_BUDGET=200000)
  result    result abuse (issue 11 item 4): result before peer, a second
            result (counted once in /metrics), a frame flood
  hello     hello rate per address (issue 11 item 5; service:
            MAX_HELLOS_PER_MINUTE=5); needs 127.0.0.2 on lo
  perip     connections per address and the request-line deadline (issue 6
            item 3; service: MAX_CONNECTIONS_PER_IP=10 REQUEST_LINE_TIMEOUT=1
            HTTP_TIMEOUT=10)
  slowbody  HTTP_TIMEOUT bounds the body too (issue 11 item 3; service:
            HTTP_TIMEOUT=2)

Prints one line per case and "N passed, M failed"; exits 1 on any failure.
Every wait is bounded.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

STEP = 5.0  # s: bound of one network step


class Mismatch(Exception):
    pass


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame_header(opcode, length, fin=True):
    """The header of a masked frame of `length` bytes, and its mask key: the
    payload can then be sent in pieces with mask_with()."""
    key = os.urandom(4)
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        hdr = bytes([b0, 0x80 | length])
    elif length < 65536:
        hdr = bytes([b0, 0x80 | 126]) + struct.pack(">H", length)
    else:
        hdr = bytes([b0, 0x80 | 127]) + struct.pack(">Q", length)
    return hdr + key, key


def mask_with(key, data, offset=0):
    return bytes(b ^ key[(offset + i) % 4] for i, b in enumerate(data))


class Conn:
    """A raw client connection: the HTTP upgrade, then frames."""

    def __init__(self, host, port, src=None, version=13, path="/ws", upgrade=True):
        self.s = socket.create_connection((host, port), timeout=STEP,
                                          source_address=(src, 0) if src else None)
        self.buf = b""
        self.status = None
        self.head = b""
        if upgrade:
            key = base64.b64encode(os.urandom(16)).decode()
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: {version}\r\n\r\n")
            self.s.sendall(req.encode())
            self.head = self._read_until(b"\r\n\r\n")
            self.status = int(self.head.split()[1])

    def _fill(self, deadline):
        self.s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            raise Mismatch("no data from the server in time") from None
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _read_until(self, mark):
        deadline = time.monotonic() + STEP
        while mark not in self.buf:
            self._fill(deadline)
        i = self.buf.index(mark) + len(mark)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def read_frame(self, timeout=STEP):
        """(opcode, payload) of the next server frame but the service's own
        pings (it times each connection's round trip: synchronised start,
        PROTOCOL.md section 3); EOFError at the end."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self._read_one(deadline)
            if op != 9:
                return op, payload

    def _read_one(self, deadline):
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise Mismatch("the server sent a masked frame")
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def send(self, data):
        self.s.sendall(data)

    def send_text(self, obj):
        self.send(frame(1, json.dumps(obj).encode()))

    def recv_json(self):
        while True:
            op, p = self.read_frame()
            if op == 1:
                return json.loads(p)
            if op == 8:
                raise Mismatch(f"closed ({close_code(p)}) while a message was expected")

    def expect_close(self, code, error=None):
        """Read until the server's close frame: its status must be code; with
        error, an error message with that code must come before it. Then the
        server must close TCP (after our close reply)."""
        got_error = None
        while True:
            try:
                op, p = self.read_frame()
            except EOFError:
                raise Mismatch(f"TCP closed without a close frame (wanted {code})") from None
            if op == 1:
                m = json.loads(p)
                if m.get("type") == "error":
                    got_error = m
            if op == 8:
                break
        if close_code(p) != code:
            raise Mismatch(f"close status {close_code(p)}, expected {code} (error: {got_error})")
        if error and (not got_error or got_error.get("code") != error):
            raise Mismatch(f"error {got_error}, expected code {error!r}")
        try:
            self.send(frame(8, struct.pack(">H", 1000)))
        except OSError:
            pass
        self.expect_eof()
        return got_error

    def expect_eof(self):
        deadline = time.monotonic() + STEP + 5
        try:
            while True:
                self._fill(deadline)
                self.buf = b""
        except EOFError:
            return
        except ConnectionResetError:
            return

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def close_code(payload):
    return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None


def hello(room, wid=None, cands=None):
    m = {"type": "hello", "v": 1, "room": room}
    if wid:
        m["id"] = wid
    if cands is not None:
        m["candidates"] = cands
    return m


def uniq(p):
    return f"{p}-{os.urandom(4).hex()}"


def http_get(host, port, path, src=None):
    s = socket.create_connection((host, port), timeout=STEP,
                                 source_address=(src, 0) if src else None)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise Mismatch(f"no HTTP response to GET {path}")
    return int(head.split()[1]), body


def metric(host, port, name):
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=STEP) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise Mismatch(f"{name} missing from /metrics")


# --- rfc ----------------------------------------------------------------------

def rfc_cases(host, port):
    def welcomed_conn():
        c = Conn(host, port)
        if c.status != 101:
            raise Mismatch(f"upgrade answered {c.status}")
        return c

    def protocol_error(frames, code=1002):
        c = welcomed_conn()
        try:
            for f in frames:
                c.send(f)
            c.expect_close(code)
        finally:
            c.close()

    def unmasked():
        protocol_error([frame(1, json.dumps(hello(uniq("u"))).encode(), mask=False)])

    def close_with(payload):
        return lambda: protocol_error([frame(8, payload)])

    def version8():
        c = Conn(host, port, version=8)
        try:
            if c.status != 426 or b"sec-websocket-version: 13" not in c.head.lower():
                raise Mismatch(f"version 8 answered {c.head[:120]!r}, expected 426 with "
                               "Sec-WebSocket-Version: 13")
        finally:
            c.close()

    def ping_pong():
        c = welcomed_conn()
        try:
            c.send(frame(9, b"abc"))
            op, p = c.read_frame()
            if (op, p) != (10, b"abc"):
                raise Mismatch(f"ping answered with opcode {op} {p!r}, expected a pong 'abc'")
            c.send(frame(8, struct.pack(">H", 1000) + "bye ✓".encode()))
            op, p = c.read_frame()
            if op != 8 or close_code(p) != 1000:
                raise Mismatch(f"a valid close was answered with {op} {p!r}")
            c.expect_eof()
        finally:
            c.close()

    return [
        ("unmasked client frame -> 1002", unmasked),
        ("close code 5000 -> 1002", close_with(struct.pack(">H", 5000))),
        ("close code 65535 -> 1002", close_with(struct.pack(">H", 65535))),
        ("close code 1005 (reserved) -> 1002", close_with(struct.pack(">H", 1005))),
        ("1-byte close payload -> 1002", close_with(b"\x03")),
        ("invalid UTF-8 close reason -> 1002", close_with(struct.pack(">H", 1000) + b"\xc3\x28")),
        ("RSV1 set -> 1002", lambda: protocol_error([frame(1, b"{}", rsv=4)])),
        ("reserved opcode 3 -> 1002", lambda: protocol_error([frame(3, b"x")])),
        ("continuation without a message -> 1002", lambda: protocol_error([frame(0, b"x")])),
        ("Sec-WebSocket-Version 8 -> 426", version8),
        ("ping answered, valid close echoed", ping_pong),
    ]


# --- memory -------------------------------------------------------------------

def memory_cases(host, port):
    def big_before_hello():
        # 60,000 bytes announced, 10,000 sent: refused from the header
        # already (before hello only a small message is accepted).
        c = Conn(host, port)
        try:
            hdr, key = frame_header(1, 60000)
            c.send(hdr + mask_with(key, b"x" * 10000))
            c.expect_close(1009, "too_large")
        finally:
            c.close()

    def fragments():
        c = Conn(host, port)
        try:
            data = frame(1, b"", fin=False) + b"".join(frame(0, b"", fin=False) for _ in range(99))
            c.send(data)
            c.expect_close(1009, "too_large")
        finally:
            c.close()

    def budget():
        # Each registered connection starts a 60,000-byte message and sends
        # 50,000 of it; the service may hold 200,000 bytes of such input in
        # all, so one of the first four is refused instead of growing.
        conns, refused = [], None
        try:
            for i in range(4):
                c = Conn(host, port)
                conns.append(c)
                c.send_text(hello(uniq("budget")))
                w = c.recv_json()
                if w.get("type") != "welcome":
                    raise Mismatch(f"no welcome: {w}")
                hdr, key = frame_header(1, 60000)
                c.send(hdr + mask_with(key, b"x" * 50000))
            for c in conns:
                c.s.settimeout(1.0)
            time.sleep(0.5)
            for c in conns:
                try:
                    op, p = c.read_frame(timeout=1.0)
                except Mismatch:
                    continue  # nothing for this one: it holds its buffer
                if op == 1 and json.loads(p).get("code") == "server_full":
                    refused = c
                    op, p = c.read_frame()
                    if op != 8 or close_code(p) != 1013:
                        raise Mismatch(f"after server_full: {op} {p!r}, expected close 1013")
            if not refused:
                raise Mismatch("no connection was refused although the budget was exceeded")
            status, body = http_get(host, port, "/healthz")
            if status != 200:
                raise Mismatch(f"/healthz answered {status} meanwhile")
        finally:
            for c in conns:
                c.close()

    return [
        ("unfinished 60 KB message before hello -> too_large", big_before_hello),
        ("100 empty fragments -> too_large", fragments),
        ("global input budget -> server_full", budget),
    ]


# --- result -------------------------------------------------------------------

def result_cases(host, port):
    res = {"type": "result", "status": "direct", "elapsed_ms": 1}

    def before_peer():
        c = Conn(host, port)
        try:
            c.send_text(hello(uniq("rbp")))
            if c.recv_json().get("type") != "welcome":
                raise Mismatch("no welcome")
            c.send_text(res)
            c.expect_close(1008, "unexpected_message")
        finally:
            c.close()

    def second_result():
        before = metric(host, port, 'holepunch_results_total{status="direct"}')
        room = uniq("r2")
        a, b = Conn(host, port), Conn(host, port)
        try:
            a.send_text(hello(room))
            a.recv_json()
            b.send_text(hello(room))
            b.recv_json()
            if a.recv_json().get("type") != "peer" or b.recv_json().get("type") != "peer":
                raise Mismatch("not paired")
            a.send_text(res)
            a.send_text(res)
            a.expect_close(1008, "unexpected_message")
        finally:
            a.close()
            b.close()
        after = metric(host, port, 'holepunch_results_total{status="direct"}')
        if after - before != 1:
            raise Mismatch(f"results_total{{direct}} moved by {after - before}, expected 1")

    def flood():
        c = Conn(host, port)
        try:
            c.send_text(hello(uniq("flood")))
            c.recv_json()
            c.send(b"".join(frame(9, b"") for _ in range(500)))
            # Pongs may come first; then the error and the close.
            err = None
            while True:
                op, p = c.read_frame()
                if op == 1:
                    err = json.loads(p)
                if op == 8:
                    break
            if not err or err.get("code") != "rate_limited" or close_code(p) != 1008:
                raise Mismatch(f"a flood of 500 pings: error {err}, close {close_code(p)}")
        finally:
            c.close()

    return [
        ("result while waiting (before peer) -> unexpected_message", before_peer),
        ("second result -> unexpected_message, counted once", second_result),
        ("500 pings at once -> rate_limited", flood),
    ]


# --- hello --------------------------------------------------------------------

def hello_cases(host, port):
    def sweep():
        got = []
        for i in range(8):
            c = Conn(host, port, src="127.0.0.1")
            try:
                c.send_text(hello(uniq(f"sweep{i}")))
                m = c.recv_json()
                got.append(m.get("type") if m.get("type") == "welcome" else m.get("code"))
            except (Mismatch, EOFError) as e:
                got.append(str(e))
            finally:
                c.close()
        if got[:5] != ["welcome"] * 5 or got[5:] != ["rate_limited"] * 3:
            raise Mismatch(f"8 hellos from one address with MAX_HELLOS_PER_MINUTE=5: {got}")
        # Another address is not affected.
        c = Conn(host, port, src="127.0.0.2")
        try:
            c.send_text(hello(uniq("other")))
            m = c.recv_json()
            if m.get("type") != "welcome":
                raise Mismatch(f"hello from 127.0.0.2 answered {m}")
        finally:
            c.close()

    return [("hellos per minute per address", sweep)]


# --- perip --------------------------------------------------------------------

def perip_cases(host, port):
    def per_ip():
        held = []
        try:
            for _ in range(10):
                held.append(socket.create_connection((host, port), timeout=STEP,
                                                      source_address=("127.0.0.1", 0)))
            time.sleep(0.3)
            status, body = http_get(host, port, "/healthz", src="127.0.0.1")
            if status != 503 or json.loads(body).get("error") != "server_full":
                raise Mismatch(f"11th connection from 127.0.0.1 answered {status} {body!r}, "
                               "expected 503 server_full")
            status, body = http_get(host, port, "/healthz", src="127.0.0.2")
            if status != 200:
                raise Mismatch(f"127.0.0.2 answered {status} while 127.0.0.1 is at its limit")
        finally:
            for s in held:
                s.close()
        # The slots are free again.
        deadline = time.monotonic() + STEP
        while True:
            status, _ = http_get(host, port, "/healthz", src="127.0.0.1")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise Mismatch(f"127.0.0.1 still refused ({status}) after closing its connections")
            time.sleep(0.1)

    def request_line_deadline():
        # REQUEST_LINE_TIMEOUT=1, HTTP_TIMEOUT=10: a silent connection goes
        # long before HTTP_TIMEOUT.
        s = socket.create_connection((host, port), timeout=STEP)
        try:
            t0 = time.monotonic()
            s.settimeout(8)
            try:
                data = s.recv(4096)
            except socket.timeout:
                raise Mismatch("a silent connection was kept 8 s (REQUEST_LINE_TIMEOUT=1)") \
                    from None
            if data:
                raise Mismatch(f"a silent connection got {data[:60]!r}")
            print(f"     (dropped after {time.monotonic() - t0:.1f} s)")
        finally:
            s.close()

    return [
        ("MAX_CONNECTIONS_PER_IP: one address at its limit, another served", per_ip),
        ("request line deadline shorter than HTTP_TIMEOUT", request_line_deadline),
    ]


# --- slowbody -----------------------------------------------------------------

def slowbody_cases(host, port):
    def slow_body():
        # HTTP_TIMEOUT=2: a body dribbled one byte per 0.3 s (30 s in all)
        # must not keep the connection past HTTP_TIMEOUT (bound here: 8 s).
        s = socket.create_connection((host, port), timeout=STEP)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            t0 = time.monotonic()
            data = b""
            while time.monotonic() - t0 < 8:
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                s.settimeout(0.3)
                try:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    break
            else:
                raise Mismatch("a dribbled body kept its connection 8 s with HTTP_TIMEOUT=2")
            if data and not data.startswith(b"HTTP/1.1 408"):
                raise Mismatch(f"unexpected answer to a slow body: {data[:60]!r}")
            print(f"     (dropped after {time.monotonic() - t0:.1f} s)")
        finally:
            s.close()

    return [("slow body bounded by HTTP_TIMEOUT", slow_body)]


GROUPS = {"rfc": rfc_cases, "memory": memory_cases, "result": result_cases,
          "hello": hello_cases, "perip": perip_cases, "slowbody": slowbody_cases}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in GROUPS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port, group = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    passed = failed = 0
    for name, fn in GROUPS[group](host, port):
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.2f} s)")
        except (Mismatch, OSError, EOFError, ValueError, KeyError) as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
