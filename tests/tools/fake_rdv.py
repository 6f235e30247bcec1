#!/usr/bin/python3
"""A scripted, misbehaving rendezvous for the worker's tests.

  fake_rdv.py --mode MODE [--host H] [--port P] [--public-ip IP]
              [--punch-port Q] [--room R] [--duration S]

Serves GET /whoami (the client's address and port, as the real service) and
the signaling WebSocket on /ws, where it breaks protocol v1 in the way MODE
says (docs/PROTOCOL.md is what it breaks). In the modes that pair, it also
plays the peer: role "a" listening on --punch-port (its candidate is
--public-ip:--punch-port), answering the worker's hello line with its own and
the nomination. Events go to stdout as JSON lines ({"event": ...}) for the
test to check. It serves one worker and exits by itself after --duration s.

Modes (what happens after the upgrade; "welcome" means after the worker's
hello, a valid welcome):
  binary          a binary frame
  nonjson         a text frame that is not JSON
  oversized       a 70,000-byte text message
  frag10m         welcome, then a 10 MB message in 64 KiB fragments
  session31 | session4000 | session_upper
                  welcome, then peer with such a session
  role_c          welcome, then peer with role "c"
  cands300        welcome, then peer with 300 candidates
  cand_multicast  welcome, then peer with candidate 224.0.0.1:80
  cand_loopback   welcome, then peer with 127.0.0.1:22 and 169.254.169.254:80
  welcome_use     a welcome with the reserved id "use"
  close_upgrade   a close frame (1001) right after the upgrade, nothing read
  close_hello     the hello is read, then a close (1001) without welcome
  close_welcome   welcome, then a close (1001)
  reset           welcome, then a TCP reset (no close frame)
  pingflood       welcome, then pings as fast as the socket takes them
  close_punch     welcome, peer (candidate: a port that accepts and never
                  speaks), then a close right away (mid-punch)
  peer_ok         welcome, peer; the fake peer completes the handshake, the
                  secure channel (secure_peer.py, no code) and the greeting
                  inside it; the worker's result is read
  hold_close      as peer_ok, but the service stops reading its socket after
                  peer (the worker's close frame is never answered) and the
                  peer sends no greeting: the window of the polite close
  fd_first        as hold_close, but the peer greets: the worker's greeting
                  must arrive while its WebSocket is still open (the socket
                  is handed over before the polite close, not after it); the
                  "greeting" event carries the TCP state of that WebSocket
"""
import argparse
import asyncio
import http
import json
import secrets
import socket
import struct
import sys
import time

import websockets
import websockets.server

from secure_peer import HEADER_LEN, MSG_LEN, HandshakeError, SecurePeer

T0 = time.monotonic()


def emit(event, **kw):
    kw = {"event": event, "t": round(time.monotonic() - T0, 3), **kw}
    print(json.dumps(kw), flush=True)


class Proto(websockets.server.WebSocketServerProtocol):
    async def process_request(self, path, headers):
        if path.split("?")[0].endswith("/whoami"):
            host, port = self.remote_address[:2]
            body = json.dumps({"ip": host, "port": port}).encode()
            emit("whoami", ip=host, port=port)
            return (http.HTTPStatus.OK, [("Content-Type", "application/json")], body)
        if not path.split("?")[0].endswith("/ws"):
            return (http.HTTPStatus.NOT_FOUND, [("Content-Type", "application/json")], b'{"error":"not_found"}')
        return None


def peer_msg(args, session, role="b", cands=None):
    return json.dumps({
        "type": "peer", "room": args.room, "role": role, "session": session,
        "peer": {"id": "fakepeer", "observed": f"{args.public_ip}:40000",
                 "candidates": cands if cands is not None else
                 [{"kind": "srflx", "addr": f"{args.public_ip}:{args.punch_port}"}]},
        "start_in_ms": 0})


TCP_STATES = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK"}


def ws_tcp_state(ws):
    """The kernel's state of our end of the worker's WebSocket connection:
    ESTABLISHED while the worker keeps it open, CLOSE_WAIT once the worker
    has closed its end (we do not read it, so we cannot tell otherwise)."""
    if ws is None:
        return None
    sock = ws.transport.get_extra_info("socket")
    try:
        return TCP_STATES.get(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0], "other")
    except OSError:
        return "closed"  # our side has already seen the close and let go


async def fake_peer(args, session, greet, state):
    """Role "a" on the punch port: read the worker's hello (it dials us),
    answer with ours and "use", then the secure channel (no code, as the
    worker) and the greeting exchange inside it."""

    async def serve(reader, writer):
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            emit("peer_hello", line=line.decode(errors="replace").strip())
            want = f"HOLEPUNCH/1 {session} "
            if not line.decode(errors="replace").startswith(want):
                writer.close()
                return
            worker_id = line.decode(errors="replace").strip().split(" ")[2]
            writer.write(f"HOLEPUNCH/1 {session} fakepeer\nHOLEPUNCH/1 {session} use\n".encode())
            await writer.drain()
            emit("nominated")
            sp = SecurePeer(session, "fakepeer", worker_id, "a")
            writer.write(sp.hello())
            await writer.drain()
            confirm = sp.on_hello(await asyncio.wait_for(reader.readexactly(MSG_LEN), 5))
            writer.write(confirm)
            await writer.drain()
            sp.check_confirm(await asyncio.wait_for(reader.readexactly(MSG_LEN), 5))
            writer.write(sp.tx_header())
            emit("secure")
            if greet:
                writer.write(sp.seal(f"hello from fakepeer in room {args.room}\n".encode()))
                await writer.drain()
            sp.rx_header(await asyncio.wait_for(reader.readexactly(HEADER_LEN), 5))
            head = await asyncio.wait_for(reader.readexactly(2), 5)
            body = await asyncio.wait_for(reader.readexactly((head[0] << 8) | head[1]), 5)
            g, _ = sp.open(head + body)
            emit("greeting", line=g.decode(errors="replace").strip(),
                 ws_tcp_state=ws_tcp_state(state.get("ws")))
            if not greet:
                await asyncio.sleep(args.duration)  # the worker waits for ours
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                HandshakeError) as e:
            emit("peer_error", error=repr(e))
        finally:
            writer.close()

    return await asyncio.start_server(serve, host="0.0.0.0", port=args.punch_port,
                                      reuse_address=True)


