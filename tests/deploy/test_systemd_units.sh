#!/usr/bin/env bash
# deploy.test_systemd_units: the systemd units in deploy/ (issue 6 item 6).
#   - both pass `systemd-analyze verify` (ExecStart pointed at the build);
#   - both restart on failure but never on exit 2 (bad configuration:
#     RestartPreventExitStatus=2), so a typo does not become a restart loop;
#   - the worker unit's settings are accepted by the worker: with them (and a
#     URL nobody answers) it starts in service mode with its health server on
#     127.0.0.1 and keeps running, instead of exiting 2.
# Local files and loopback only.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
S=${HP_SOURCE_DIR:?HP_SOURCE_DIR not set}
tmp=$(mktemp -d "/tmp/hp-units-$$-XXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is not installed"

for u in holepunch-rendezvous holepunch-worker; do
  f="$S/deploy/$u.service"
  [[ -f $f ]] || fail "$f is missing"
  grep -qx 'Restart=on-failure' "$f" || fail "$u: no Restart=on-failure"
  grep -qx 'RestartPreventExitStatus=2' "$f" || fail "$u: exit 2 (bad configuration) is restarted"
  sed -e "s|/usr/local/bin/holepunch-rendezvous|$B/holepunch-rendezvous|" \
    -e "s|/usr/local/bin/holepunch\$|$B/holepunch|" "$f" >"$tmp/$u.service"
  out=$(systemd-analyze verify "$tmp/$u.service" 2>&1) || fail "$u: systemd-analyze verify: $out"
  [[ -z $out ]] || fail "$u: systemd-analyze verify warns: $out"
  echo "ok   $u.service verifies; RestartPreventExitStatus=2"
done

# The worker unit's Environment= lines, as systemd would pass them.
mapfile -t envs < <(sed -n 's/^Environment=//p' "$S/deploy/holepunch-worker.service")
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rc=0
env -i PATH="$PATH" "${envs[@]}" PORT=0 INTERNAL_TCP_PORT="$port" \
  RENDEZVOUS_SERVICE_URL=http://127.0.0.1:9 timeout 3 "$B/holepunch" 2>"$tmp/w.err" || rc=$?
((rc == 124)) || fail "the worker with the unit's settings exited $rc (expected to keep running): $(head -n 3 "$tmp/w.err")"
/usr/bin/python3 - "$tmp/w.err" <<'PY' || fail "the worker's start line does not show service mode on 127.0.0.1"
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["message"].endswith(" starting") and e.get("component") == "worker":
        assert e["service_mode"] is True and e["health_bind"] == "127.0.0.1", e
        sys.exit(0)
sys.exit(1)
PY
echo "ok   the worker runs with the unit's settings (service mode, health on 127.0.0.1)"
echo PASS
