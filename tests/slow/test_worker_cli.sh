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

# expect RC REGEX CMD...: CMD exits with RC and its stderr+stdout match REGEX.
expect() {
  local want=$1 re=$2 rc=0 out
  shift 2
  out=$(timeout 20 "$@" 2>&1 </dev/null) || rc=$?
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
expect 2 'TRUST_PROXY="maybe" is not valid' env -i TRUST_PROXY=maybe "$B/holepunch-rendezvous"

# Nothing listens on the port: exit 3, and the log says what failed.
dead=$(lo_free_port)
expect 3 'cannot learn our public mapping' "${W[@]}" --rendezvous-url "http://127.0.0.1:$dead" \
  --port 0 --internal-tcp-port "$(lo_free_port)" --ws-open-timeout 3

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
fi

echo "worker/rendezvous CLI: $passed passed, $failed failed"
((failed == 0))