async def silent_listener(args):
    async def serve(reader, writer):
        emit("silent_accept")
        await asyncio.sleep(args.duration)
        writer.close()

    return await asyncio.start_server(serve, host="0.0.0.0", port=args.punch_port,
                                      reuse_address=True)


async def handler(ws, path=None):
    args = handler.args
    mode = args.mode
    state = {"ws": ws}
    session = secrets.token_hex(16)
    emit("upgrade", mode=mode)
    try:
        if mode == "close_upgrade":
            await ws.close(1001, "going away")
            return
        hello = json.loads(await ws.recv())
        emit("hello", id=hello.get("id"), candidates=hello.get("candidates"))
        wid = hello.get("id") or "w1"
        welcome = json.dumps({"type": "welcome", "id": wid, "room": args.room,
                              "observed": f"{ws.remote_address[0]}:{ws.remote_address[1]}"})
        if mode == "binary":
            await ws.send(b"\x00\x01binary")
        elif mode == "nonjson":
            await ws.send("this is not json {")
        elif mode == "oversized":
            await ws.send("x" * 70000)
        elif mode == "welcome_use":
            await ws.send(json.dumps({"type": "welcome", "id": "use", "room": args.room}))
        elif mode == "close_hello":
            await ws.close(1001, "going away")
            return
        else:
            await ws.send(welcome)
            if mode == "close_welcome":
                await asyncio.sleep(0.3)
                await ws.close(1001, "going away")
                return
            if mode == "reset":
                await asyncio.sleep(0.3)
                sock = ws.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.transport.abort()
                emit("reset")
                return
            if mode == "pingflood":
                n = 0
                while n < 200000:
                    await ws.ping(str(n))
                    n += 1
                    if n % 1000 == 0:
                        await asyncio.sleep(0)
                emit("pings", n=n)
                return
            if mode == "frag10m":
                async def frags():
                    for _ in range(160):
                        yield "x" * 65536
                await ws.send(frags())
                return
            if mode in ("session31", "session4000", "session_upper"):
                s = {"session31": session[:31], "session4000": "a" * 4000,
                     "session_upper": session.upper()}[mode]
                await ws.send(peer_msg(args, s))
            elif mode == "role_c":
                await ws.send(peer_msg(args, session, role="c"))
            elif mode == "cands300":
                cands = [{"kind": "host", "addr": f"198.51.100.{1 + i % 200}:{1000 + i}"}
                         for i in range(300)]
                await ws.send(peer_msg(args, session, cands=cands))
            elif mode == "cand_multicast":
                await ws.send(peer_msg(args, session,
                                       cands=[{"kind": "srflx", "addr": "224.0.0.1:80"}]))
            elif mode == "cand_loopback":
                await ws.send(peer_msg(args, session, cands=[
                    {"kind": "host", "addr": "127.0.0.1:22"},
                    {"kind": "srflx", "addr": "169.254.169.254:80"}]))
            elif mode == "close_punch":
                handler.server2 = await silent_listener(args)
                await ws.send(peer_msg(args, session))
                await ws.close(1001, "going away")
                emit("closed_mid_punch")
                return
            elif mode in ("peer_ok", "hold_close", "fd_first"):
                handler.server2 = await fake_peer(args, session, mode != "hold_close", state)
                await ws.send(peer_msg(args, session))
                emit("peer_sent", session=session)
                if mode in ("hold_close", "fd_first"):
                    # Nothing more is read: the worker's result and close
                    # frame wait in our socket buffer, unanswered.
                    ws.transport.pause_reading()
                    await asyncio.sleep(args.duration)
                    return
                res = json.loads(await ws.recv())
                emit("result", **{k: v for k, v in res.items() if k != "type"})
        # Wait for the worker to go away (it must, by itself).
        try:
            msg = await asyncio.wait_for(ws.recv(), args.duration)
            emit("received", text=str(msg)[:200])
        except asyncio.TimeoutError:
            emit("still_open")
    except websockets.ConnectionClosed as e:
        emit("closed", code=e.code)
    except (ConnectionError, OSError) as e:
        emit("conn_error", error=repr(e))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--public-ip", default="127.0.0.1")
    ap.add_argument("--punch-port", type=int, default=8099)
    ap.add_argument("--room", default="fake")
    ap.add_argument("--duration", type=float, default=30)
    args = ap.parse_args()
    handler.args = args
    handler.server2 = None
    async with websockets.serve(handler, args.host, args.port, create_protocol=Proto,
                                max_size=2**20, ping_interval=None, close_timeout=2):
        emit("listening", port=args.port, mode=args.mode)
        await asyncio.sleep(args.duration)
    emit("done")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
