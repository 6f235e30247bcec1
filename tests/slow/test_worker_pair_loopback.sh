#!/usr/bin/env bash
# Two `holepunch` workers meet through `holepunch-rendezvous` on 127.0.0.1,
# punch, authenticate and exchange their greetings. Loopback only, bounded.
# Asserts: both exit 0, each prints exactly the other's greeting, each logs
# "direct connection established" with a numeric elapsed_ms, the rendezvous
# got two result{direct} messages, and the health server answered meanwhile.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
# shellcheck source=../lib/loopback.sh
. "$(dirname "$0")/../lib/loopback.sh"
tmp=$(mktemp -d "/tmp/hp-pair-$$-XXXX")
cleanup() {
  lo_stop "$LO_RDV_PID"
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }

lo_start_rendezvous "$tmp/rdv.log" || fail "$LO_ERR"
rport=$LO_RDV_PORT

# Both workers on one host: their candidates are 127.0.0.1, which a worker
# dials only when allowed (a hostile peer could point it at local services).
export RENDEZVOUS_SERVICE_URL=http://127.0.0.1:$rport ROOM=pair$$ LOG_FORMAT=json ALLOW_LOOPBACK_CANDIDATES=1
pa=$(lo_free_port); pb=$(lo_free_port); ha=$(lo_free_port)
timeout 60 "$B/holepunch" --internal-tcp-port "$pa" --port "$ha" --worker-id alice \
  >"$tmp/a.out" 2>"$tmp/a.log" &
a=$!
# alice waits for a peer: her health server must say so.
health=""
for _ in $(seq 100); do
  health=$(curl -s "http://127.0.0.1:$ha/healthz" || true)
  [[ "$health" == *'"state":"waiting_peer"'* ]] && break
  sleep 0.05
done
[[ "$health" == *'"status":"ok"'* && "$health" == *'"id":"alice"'* ]] || fail "health: $health"
timeout 60 "$B/holepunch" --internal-tcp-port "$pb" --port 0 --worker-id bob \
  >"$tmp/b.out" 2>"$tmp/b.log" &
b=$!
ra=0; rb=0
wait "$a" || ra=$?
wait "$b" || rb=$?
[[ $ra -eq 0 && $rb -eq 0 ]] || fail "exit codes alice=$ra bob=$rb"
[[ "$(cat "$tmp/a.out")" == "peer bob says: hello from bob in room pair$$" ]] || fail "alice printed: $(cat "$tmp/a.out")"
[[ "$(cat "$tmp/b.out")" == "peer alice says: hello from alice in room pair$$" ]] || fail "bob printed: $(cat "$tmp/b.out")"
for w in a b; do
  line=$(grep '"message":"direct connection established"' "$tmp/$w.log") || fail "$w: no success log"
  ms=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["elapsed_ms"])' "$line")
  echo "worker $w: elapsed_ms=$ms"
done
n=$(grep -c '"status":"direct"' "$tmp/rdv.log" || true)
[[ $n -eq 2 ]] || fail "rendezvous saw $n direct results, want 2"
echo "PASS"
