#!/usr/bin/env bash
# bench/worker.sh - what one connect costs the worker (holepunch), printed
# (no pass/fail: a benchmark, not a test), for two builds side by side in one
# run: this tree ("new": signaling WebSocket and health server on src/net)
# and the libwebsockets 4.1.6 worker of main before issue 10 (OLD_COMMIT,
# built from `git archive` into bench/out/, never committed; building it
# needs libwebsockets-dev and libwebsockets-evlib-uv, which scripts/deps.sh
# no longer installs).
#
# One connect = two workers of one build meet in a fresh room of one
# rendezvous (this tree's) on loopback, punch, exchange greetings, and exit
# 0; the health server is on (PORT), as in a deployment. Per worker process
# (os.wait4's rusage): peak RSS (ru_maxrss) and CPU time (user + system);
# ROUNDS rounds, the two builds alternating (which goes first alternates
# too), so that both see the same machine. Printed: each build's median,
# min and max, and the mean CPU.
#
# TLS=1: the workers reach the rendezvous as https:// through nginx on
# loopback with a test CA made here (openssl) in CA_FILE, so that the TLS
# path (the new worker's own OpenSSL client, lws' for the old one) is in
# the figures.
#
# As root, everything runs in a private network namespace (only "lo");
# without root, on 127.0.0.1 of the current namespace.
#
# Usage: bench/worker.sh [BUILD_DIR]   (default: build-bench, built if missing)
# Environment: ROUNDS (20), OLD_COMMIT (13294c1), TLS (0), HP_BENCH_NO_NETNS=1.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-bench}
ROUNDS=${ROUNDS:-20}
OLD_COMMIT=${OLD_COMMIT:-13294c1}
TLS=${TLS:-0}

die() { echo "worker.sh: $*" >&2; exit 1; }

if [[ ! -x $build/holepunch || ! -x $build/holepunch-rendezvous ]]; then
  echo "building this tree into $build ..."
  "$top/scripts/build.sh" "$build" -DHP_BUILD_TESTS=OFF >/dev/null
fi
oldsrc=$top/bench/out/worker-lws-$OLD_COMMIT
OLD_W=$oldsrc/build/holepunch
if [[ ! -x $OLD_W ]]; then
  echo "building the libwebsockets worker ($OLD_COMMIT) into $oldsrc ..."
  pkg-config --exists libwebsockets || die "the old build needs libwebsockets-dev (apt-get install libwebsockets-dev libwebsockets-evlib-uv)"
  rm -rf "$oldsrc"
  mkdir -p "$oldsrc"
  git -C "$top" archive "$OLD_COMMIT" | tar -x -C "$oldsrc"
  cmake -S "$oldsrc" -B "$oldsrc/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHP_BUILD_TESTS=OFF >/dev/null
  cmake --build "$oldsrc/build" -j2 --target holepunch-worker >/dev/null
fi
NEW_W=$build/holepunch
RDV=$build/holepunch-rendezvous

# As root: a private namespace with only loopback, removed at exit.
if [[ $(id -u) == 0 && -z ${HP_BENCH_NO_NETNS:-} && -z ${HP_BENCH_IN_NETNS:-} ]]; then
  ns="hpbw$$"
  ip netns add "$ns"
  trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
  ip -n "$ns" link set lo up
  HP_BENCH_IN_NETNS=1 ip netns exec "$ns" "$0" "$@"
  exit $?
fi

