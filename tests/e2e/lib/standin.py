#!/usr/bin/python3
"""Python stand-in traffic for the NAT lab (tests/e2e/lib/lab.sh).

It proves the lab's NAT behaviours independently of the C binaries:

  reflect  --bind IP --port N --duration S
      TCP server: answers every connection with "ip:port\\n" (the peer address
      it sees, i.e. the NAT mapping) and closes. Stops by itself after S s.
  whoami   --port P --reflector IP:PORT [--reflector IP:PORT ...]
      From local port P (SO_REUSEADDR+SO_REUSEPORT, like the worker's punch
      socket) ask each reflector in turn; prints one "observed ip:port" line
      per reflector. Same port for different destinations = endpoint-
      independent mapping.
  punch    --name N --port P --reflector IP:PORT --me FILE --peer FILE
           --timeout S
      A tiny TCP simultaneous-open puncher: listen on P, learn the mapping of
      P from the reflector, publish it in FILE (--me), wait for the peer's
      (--peer), then connect from P to the peer's mapping again and again
      while also accepting on P. The first connection wins; each side sends
      "HELLO from N\\n" and prints the peer's line. Exit 0 on success, 5 when
      no connection was made within S s (the worker's exit code for that).
  probe    --to IP:PORT [--timeout S]
      Try one TCP connect; print "connected", "refused" or "timeout".
  rtt      --to IP:PORT [--count N] [--interval S] [--timeout S]
      N TCP connects, one after the other; prints one "rtt MS" line per
      connect that was answered (accepted or refused: both take one round
      trip) and "lost" for one that timed out. Used to measure the link
      emulator's delay (a closed port answers with a reset, no server needed).
  stun-udp --bind IP --port N --duration S
      A minimal STUN Binding responder over UDP: answers every Binding
      request from the address it came to, with MAPPED-ADDRESS and
      XOR-MAPPED-ADDRESS of the sender, ignoring CHANGE-REQUEST. It only
      serves miniupnpd's start-up check on a lab NAT router (whose WAN
      address is in a documentation range that miniupnpd otherwise takes for
      a private one); our own STUN client is tested against coturn.
  garbage  --to IP:PORT --data TEXT [--timeout S]
      Connect, send TEXT (with backslash escapes), wait until the far end
      closes or S s pass; print "closed after receiving N bytes" or "open
      after ...", then "received b'...'" if the far end sent anything.

Every loop is bounded in time; the script never talks to anything but the
address it is given (lab addresses only).
"""
import argparse
import os
import select
import socket
import sys
import time


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_addr(text):
    """"ip:port" or "[v6]:port" -> (ip, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fmt_addr(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reuse_socket(port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    return s


def cmd_reflect(args):
    srv = socket.socket(family_of(args.bind), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(args.bind) == socket.AF_INET6:
        srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    srv.bind((args.bind, args.port))
    srv.listen(64)
    deadline = time.monotonic() + args.duration
    log(f"reflector on {args.bind}:{args.port} for {args.duration}s")
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return 0
        r, _, _ = select.select([srv], [], [], min(left, 0.5))
        if not r:
            continue
        conn, peer = srv.accept()
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall(f"{fmt_addr(peer[0], peer[1])}\n".encode())
            except OSError:
                pass
            log(f"reflected {fmt_addr(peer[0], peer[1])}")


def ask_reflector(port, reflector, timeout=5.0):
    s = reuse_socket(port, family_of(parse_addr(reflector)[0]))
    try:
        s.settimeout(timeout)
        s.connect(parse_addr(reflector))
        data = b""
        while not data.endswith(b"\n") and len(data) < 64:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()
    finally:
        s.close()


def cmd_whoami(args):
    for refl in args.reflector:
        print(f"observed {ask_reflector(args.port, refl)} via {refl}", flush=True)
    return 0


def read_line(sock, timeout):
    sock.setblocking(True)
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def cmd_punch(args):
    start = time.monotonic()
    deadline = start + args.timeout
    fam = family_of(parse_addr(args.reflector)[0])
    lst = reuse_socket(args.port, fam)
    lst.listen(8)
    lst.setblocking(False)
    observed = ask_reflector(args.port, args.reflector)
    log(f"{args.name}: listening on :{args.port}, observed mapping {observed}")
    print(f"mapping {observed}", flush=True)
    tmp = args.me + ".tmp"
    with open(tmp, "w") as f:
        f.write(observed + "\n")
    os.rename(tmp, args.me)

    peer = None
    while time.monotonic() < deadline:
        if os.path.exists(args.peer):
            with open(args.peer) as f:
                peer = f.read().strip()
            break
        time.sleep(0.05)
    if not peer:
        log(f"{args.name}: no peer address within {args.timeout}s")
        return 4
    log(f"{args.name}: peer mapping {peer}; punching")
    punch_start = time.monotonic()

    conn = None
    how = None
    csock = None
    attempts = 0
    c_started = 0.0
    while conn is None and time.monotonic() < deadline:
        now = time.monotonic()
        if csock is None:
            csock = reuse_socket(args.port, fam)
            csock.setblocking(False)
            attempts += 1
            err = csock.connect_ex(parse_addr(peer))
            c_started = now
            if err not in (0, 115):  # EINPROGRESS
                log(f"{args.name}: connect attempt {attempts}: {os.strerror(err)}")
                csock.close()
                csock = None
                time.sleep(0.2)
                continue
        r, w, _ = select.select([lst], [csock], [], 0.1)
        if lst in r:
            try:
                conn, addr = lst.accept()
                how = f"accepted from {fmt_addr(addr[0], addr[1])}"
                break
            except BlockingIOError:
                pass
        if csock in w:
            err = csock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                conn, how = csock, f"connected to {peer}"
                csock = None
                break
            log(f"{args.name}: connect attempt {attempts}: {os.strerror(err)}")
            csock.close()
            csock = None
            time.sleep(0.2)
        elif csock is not None and now - c_started > 2.0:
            # Restart a connect that has been pending too long: a fresh SYN.
            csock.close()
            csock = None
    if csock is not None:
        csock.close()
    if conn is None:
        log(f"{args.name}: no direct connection after {attempts} attempts")
        print(f"no direct connection after {attempts} attempts", flush=True)
        return 5
    ms = (time.monotonic() - punch_start) * 1000
    print(f"direct {how} after {ms:.0f} ms, {attempts} attempts", flush=True)
    try:
        conn.setblocking(True)
        conn.sendall(f"HELLO from {args.name}\n".encode())
        line = read_line(conn, 5)
    except OSError as e:
        log(f"{args.name}: exchange failed: {e}")
        return 6
    finally:
        conn.close()
    print(f"got {line}", flush=True)
    return 0 if line.startswith("HELLO from ") else 6


def cmd_rtt(args):
    for _ in range(args.count):
        s = socket.socket(family_of(parse_addr(args.to)[0]), socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        t0 = time.monotonic()
        try:
            s.connect(parse_addr(args.to))
            answered = True
        except ConnectionRefusedError:
            answered = True
        except (socket.timeout, TimeoutError, OSError):
            answered = False
        dt = (time.monotonic() - t0) * 1000.0
        # SO_LINGER 0: close with a reset, no FIN exchange to delay the next one.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        print(f"rtt {dt:.3f}" if answered else "lost", flush=True)
        time.sleep(args.interval)
    return 0


def cmd_stun_udp(args):
    import struct
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((args.bind, args.port))
    deadline = time.monotonic() + args.duration
    log(f"stun-udp on {args.bind}:{args.port} for {args.duration}s")
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return 0
        r, _, _ = select.select([srv], [], [], min(left, 0.5))
        if not r:
            continue
        data, peer = srv.recvfrom(2048)
        if len(data) < 20 or data[0:2] != b"\x00\x01" or data[4:8] != b"\x21\x12\xa4\x42":
            continue
        ip = socket.inet_aton(peer[0])
        mapped = struct.pack(">HHBBH", 0x0001, 8, 0, 1, peer[1]) + ip
        xip = bytes(a ^ b for a, b in zip(ip, data[4:8]))
        xor = struct.pack(">HHBBH", 0x0020, 8, 0, 1, peer[1] ^ 0x2112) + xip
        body = mapped + xor
        srv.sendto(struct.pack(">HH", 0x0101, len(body)) + data[4:20] + body, peer)
        log(f"stun-udp: answered {peer[0]}:{peer[1]}")


def cmd_probe(args):
    s = socket.socket(family_of(parse_addr(args.to)[0]), socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    try:
        s.connect(parse_addr(args.to))
        print("connected", flush=True)
    except ConnectionRefusedError:
        print("refused", flush=True)
    except (socket.timeout, TimeoutError):
        print("timeout", flush=True)
    except OSError as e:
        print(f"error {e.strerror}", flush=True)
    finally:
        s.close()
    return 0


def cmd_garbage(args):
    data = args.data.encode().decode("unicode_escape").encode("latin-1")
    s = socket.create_connection(parse_addr(args.to), timeout=args.timeout)
    try:
        s.sendall(data)
        me = s.getsockname()
        print(f"sent {len(data)} bytes from {me[0]}:{me[1]}", file=sys.stderr, flush=True)
        # Read until the far end closes (or the time is up); whatever it
        # sends is reported, so a test can see what leaked to a stranger.
        got = b""
        deadline = time.monotonic() + args.timeout
        state = "open"
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(256)
            except socket.timeout:
                break
            except ConnectionResetError:
                state = "closed"
                break
            if not chunk:
                state = "closed"
                break
            if len(got) < 1024:
                got += chunk
        print(f"{state} after receiving {len(got)} bytes", flush=True)
        if got:
            print(f"received {got[:200]!r}", flush=True)
    finally:
        s.close()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reflect")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=60)
    p = sub.add_parser("whoami")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reflector", action="append", required=True)
    p = sub.add_parser("punch")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reflector", required=True)
    p.add_argument("--me", required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("probe")
    p.add_argument("--to", required=True)
    p.add_argument("--timeout", type=float, default=3)
    p = sub.add_parser("rtt")
    p.add_argument("--to", required=True)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=2)
    p = sub.add_parser("stun-udp")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=3478)
    p.add_argument("--duration", type=float, default=60)
    p = sub.add_parser("garbage")
    p.add_argument("--to", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--timeout", type=float, default=3)
    args = ap.parse_args()
    return {"reflect": cmd_reflect, "whoami": cmd_whoami, "punch": cmd_punch,
            "garbage": cmd_garbage, "probe": cmd_probe, "rtt": cmd_rtt,
            "stun-udp": cmd_stun_udp}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
