#!/usr/bin/python3
"""relay_client.py - a client of the rendezvous' relay (docs/PROTOCOL.md section 7).

Library (imported by tests/deploy/test_relay.sh and bench/relay.sh) and a small CLI.

    pair(base)                 two workers say hello in a fresh room on /ws and get
                               their peer messages: a real pairing, registered for
                               the relay. Returns Pairing(session, id_a, id_b).
    join(base, session, id)    open /relay and send the join; returns the WebSocket.
    ready(ws)                  wait for "ready"; returns the peer's id.
    expect_error(ws, code)     the next text message is an error with this code,
                               then the service closes; returns (message, close code).
    send_stream / recv_stream  push N pseudo-random bytes / read N bytes, with sha256.

CLI:
    relay_client.py BASE pair-and-copy --bytes N     pair, join both, copy N bytes
                                                     each way, print the sha256s and
                                                     MiB/s; exit 1 on a mismatch.
Every network step is bounded (STEP seconds, or the caller's timeout).
"""

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.parse

import websockets
import websockets.exceptions

STEP = 10.0  # s: bound of one network step
CHUNK = 64 * 1024


class RelayError(Exception):
    pass


class Pairing:
    def __init__(self, session, id_a, id_b):
        self.session, self.id_a, self.id_b = session, id_a, id_b

    def __repr__(self):
        return f"Pairing({self.session}, {self.id_a}, {self.id_b})"


def ws_base(base):
    """ws://host:port from http(s):// or ws(s)://host:port."""
    u = urllib.parse.urlsplit(base)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(u.scheme)
    if not scheme:
        raise SystemExit(f"relay_client: base URL must be http(s):// or ws(s)://, got {base!r}")
    return f"{scheme}://{u.netloc}"


async def _connect(url, max_queue=32):
    return await websockets.connect(url, open_timeout=STEP, close_timeout=STEP, compression=None,
                                    max_size=2**22, max_queue=max_queue, ping_interval=None)


async def _recv_json(ws, timeout=STEP):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(raw, str):
        raise RelayError(f"expected a text message, got {len(raw)} binary bytes")
    return json.loads(raw)


async def pair(base, room=None):
    """A real pairing through signaling: hello, hello, peer, peer."""
    room = room or f"relay-{secrets.token_hex(6)}"
    url = ws_base(base) + "/ws"
    a = await _connect(url)
    b = await _connect(url)
    try:
        ids = [f"ra-{secrets.token_hex(4)}", f"rb-{secrets.token_hex(4)}"]
        await a.send(json.dumps({"type": "hello", "v": 1, "id": ids[0], "room": room}))
        if (await _recv_json(a)).get("type") != "welcome":
            raise RelayError("a: no welcome")
        await b.send(json.dumps({"type": "hello", "v": 1, "id": ids[1], "room": room}))
        if (await _recv_json(b)).get("type") != "welcome":
            raise RelayError("b: no welcome")
        pa, pb = await _recv_json(b), await _recv_json(a)
        if pa.get("type") != "peer" or pb.get("type") != "peer":
            raise RelayError(f"no peer messages: {pa} {pb}")
        if pa["session"] != pb["session"]:
            raise RelayError("the two peer messages carry different sessions")
        return Pairing(pa["session"], ids[0], ids[1])
    finally:
        await a.close()
        await b.close()


async def join(base, session, wid, max_queue=32, raw_first=None):
    """Open /relay and send the join (or raw_first, a text to send instead)."""
    ws = await _connect(ws_base(base) + "/relay", max_queue=max_queue)
    msg = raw_first if raw_first is not None else json.dumps(
        {"type": "join", "v": 1, "session": session, "id": wid})
    await ws.send(msg)
    return ws


async def ready(ws, timeout=STEP):
    m = await _recv_json(ws, timeout)
    if m.get("type") != "ready":
        raise RelayError(f"expected ready, got {m}")
    return m["peer"]


