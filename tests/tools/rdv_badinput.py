#!/usr/bin/python3
"""rdv_badinput.py - feed a running holepunch-rendezvous bad input, case by case.

Usage: /usr/bin/python3 rdv_badinput.py BASE_URL [--hello-timeout S] [--http-timeout S]
                                                 [--max-message-bytes N] [--trust-proxy]

BASE_URL is http://HOST:PORT (or ws://HOST:PORT). Every case runs on its own
connection and checks the error code the service sends and that it then closes
the WebSocket with the expected status; meanwhile other clients (a /healthz
probe, a valid pairing) must still be served. The timing options must match the
server's settings (defaults: the server's defaults). Every wait is bounded.
X-Forwarded-For is checked too: ignored by default; with --trust-proxy (the
server runs with TRUST_PROXY=1) its right-most entry is the client.

Prints one line per case and "N passed, M failed"; exits 1 on any failure.
Also importable: pair(), expect_error() are used by tests/deploy/test_metrics.sh.
"""

import argparse
import asyncio
import json
import secrets
import socket
import sys
import time
import urllib.parse

import websockets
import websockets.exceptions

STEP = 5.0  # s: bound of one network step (connect, one reply, a close)

# Close statuses the service uses (RFC 6455 7.4.1).
POLICY, UNSUPPORTED_DATA, TOO_BIG = 1008, 1003, 1009


class Mismatch(Exception):
    pass


def urls(base):
    """(ws_url, host, port) from an http(s):// or ws(s):// base URL."""
    u = urllib.parse.urlsplit(base)
    if u.scheme not in ("http", "ws"):
        raise SystemExit(f"rdv_badinput: base URL must be http:// or ws://, got {base!r}")
    port = u.port or 80
    host = u.hostname
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"ws://{hostport}/ws", host, port


