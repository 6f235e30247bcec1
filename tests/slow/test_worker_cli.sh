#!/usr/bin/env bash
# The command-line contract of both binaries, as a user meets it: --help and
# --version, every kind of bad configuration refused with the variable (or
# flag) named and exit code 2, and the worker's exit codes 3 (rendezvous
# unreachable / refused us) and 4 (no peer in time). Loopback only, bounded.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
tmp=$(mktemp -d "/tmp/hp-cli-$$-XXXX")
cleanup() {
  lo_stop "$LO_RDV_PID"
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }

# plain: JSON log lines as their "message" (so one regex fits both formats),
# other lines as they are.
plain() {
  /usr/bin/python3 -c 'import json, sys
for line in sys.stdin:
    try:
        e = json.loads(line)
        print(e["message"] if isinstance(e, dict) and "message" in e else line, end="\n")
    except ValueError:
        print(line, end="")'
}

# expect RC REGEX CMD...: CMD exits with RC and its stderr+stdout (log
# messages) match REGEX.
expect() {
  local want=$1 re=$2 rc=0 out
  shift 2
  out=$(timeout 30 "$@" 2>&1 </dev/null) || rc=$?
  out=$(plain <<<"$out")
  if [[ $rc -ne $want ]]; then
    bad "'$*' exited $rc, expected $want; output: ${out:0:400}"
  elif ! grep -Eq -- "$re" <<<"$out"; then
    bad "'$*' output does not match /$re/: ${out:0:400}"
  else
    ok
  fi
}

W=(env -i PATH="$PATH" LOG_FORMAT=json "$B/holepunch")
R=(env -i PATH="$PATH" LOG_FORMAT=json "$B/holepunch-rendezvous")
expect 0 'RENDEZVOUS_SERVICE_URL' "${W[@]}" --help
expect 0 '^holepunch [0-9]+\.[0-9]+\.[0-9]+$' "${W[@]}" --version
expect 0 'MAX_CONNECTIONS' "${R[@]}" --help
expect 0 '^holepunch-rendezvous [0-9]+\.[0-9]+\.[0-9]+$' "${R[@]}" --version
expect 2 'RENDEZVOUS_SERVICE_URL is required' "${W[@]}"
expect 2 'INTERNAL_TCP_PORT="70000" is not valid: expected an integer from 1 to 65535' \
  env -i INTERNAL_TCP_PORT=70000 RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch"
expect 2 '--internal-tcp-port "abc" is not valid' "${W[@]}" --rendezvous-url http://127.0.0.1:9 --internal-tcp-port abc
expect 2 'WS_RECV_TIMEOUT="-1" is not valid' env -i WS_RECV_TIMEOUT=-1 RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch"
expect 2 'LOG_LEVEL="loud" is not valid' env -i LOG_LEVEL=loud RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch"
expect 2 'RENDEZVOUS_SERVICE_URL="ftp://x" is not valid' "${W[@]}" --rendezvous-url ftp://x
expect 2 'ROOM="bad room" is not valid' "${W[@]}" --rendezvous-url http://127.0.0.1:9 --room 'bad room'
expect 2 'WORKER_ID="use" is not valid' "${W[@]}" --rendezvous-url http://127.0.0.1:9 --worker-id use
expect 2 'unknown option' "${W[@]}" --no-such-flag
expect 2 'PORT="x" is not valid' env -i PORT=x "$B/holepunch-rendezvous"
# Subcommands (src/cli/main.c): the list, greet by name = no subcommand,
# flags before or after the name, a flag's value is never taken for a name,
# an unknown name is a configuration error.
expect 0 '^  greet +punch a direct connection' "${W[@]}" help
expect 0 'RENDEZVOUS_SERVICE_URL' "${W[@]}" greet --help
expect 0 '^holepunch [0-9]+\.[0-9]+\.[0-9]+$' "${W[@]}" greet --version
expect 2 'unknown subcommand "frobnicate"' "${W[@]}" frobnicate
expect 2 'RENDEZVOUS_SERVICE_URL="ftp://x" is not valid' "${W[@]}" greet --rendezvous-url ftp://x
expect 2 'RENDEZVOUS_SERVICE_URL="ftp://x" is not valid' "${W[@]}" --rendezvous-url ftp://x greet
expect 2 'RENDEZVOUS_SERVICE_URL="ftp://x" is not valid' "${W[@]}" --room help \
  --rendezvous-url ftp://x
expect 2 'unexpected argument "extra"' "${W[@]}" greet extra --rendezvous-url http://127.0.0.1:9