tmp=$(mktemp -d "/tmp/hp-bench-worker.$$.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [[ $TLS == 1 ]]; then
  command -v nginx >/dev/null || die "TLS=1 needs nginx (scripts/deps.sh installs nginx-light)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=hp bench CA" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tmp/srv.key" -out "$tmp/srv.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$tmp/srv.ext"
  openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 1 -extfile "$tmp/srv.ext" -out "$tmp/srv.pem" 2>/dev/null
fi

exec /usr/bin/python3 - "$RDV" "$OLD_W" "$NEW_W" "$ROUNDS" "$OLD_COMMIT" "$TLS" "$tmp" <<'EOF'
import os, socket, statistics, subprocess, sys, time

rdv_bin, old_w, new_w, rounds, old_commit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
tls, tmp = sys.argv[6] == "1", sys.argv[7]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def wait_port(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"worker.sh: nothing listens on port {port}")

rport = free_port()
rdv = subprocess.Popen([rdv_bin, "--port", str(rport), "--bind", "127.0.0.1",
                        "--max-hellos-per-minute", "100000", "--max-connections-per-ip", "100000"]
                       + (["--trust-proxy", "1"] if tls else []),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
nginx = None
url = f"http://127.0.0.1:{rport}"
try:
    wait_port(rport)
    if tls:
        nport = free_port()
        os.makedirs(f"{tmp}/ngx/tmp", exist_ok=True)
        with open(f"{tmp}/nginx.conf", "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1; pid {tmp}/ngx/pid;
error_log stderr error; events {{ worker_connections 256; }}
http {{ client_body_temp_path {tmp}/ngx/tmp; proxy_temp_path {tmp}/ngx/tmp;
  fastcgi_temp_path {tmp}/ngx/tmp; uwsgi_temp_path {tmp}/ngx/tmp; scgi_temp_path {tmp}/ngx/tmp;
  access_log off;
  server {{ listen 127.0.0.1:{nport} ssl; ssl_certificate {tmp}/srv.pem; ssl_certificate_key {tmp}/srv.key;
    location / {{ proxy_pass http://127.0.0.1:{rport}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
      proxy_set_header X-Forwarded-For $remote_addr; }} }} }}
""")
        nginx = subprocess.Popen(["nginx", "-p", f"{tmp}/ngx/", "-c", f"{tmp}/nginx.conf"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(nport)
        url = f"https://127.0.0.1:{nport}"

    def connect(binary, room):
        """Two workers of one build pair; rusage of each. None on failure."""
        procs = []
        for side in ("a", "b"):
            env = dict(os.environ, RENDEZVOUS_SERVICE_URL=url,
                       INTERNAL_TCP_PORT=str(free_port()), PORT=str(free_port()), ROOM=room,
                       WORKER_ID=side, ALLOW_LOOPBACK_CANDIDATES="1", LOG_LEVEL="warning",
                       WS_RECV_TIMEOUT="10", P2P_CONNECT_TIMEOUT="10", P2P_MSG_TIMEOUT="5")
            if tls:
                env["CA_FILE"] = f"{tmp}/ca.pem"
            procs.append(subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        out = []
        deadline = time.monotonic() + 30
        for p in procs:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    pid, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.005)
            p.returncode = os.waitstatus_to_exitcode(status)
            out.append((p.returncode, ru.ru_maxrss, (ru.ru_utime + ru.ru_stime) * 1000.0))
        return None if any(rc != 0 for rc, _, _ in out) else out

    res = {"lws": [], "new": []}
    fails = {"lws": 0, "new": 0}
    for i in range(rounds):
        order = [("lws", old_w), ("new", new_w)] if i % 2 == 0 else [("new", new_w), ("lws", old_w)]
        for name, binary in order:
            r = connect(binary, f"bw{os.getpid()}-{name}-{i}")
            if r is None:
                fails[name] += 1
            else:
                res[name].extend(r)
finally:
    if nginx:
        nginx.terminate()
        nginx.wait(10)
    rdv.terminate()
    rdv.wait(10)

print(f"worker cost per connect, {rounds} rounds x 2 workers per build (loopback, health server on, "
      f"{'https:// through nginx, test CA in CA_FILE' if tls else 'plain http://'})")
print(f"  lws: {old_w} (commit {old_commit}, libwebsockets 4.1.6)")
print(f"  new: {new_w} (src/net WebSocket client + health server)")
print(f"{'figure':34} {'lws':>24} {'new':>24}")
def row(label, idx, fmt):
    cells = []
    for name in ("lws", "new"):
        v = [x[idx] for x in res[name]]
        cells.append("-" if not v else
                     f"{fmt(statistics.median(v))} ({fmt(min(v))}..{fmt(max(v))})")
    print(f"{label:34} {cells[0]:>24} {cells[1]:>24}")
row("peak RSS, KiB: median (min..max)", 1, lambda x: f"{x:.0f}")
row("CPU ms: median (min..max)", 2, lambda x: f"{x:.1f}")
means = [f"{statistics.mean(x[2] for x in res[n]):.1f}" if res[n] else "-" for n in ("lws", "new")]
print(f"{'CPU ms: mean':34} {means[0]:>24} {means[1]:>24}")
print(f"{'failed connects':34} {fails['lws']:>24} {fails['new']:>24}")
EOF