def uniq(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


def hello(room, wid=None, cands=None, **extra):
    m = {"type": "hello", "v": 1, "room": room,
         "candidates": cands if cands is not None else [{"kind": "host", "addr": "10.0.0.1:4000"}]}
    if wid:
        m["id"] = wid
    m.update(extra)
    return json.dumps(m)


async def connect(ws_url, path_url=None, headers=None):
    return await websockets.connect(path_url or ws_url, open_timeout=STEP, close_timeout=STEP,
                                    compression=None, max_size=2**20, ping_interval=None,
                                    extra_headers=headers)


async def recv_json(ws, timeout=STEP):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(raw, str):
        raise Mismatch(f"expected a text frame, got {len(raw)} binary bytes")
    return json.loads(raw)


async def expect_closed(ws, close_code):
    try:
        await asyncio.wait_for(ws.wait_closed(), STEP)
    except asyncio.TimeoutError:
        raise Mismatch(f"the server did not close the connection within {STEP} s") from None
    if close_code is not None and ws.close_code != close_code:
        raise Mismatch(f"close status {ws.close_code}, expected {close_code}")


async def expect_error(ws_url, frames, code, close_code=POLICY, timeout=STEP, skip=0):
    """Open a WebSocket, send frames (str = text, bytes = binary, list = one
    fragmented text message), expect an error with code (after skipping `skip`
    other messages), then a close with close_code."""
    ws = await connect(ws_url)
    try:
        for f in frames:
            try:
                await asyncio.wait_for(ws.send(f), timeout)
            except websockets.exceptions.ConnectionClosed:
                break  # the server may refuse before everything is sent
        for _ in range(skip):
            await recv_json(ws, timeout)
        try:
            msg = await recv_json(ws, timeout)
        except websockets.exceptions.ConnectionClosed as e:
            raise Mismatch(f"closed ({e.code}) without an error message") from None
        except asyncio.TimeoutError:
            raise Mismatch(f"no reply within {timeout} s") from None
        if msg.get("type") != "error":
            raise Mismatch(f"expected an error, got {msg}")
        if msg.get("code") != code:
            raise Mismatch(f"error code {msg.get('code')!r}, expected {code!r} ({msg})")
        if not isinstance(msg.get("message"), str) or len(msg["message"]) < 10:
            raise Mismatch(f"error without a readable message: {msg}")
        await expect_closed(ws, close_code)
        return msg
    finally:
        await ws.close()


async def pair(ws_url, room=None, result=None):
    """Two workers meet in a fresh room. Returns (welcome_a, welcome_b, peer_a,
    peer_b). result: None, or a status to report from both afterwards."""
    room = room or uniq("pair")
    a = await connect(ws_url)
    b = await connect(ws_url)
    try:
        await a.send(hello(room, cands=[{"kind": "host", "addr": "10.0.0.1:4000"}]))
        wa = await recv_json(a)
        await b.send(hello(room, cands=[{"kind": "srflx", "addr": "203.0.113.9:5000"}]))
        wb = await recv_json(b)
        pa, pb = await recv_json(a), await recv_json(b)
        for w in (wa, wb):
            if w.get("type") != "welcome" or w.get("room") != room or not w.get("id"):
                raise Mismatch(f"bad welcome {w}")
        if pa.get("type") != "peer" or pb.get("type") != "peer":
            raise Mismatch(f"expected two peer messages, got {pa} and {pb}")
        if (pa["role"], pb["role"]) != ("a", "b") or pa["session"] != pb["session"]:
            raise Mismatch(f"roles/session wrong: {pa} {pb}")
        if len(pa["session"]) != 32 or pa["peer"]["id"] != wb["id"] or pb["peer"]["id"] != wa["id"]:
            raise Mismatch(f"peer ids or session wrong: {pa} {pb}")
        if pa["peer"]["candidates"] != [{"kind": "srflx", "addr": "203.0.113.9:5000"}] or \
           pb["peer"]["candidates"] != [{"kind": "host", "addr": "10.0.0.1:4000"}]:
            raise Mismatch(f"candidates not passed on: {pa} {pb}")
        if result:
            for ws in (a, b):
                await ws.send(json.dumps({"type": "result", "status": result,
                                          "addr": "203.0.113.9:5000", "elapsed_ms": 12,
                                          "reason": "test"}))
        return wa, wb, pa, pb
    finally:
        await a.close()
        await b.close()


def http_get(host, port, path, timeout=STEP):
    """(status, body) of GET path on a fresh connection."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    return raw_request(host, port, req, timeout)


def raw_request(host, port, req, timeout=STEP):
    """(status, body) of one request written as is; reads until the server
    closes or timeout s pass."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise Mismatch(f"no HTTP response to {req.split(b' HTTP')[0].decode()!r}")
    return int(head.split()[1]), body


async def wait_dropped(host, port, payload, within):
    """Open a raw TCP connection, send payload (maybe nothing), and expect the
    server to close it within `within` s, while /healthz keeps answering."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STEP)
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        # Meanwhile the service answers others.
        status, body = await loop.run_in_executor(None, http_get, host, port, "/healthz")
        if status != 200 or json.loads(body).get("status") != "ok":
            raise Mismatch(f"/healthz answered {status} {body!r} while a client stalls")
        try:
            data = await asyncio.wait_for(reader.read(65536), within)
        except asyncio.TimeoutError:
            raise Mismatch(f"the stalled connection was not dropped within {within} s") from None
        # An idle drop sends nothing, or at most an error status (e.g. 408).
        if data and not data.startswith(b"HTTP/1.1 4"):
            raise Mismatch(f"unexpected reply to a stalled request: {data[:80]!r}")
        if data:
            rest = await asyncio.wait_for(reader.read(65536), within)
            while rest:
                rest = await asyncio.wait_for(reader.read(65536), within)
    finally:
        writer.close()


def whoami(host, port, xff_lines=()):
    """The /whoami answer, with one X-Forwarded-For header line per entry."""
    hdrs = "".join(f"X-Forwarded-For: {v}\r\n" for v in xff_lines)
    req = f"GET /whoami HTTP/1.1\r\nHost: {host}\r\n{hdrs}Connection: close\r\n\r\n".encode()
    status, body = raw_request(host, port, req)
    if status != 200:
        raise Mismatch(f"/whoami answered {status} {body!r}")
    return json.loads(body)


# (X-Forwarded-For lines, the client address with TRUST_PROXY=1 or None for
# "not usable: the TCP peer"). The right-most entry is the one a proxy
# appended; entries to its left are the client's own and may be forged.
XFF_CASES = [
    (["198.51.100.7"], "198.51.100.7"),
    (["203.0.113.66, 198.51.100.7"], "198.51.100.7"),
    (["  203.0.113.66 ,\t198.51.100.7 \t"], "198.51.100.7"),
    (["203.0.113.66,198.51.100.7"], "198.51.100.7"),
    (["203.0.113.66", "198.51.100.7"], "198.51.100.7"),
    (["2001:db8::5"], "2001:db8::5"),
    (["203.0.113.66, 2001:db8::5"], "2001:db8::5"),
    (["198.51.100.7, unknown"], None),
    (["198.51.100.7:4000"], None),
    (["[2001:db8::5]"], None),
    (["198.51.100.7, "], None),
    (["198.51.100.7,"], None),
    (["198.51.100.7", "nonsense"], None),
    (["198.51.100.007"], None),
    ([", ".join(["203.0.113.66"] * 200)], "203.0.113.66"),
]


async def main_async(args):
    ws_url, host, port = urls(args.base_url)
    big = args.max_message_bytes
    results = []

    async def run(name, coro):
        t0 = time.monotonic()
        try:
            await coro
            results.append((name, None))
            print(f"ok   {name} ({time.monotonic() - t0:.2f} s)")
        except (Mismatch, OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException,
                ValueError, KeyError) as e:
            results.append((name, e))
            print(f"FAIL {name}: {type(e).__name__}: {e}")

    async def wrong_path():
        # A raw request: lws answers an upgrade it refuses with "HTTP/1.0",
        # which the websockets client does not parse.
        req = (f"GET /other HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(None, raw_request, host, port, req)
        if status != 404 or json.loads(body).get("error") != "not_found":
            raise Mismatch(f"upgrade on /other answered {status} {body!r}, expected 404 not_found")

    async def dup_id():
        # Ids are unique per room (issue 6 item 1): the same id in the same
        # room is refused, in another room it is another worker.
        room, wid = uniq("dup"), uniq("w")
        first = await connect(ws_url)
        other = await connect(ws_url)
        try:
            await first.send(hello(room, wid))
            w = await recv_json(first)
            if w.get("type") != "welcome" or w.get("id") != wid:
                raise Mismatch(f"first worker not welcomed: {w}")
            await expect_error(ws_url, [hello(room, wid)], "duplicate_id")
            await other.send(hello(uniq("dup"), wid))
            w = await recv_json(other)
            if w.get("type") != "welcome" or w.get("id") != wid:
                raise Mismatch(f"the same id in another room was not welcomed: {w}")
            # The first owner of the id is untouched and still served.
            await first.send(hello(room, wid))
            m = await recv_json(first)
            if m.get("code") != "unexpected_message":
                raise Mismatch(f"second hello on the first connection: {m}")
        finally:
            await first.close()
            await other.close()

    async def forwarded_for():
        loop = asyncio.get_running_loop()
        direct = await loop.run_in_executor(None, whoami, host, port)
        if not isinstance(direct.get("ip"), str) or not isinstance(direct.get("port"), int):
            raise Mismatch(f"/whoami without X-Forwarded-For: {direct}")
        for lines, want in XFF_CASES:
            got = await loop.run_in_executor(None, whoami, host, port, lines)
            if args.trust_proxy and want:
                if got != {"ip": want, "port": None}:
                    raise Mismatch(f"X-Forwarded-For {lines!r}: {got}, expected ip {want} port null")
            elif got.get("ip") != direct["ip"] or not isinstance(got.get("port"), int):
                raise Mismatch(f"X-Forwarded-For {lines!r}: {got}, expected the TCP peer "
                               f"{direct['ip']} with its port")
        # The WebSocket: behind a trusted proxy the address has no port, so
        # welcome and the peer's peer message leave "observed" out.
        room = uniq("xff")
        a = await connect(ws_url, headers=[("X-Forwarded-For", "203.0.113.66, 198.51.100.7")])
        b = await connect(ws_url)
        try:
            await a.send(hello(room))
            wa = await recv_json(a)
            await b.send(hello(room))
            wb = await recv_json(b)
            pa, pb = await recv_json(a), await recv_json(b)
        finally:
            await a.close()
            await b.close()
        for name, w in (("welcome", wa), ("welcome", wb), ("peer", pa), ("peer", pb)):
            if w.get("type") != name:
                raise Mismatch(f"expected {name}, got {w}")
        if args.trust_proxy:
            if "observed" in wa or "observed" in pb["peer"]:
                raise Mismatch(f"observed sent for a client behind the proxy: {wa} {pb}")
        elif not wa.get("observed", "").startswith(direct["ip"] + ":") or \
                pb["peer"].get("observed") != wa["observed"]:
            raise Mismatch(f"X-Forwarded-For not ignored on the WebSocket: {wa} {pb}")
        if not wb.get("observed", "").startswith(direct["ip"] + ":") or \
                pa["peer"].get("observed") != wb["observed"]:
            raise Mismatch(f"observed of a client without X-Forwarded-For: {wb} {pa}")

    async def no_candidates():
        # A waiting worker that sent no candidates (allowed) is paired: its
        # peer gets a peer message without candidates. (The lws version read
        # a NULL candidate list here: UBSan aborted the service.)
        room = uniq("nocand")
        a = await connect(ws_url)
        b = await connect(ws_url)
        try:
            await a.send(json.dumps({"type": "hello", "v": 1, "room": room}))
            wa = await recv_json(a)
            await b.send(hello(room))
            wb = await recv_json(b)
            pa, pb = await recv_json(a), await recv_json(b)
        finally:
            await a.close()
            await b.close()
        if (wa.get("type"), wb.get("type"), pa.get("type"), pb.get("type")) != \
                ("welcome", "welcome", "peer", "peer"):
            raise Mismatch(f"expected welcome, welcome, peer, peer: {wa} {wb} {pa} {pb}")
        if pb["peer"].get("candidates", []) != [] or not pa["peer"].get("candidates"):
            raise Mismatch(f"candidates not passed on as sent: {pa} {pb}")

    async def survivors():
        wa, wb, pa, pb = await pair(ws_url, result="direct")
        status, body = http_get(host, port, "/healthz")
        if status != 200:
            raise Mismatch(f"/healthz answered {status} after the bad input")

    room = uniq("bad")
    frag_hello = hello(uniq("frag"))
    cases = [
        ("invalid JSON", expect_error(ws_url, ['{"type": "hello", '], "bad_message")),
        ("empty message", expect_error(ws_url, [""], "bad_message")),
        ("non-object (array)", expect_error(ws_url, ["[1, 2, 3]"], "bad_message")),
        ("non-object (string)", expect_error(ws_url, ['"hello"'], "bad_message")),
        ("missing type", expect_error(ws_url, ['{"v": 1}'], "bad_message")),
        ("unknown type", expect_error(ws_url, ['{"type": "bogus"}'], "bad_message")),
        ("wrong version", expect_error(ws_url, [hello(room, v=2)], "unsupported_version")),
        ("bad room chars", expect_error(ws_url, [hello("bad room!")], "bad_message")),
        ("room too long", expect_error(ws_url, [hello("r" * 65)], "bad_message")),
        ("bad id", expect_error(ws_url, [hello(room, "no/slash")], "bad_message")),
        ("candidates not a list", expect_error(ws_url, [hello(room, cands="x")], "bad_message")),
        ("candidate without port",
         expect_error(ws_url, [hello(room, cands=[{"kind": "host", "addr": "10.0.0.1"}])],
                      "bad_message")),
        ("candidate bad kind",
         expect_error(ws_url, [hello(room, cands=[{"kind": "relay", "addr": "10.0.0.1:1"}])],
                      "bad_message")),
        ("result before hello",
         expect_error(ws_url, ['{"type": "result", "status": "direct"}'], "unexpected_message")),
        ("client sends welcome",
         expect_error(ws_url, ['{"type": "welcome", "id": "x", "room": "r"}'],
                      "unexpected_message")),
        ("client sends peer",
         expect_error(ws_url, [json.dumps({"type": "peer", "room": "r", "role": "a",
                                           "session": "0" * 32,
                                           "peer": {"id": "x", "candidates": []},
                                           "start_in_ms": 0})], "unexpected_message")),
        ("client sends error",
         expect_error(ws_url, ['{"type": "error", "code": "bad_message", "message": "no"}'],
                      "unexpected_message")),
        ("second hello", expect_error(ws_url, [hello(uniq("r")), hello(uniq("r"))],
                                      "unexpected_message", skip=1)),
        ("binary frame", expect_error(ws_url, [b"\x00\x01binary"], "unsupported_data",
                                      UNSUPPORTED_DATA)),
        ("too large (one frame)",
         expect_error(ws_url, ['"' + "x" * big + '"'], "too_large", TOO_BIG)),
        ("too large (fragments)",
         expect_error(ws_url, [["x" * 1000] * (big // 1000 + 2)], "too_large", TOO_BIG)),
        ("fragmented hello is fine",
         expect_error(ws_url, [[frag_hello[:20], frag_hello[20:]],
                               '{"type": "welcome", "id": "x", "room": "r"}'],
                      "unexpected_message", skip=1)),
        ("upgrade on another path", wrong_path()),
        ("duplicate id", dup_id()),
        ("waiting worker without candidates", no_candidates()),
        ("X-Forwarded-For " + ("right-most entry" if args.trust_proxy else "ignored"),
         forwarded_for()),
    ]
    # Slow cases (timeouts) run alongside the others, which they must not block.
    slow = [
        ("hello timeout",
         expect_error(ws_url, [], "hello_timeout", POLICY, timeout=args.hello_timeout + STEP)),
        ("half an HTTP request",
         wait_dropped(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                      args.http_timeout + STEP)),
        ("silent TCP connection", wait_dropped(host, port, b"", args.http_timeout + STEP)),
    ]
    slow_tasks = [asyncio.ensure_future(run(n, c)) for n, c in slow]
    for name, coro in cases:
        await run(name, coro)
    await run("others still served", survivors())
    await asyncio.gather(*slow_tasks)

    failed = [r for r in results if r[1] is not None]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base_url")
    p.add_argument("--hello-timeout", type=float, default=10.0)
    p.add_argument("--http-timeout", type=float, default=10.0)
    p.add_argument("--max-message-bytes", type=int, default=65536)
    p.add_argument("--trust-proxy", action="store_true",
                   help="the server runs with TRUST_PROXY=1")
    args = p.parse_args()
    try:
        rc = asyncio.run(asyncio.wait_for(main_async(args), 120))
    except asyncio.TimeoutError:
        print("rdv_badinput: gave up after 120 s", file=sys.stderr)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