expect 2 'TRUST_PROXY="maybe" is not valid' env -i TRUST_PROXY=maybe "$B/holepunch-rendezvous"

# Issue 6 item 6: CA_FILE naming a missing file is a configuration error.
expect 2 'CA_FILE="/nonexistent/ca.pem" cannot be read: No such file' "${W[@]}" \
  --rendezvous-url https://127.0.0.1:9 --ca-file /nonexistent/ca.pem
expect 2 'HEALTH_BIND="somewhere" is not valid' "${W[@]}" --rendezvous-url http://127.0.0.1:9 \
  --health-bind somewhere
expect 2 'ALLOW_LOOPBACK_CANDIDATES="maybe" is not valid' env -i ALLOW_LOOPBACK_CANDIDATES=maybe \
  RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch"
# "http:/host": the scheme is there, the two slashes are not.
expect 2 'RENDEZVOUS_SERVICE_URL="http:/127.0.0.1:9" is not valid: the URL.s scheme must be followed by "://"' \
  "${W[@]}" --rendezvous-url http:/127.0.0.1:9
# STUN_SERVERS: host:port entries (an IP, [v6] or a DNS name); a bad one is
# named with what is allowed, for the worker and for diagnose. Nothing is
# resolved: the start stops at the check.
expect 2 'STUN_SERVERS entry "stun_1.example:3478" is not host:port: expected ip:port, \[v6\]:port or name:port' \
  env -i STUN_SERVERS="stun.example.net:3478, stun_1.example:3478" RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch"
expect 2 'STUN_SERVERS entry "stun.example.net:0" is not host:port' \
  "${W[@]}" --rendezvous-url http://127.0.0.1:9 --stun-servers stun.example.net:0
expect 2 'STUN_SERVERS entry "stun.example.net." is not host:port' \
  "${W[@]}" --rendezvous-url http://127.0.0.1:9 --stun-servers stun.example.net.
expect 2 'STUN_SERVERS lists more than 4 servers' \
  "${W[@]}" --rendezvous-url http://127.0.0.1:9 --stun-servers a.example:1,b.example:1,c.example:1,d.example:1,e.example:1
expect 2 'STUN_SERVERS entry "1.2.3:3478" is not host:port' \
  env -i STUN_SERVERS=1.2.3:3478 RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 "$B/holepunch" diagnose

# Start-up errors in JSON log mode are JSON lines naming the setting.
out=$(env -i LOG_FORMAT=json INTERNAL_TCP_PORT=70000 RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 \
  "$B/holepunch" 2>&1 </dev/null || true)
if /usr/bin/python3 -c 'import json, sys
e = json.loads(sys.argv[1].splitlines()[0])
assert e["severity"] == "ERROR" and "INTERNAL_TCP_PORT" in e["message"], e' "$out" 2>/dev/null; then
  ok
else
  bad "the start-up error in JSON mode is not one JSON line: $out"
fi
out=$(env -i LOG_FORMAT=json CA_FILE=/nonexistent RENDEZVOUS_SERVICE_URL=https://127.0.0.1:9 \
  "$B/holepunch" 2>&1 </dev/null || true)
if /usr/bin/python3 -c 'import json, sys
e = json.loads(sys.argv[1].splitlines()[-1])
assert e["severity"] == "ERROR" and e["setting"] == "CA_FILE" and e["exit_code"] == 2, e' "$out" 2>/dev/null; then
  ok
else
  bad "the CA_FILE error in JSON mode is not a JSON line with setting CA_FILE: $out"
fi

# Nothing listens on the port: exit 3, and the log says what failed.
dead=$(lo_free_port)
expect 3 'cannot learn our public mapping' "${W[@]}" --rendezvous-url "http://127.0.0.1:$dead" \
  --port 0 --internal-tcp-port "$(lo_free_port)" --ws-open-timeout 3

# A server that accepts but never answers: the timeout names WS_OPEN_TIMEOUT.
hole_port=$(lo_free_port)
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(8)' "$hole_port" &
hole=$!
sleep 0.3
expect 3 'no answer within 1\.0 s \(WS_OPEN_TIMEOUT\)' "${W[@]}" --rendezvous-url "http://127.0.0.1:$hole_port" \
  --port 0 --internal-tcp-port "$(lo_free_port)" --ws-open-timeout 1
kill "$hole" 2>/dev/null || true

# A rendezvous but no peer within WS_RECV_TIMEOUT: exit 4.
if ! lo_start_rendezvous "$tmp/rdv.log"; then
  bad "$LO_ERR: $(cat "$tmp/rdv.log")"