async def expect_error(ws, code, timeout=STEP):
    """The next message is error `code`, then a close. Returns (message, close code)."""
    m = await _recv_json(ws, timeout)
    if m.get("type") != "error" or m.get("code") != code:
        raise RelayError(f"expected error {code}, got {m}")
    try:
        await asyncio.wait_for(ws.wait_closed(), timeout)
    except asyncio.TimeoutError:
        raise RelayError(f"error {code}: the service did not close within {timeout} s")
    return m.get("message", ""), ws.close_code


def _pattern(seed, n):
    """n deterministic pseudo-random bytes (sha256 in counter mode: cheap enough)."""
    out = bytearray()
    k = 0
    while len(out) < n:
        out += hashlib.sha256(seed + k.to_bytes(8, "big")).digest() * 32  # 1 KiB per hash
        k += 1
    return bytes(out[:n])


async def send_stream(ws, nbytes, seed=b"x", chunk=CHUNK, eof=True):
    """Send nbytes in binary frames; returns their sha256 hex. Then eof."""
    h = hashlib.sha256()
    block = _pattern(seed, chunk)
    sent = 0
    while sent < nbytes:
        k = min(chunk, nbytes - sent)
        piece = block[:k]
        h.update(piece)
        await ws.send(piece)
        sent += k
    if eof:
        await ws.send(json.dumps({"type": "eof"}))
    return h.hexdigest()


async def recv_stream(ws, nbytes, timeout=STEP):
    """Receive binary data until nbytes and the peer's eof; returns (sha256 hex, bytes)."""
    h = hashlib.sha256()
    got = 0
    while True:
        m = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(m, str):
            j = json.loads(m)
            if j.get("type") == "eof":
                break
            raise RelayError(f"unexpected text message after {got} bytes: {j}")
        h.update(m)
        got += len(m)
        if got > nbytes:
            raise RelayError(f"received {got} bytes, more than the {nbytes} sent")
    return h.hexdigest(), got


async def copy_both_ways(base, nbytes, timeout=120):
    """Pair, join both, send nbytes each way at once. Returns a dict of figures."""
    p = await pair(base)
    a = await join(base, p.session, p.id_a)
    b = await join(base, p.session, p.id_b)
    try:
        if await ready(a) != p.id_b or await ready(b) != p.id_a:
            raise RelayError("ready names the wrong peer")
        t0 = time.monotonic()
        res = await asyncio.wait_for(asyncio.gather(
            send_stream(a, nbytes, b"a"), send_stream(b, nbytes, b"b"),
            recv_stream(b, nbytes), recv_stream(a, nbytes)), timeout)
        dt = time.monotonic() - t0
    finally:
        await a.close()
        await b.close()
    sent_a, sent_b, (got_b, nb), (got_a, na) = res
    return {"sha_a_sent": sent_a, "sha_b_got": got_b, "bytes_b_got": nb,
            "sha_b_sent": sent_b, "sha_a_got": got_a, "bytes_a_got": na,
            "seconds": dt, "pairing": p}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("cmd", choices=["pair-and-copy"])
    ap.add_argument("--bytes", type=int, default=20 * 1024 * 1024)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    r = asyncio.run(copy_both_ways(args.base, args.bytes, args.timeout))
    ok = (r["sha_a_sent"] == r["sha_b_got"] and r["sha_b_sent"] == r["sha_a_got"]
          and r["bytes_a_got"] == r["bytes_b_got"] == args.bytes)
    mib = args.bytes / 2**20
    print(f"a->b sha256 {r['sha_a_sent']} / {r['sha_b_got']}")
    print(f"b->a sha256 {r['sha_b_sent']} / {r['sha_a_got']}")
    print(f"copied {mib:.1f} MiB each way in {r['seconds']:.2f} s: "
          f"{2 * mib / r['seconds']:.1f} MiB/s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
