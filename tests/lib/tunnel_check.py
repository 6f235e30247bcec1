#!/usr/bin/python3
"""tunnel_check.py - clients and a server for the forward/expose tests.

  tunnel_check.py serve PORT SECONDS
      an echo server on 127.0.0.1:PORT (each connection: echo until EOF,
      then half-close), for at most SECONDS.
  tunnel_check.py concurrent PORT N BYTES
      N connections at once to 127.0.0.1:PORT, each sends BYTES+i random
      bytes and half-closes while reading the echo; every echo must be
      byte-for-byte the data. Prints "ok N".
  tunnel_check.py slow PORT BYTES CAP
      stream A: connect, send without ever reading (non-blocking) until the
      socket stays unwritable for 2 s; stream B: a full echo of BYTES while
      A is stuck. Checks B's echo, that A's send blocked within CAP bytes
      (the tunnel bounds what one stream may hold), and that A's connection
      is still alive afterwards. Prints "ok A_SENT".
  tunnel_check.py refused PORT
      one connection to 127.0.0.1:PORT (forwarded to a target that refuses):
      it must be closed (EOF or reset) without data, within 10 s.
Every wait is bounded; exit 1 with a sentence on failure.
"""
import os
import select
import socket
import sys
import threading
import time


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def serve(port, secs):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    s.settimeout(0.5)
    end = time.time() + secs

    def echo(c):
        c.settimeout(secs)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()

    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def roundtrip(port, data, timeout=30):
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    err = []

    def w():
        try:
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=w)
    t.start()
    got = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    t.join()
    c.close()
    if err:
        raise err[0]
    return bytes(got)


def concurrent(port, n, nbytes):
    res = [None] * n

    def one(i):
        data = os.urandom(nbytes + i)
        try:
            res[i] = roundtrip(port, data) == data
        except OSError as e:
            res[i] = e

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    bad = [(i, r) for i, r in enumerate(res) if r is not True]
    if bad:
        die("%d of %d connections wrong: %s" % (len(bad), n, bad[:4]))
    print("ok %d" % n)


def slow(port, nbytes, cap):
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    a.setblocking(False)
    chunk = b"a" * 65536
    sent = 0
    while sent <= cap:
        _, w, _ = select.select([], [a], [], 2.0)
        if not w:
            break
        try:
            sent += a.send(chunk)
        except BlockingIOError:
            pass
    if sent > cap:
        die("stream A's sends never blocked: %d bytes taken (cap %d)" % (sent, cap))
    data = os.urandom(nbytes)
    try:
        got = roundtrip(port, data, timeout=20)
    except OSError as e:
        die("stream B failed while A was stuck: %s" % e)
    if got != data:
        die("stream B's echo differs (%d of %d bytes)" % (len(got), len(data)))
    # A is alive: nothing came back (never read), the socket is not reset.
    try:
        r, _, _ = select.select([a], [], [], 0)
        if r and a.recv(1, socket.MSG_PEEK) == b"":
            die("stream A was closed")
    except ConnectionResetError:
        die("stream A was reset")
    a.close()
    print("ok %d" % sent)


def refused(port):
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionResetError:
        # On loopback the reset can come before connect() reports success.
        print("ok")
        return
    try:
        b = c.recv(1)
    except ConnectionResetError:
        b = b""
    except socket.timeout:
        die("the connection stayed open for 10 s")
    if b:
        die("data on a connection whose target refused")
    print("ok")


def main():
    a = sys.argv[1:]
    if a[:1] == ["serve"]:
        serve(int(a[1]), float(a[2]))
    elif a[:1] == ["concurrent"]:
        concurrent(int(a[1]), int(a[2]), int(a[3]))
    elif a[:1] == ["slow"]:
        slow(int(a[1]), int(a[2]), int(a[3]))
    elif a[:1] == ["refused"]:
        refused(int(a[1]))
    else:
        die(__doc__)


main()