else
  rport=$LO_RDV_PORT
  expect 4 '.' "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port 0 \
    --internal-tcp-port "$(lo_free_port)" --room "cli-$$" --ws-recv-timeout 1
  # A duplicate id (in the same room: ids are unique per room) is refused
  # by the service: exit 3 with its error code.
  "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port 0 --internal-tcp-port "$(lo_free_port)" \
    --room "cli2-$$" --worker-id twin --ws-recv-timeout 10 >/dev/null 2>&1 &
  twin=$!
  for _ in $(seq 100); do
    grep -q '"waiting":1' <(curl -fsS -m 1 "http://127.0.0.1:$rport/healthz" 2>/dev/null) && break
    sleep 0.05
  done
  expect 3 'duplicate_id' "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port 0 \
    --internal-tcp-port "$(lo_free_port)" --room "cli2-$$" --worker-id twin --ws-recv-timeout 5
  kill "$twin" 2>/dev/null || true
  # A URL ending in /ws: the 404 of /ws/whoami comes with the hint.
  expect 3 'answered HTTP 404 \(want 200\); give the rendezvous. base URL' "${W[@]}" \
    --rendezvous-url "http://127.0.0.1:$rport/ws" --port 0 --internal-tcp-port "$(lo_free_port)"
  # https:// to the plain-HTTP service: "does not speak TLS", not OpenSSL's words.
  expect 3 'the server does not speak TLS; use http://' "${W[@]}" \
    --rendezvous-url "https://127.0.0.1:$rport" --port 0 --internal-tcp-port "$(lo_free_port)"

  # Waiting for a peer: progress lines at debug level when stderr is no
  # terminal, at info on a terminal (script(1) gives it one).
  expect 4 'still waiting for a peer in room prog-'"$$"': [0-9]+ s of 3' "${W[@]}" --log-level debug \
    --rendezvous-url "http://127.0.0.1:$rport" --port 0 --internal-tcp-port "$(lo_free_port)" \
    --room "prog-$$" --ws-recv-timeout 3
  out=$(timeout 20 "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port 0 \
    --internal-tcp-port "$(lo_free_port)" --room "prog2-$$" --ws-recv-timeout 3 2>&1 </dev/null || true)
  if grep -q 'still waiting' <<<"$out"; then bad "progress line at info level without a terminal"; else ok; fi
  out=$(timeout 20 script -qec "env -i PATH=$PATH $B/holepunch --rendezvous-url http://127.0.0.1:$rport \
    --port 0 --internal-tcp-port $(lo_free_port) --room prog3-$$ --ws-recv-timeout 3" /dev/null </dev/null || true)
  if grep -Eq 'INFO .*still waiting for a peer in room prog3-'"$$"': [0-9]+ s of 3' <<<"$out"; then
    ok
  else
    bad "no progress line at info level on a terminal: ${out:0:600}"
  fi

  # The health server: 127.0.0.1 by default, every address in service mode.
  hp=$(lo_free_port)
  "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port "$hp" --internal-tcp-port "$(lo_free_port)" \
    --room "hb-$$" --ws-recv-timeout 4 >/dev/null 2>"$tmp/hb.err" &
  hbp=$!
  for _ in $(seq 60); do [[ -n "$(ss -Hltn "sport = :$hp")" ]] && break; sleep 0.05; done
  l=$(ss -Hltn "sport = :$hp" | awk '{print $4}')
  if [[ $l == "127.0.0.1:$hp" ]]; then ok; else bad "health server listens on '$l', expected 127.0.0.1:$hp"; fi
  wait "$hbp" || true
  hp=$(lo_free_port)
  "${W[@]}" --rendezvous-url "http://127.0.0.1:$rport" --port "$hp" --internal-tcp-port "$(lo_free_port)" \
    --room "hb2-$$" --ws-recv-timeout 2 --service-mode >/dev/null 2>"$tmp/hb2.err" &
  hbp=$!
  for _ in $(seq 60); do [[ -n "$(ss -Hltn "sport = :$hp")" ]] && break; sleep 0.05; done
  l=$(ss -Hltn "sport = :$hp" | awk '{print $4}')
  if [[ $l == "0.0.0.0:$hp" || $l == "*:$hp" ]]; then
    ok
  else
    bad "service mode: health server on '$l', expected all addresses"
  fi
  kill -TERM "$hbp" 2>/dev/null || true
  wait "$hbp" || true
fi

echo "worker/rendezvous CLI: $passed passed, $failed failed"
((failed == 0))
