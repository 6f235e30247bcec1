# shellcheck shell=bash
# shellcheck disable=SC2034 # globals are read by the scenarios that source this
# proxy.sh - the Cloud Run situation in the NAT lab: nginx as a reverse proxy
# on the rendezvous host, in front of holepunch-rendezvous bound to loopback.
# Sourced after lib/lab.sh by tests/e2e/scenario_behind_proxy*.sh.
#
#   workers --> nginx 198.51.100.100:8080 --> rendezvous 127.0.0.1:18080
#               (appends X-Forwarded-For)     (--trust-proxy 1)
#
# nginx terminates the workers' TCP connections, as Cloud Run's front end
# does: the rendezvous sees 127.0.0.1:<nginx's port>, never the worker's NAT
# mapping, and takes the client IP from the right-most X-Forwarded-For entry.
# nginx's access log (stdout, $LAB_DIR/nginx.out) records the client's real
# address and port, which is what the rendezvous would have seen directly.

LAB_PROXY_PORT=$LAB_RDV_PORT  # nginx takes the public address and port
LAB_PROXY_BACKEND_PORT=18080  # the rendezvous, on 127.0.0.1 only
LAB_PROXY_UA="hp-lab-check"   # User-Agent of the scenario's own curl checks
LAB_PROXY_UPGRADE=${LAB_PROXY_UPGRADE:-1} # 0: a proxy that does not pass the WebSocket upgrade
# TLS on nginx's port (https://, wss://): set all three (lab_proxy_make_ca
# does) before lab_start_rendezvous_behind_proxy; empty: plain HTTP.
LAB_PROXY_TLS_CERT=${LAB_PROXY_TLS_CERT:-}
LAB_PROXY_TLS_KEY=${LAB_PROXY_TLS_KEY:-}
LAB_PROXY_TLS_CA=${LAB_PROXY_TLS_CA:-}
LAB_WORKER_UA_PREFIX="holepunch/" # User-Agent of the worker's GET /whoami (src/lib/whoami.c)
# The worker's warning when /whoami has no port (src/lib/holepunch.c).
LAB_MSG_NO_PORT='^the rendezvous cannot see our port \(proxy in front of it\); assuming a port-preserving NAT'

# _lab_proxy_conf FILE: nginx's configuration, everything under $LAB_DIR.
_lab_proxy_conf() {
  local d="$LAB_DIR/nginx" upgrade="" ssl="" sslconf=""
  # Without these two lines nginx forwards GET /ws as a plain request
  # (HTTP/1.1, Connection: close, no Upgrade): a proxy without WebSocket
  # support, as users sometimes put in front of the service.
  if [[ $LAB_PROXY_UPGRADE == 1 ]]; then
    # shellcheck disable=SC2016 # nginx variables, for nginx to expand
    upgrade='proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;'
  fi
  if [[ -n $LAB_PROXY_TLS_CERT ]]; then
    ssl=" ssl"
    sslconf="ssl_certificate $LAB_PROXY_TLS_CERT;
    ssl_certificate_key $LAB_PROXY_TLS_KEY;"
  fi
  mkdir -p "$d/tmp" || lab_fail "cannot create $d"
  cat >"$1" <<EOF
# Written by tests/e2e/lib/proxy.sh for lab $LAB_ID.
daemon off;
master_process on;
worker_processes 1;
user root;
pid $d/nginx.pid;
error_log stderr info;
events { worker_connections 256; }
http {
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  # One line per request: the client's TCP address and port as nginx saw
  # them, and the X-Forwarded-For it sent upstream.
  log_format hp '\$remote_addr \$remote_port "\$request" \$status ua="\$http_user_agent" '
                'xff="\$proxy_add_x_forwarded_for" upstream=\$upstream_addr';
  access_log /dev/stdout hp;
  map \$http_upgrade \$connection_upgrade {
    default upgrade;
    ''      close;
  }
  server {
    listen $LAB_RDV_IP:$LAB_PROXY_PORT$ssl;
    $sslconf
    location / {
      proxy_pass http://127.0.0.1:$LAB_PROXY_BACKEND_PORT;
      proxy_http_version 1.1;
      $upgrade
      proxy_set_header Host \$host;
      # Appends the address nginx saw, as Cloud Run's front end does.
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 120s;
      proxy_send_timeout 120s;
    }
  }
}
EOF
}

# lab_start_rendezvous_behind_proxy: nginx on $LAB_RDV_URL (the lab's public
# rendezvous address, so lab_run_worker's default URL points at nginx) and
# the rendezvous on 127.0.0.1:$LAB_PROXY_BACKEND_PORT with --trust-proxy 1.
# Process names "nginx" and "rendezvous" (lab_pass checks the latter).
# Returns once /healthz answers 200 through nginx (bounded).
lab_start_rendezvous_behind_proxy() {
  local conf="$LAB_DIR/nginx.conf" out
  command -v nginx >/dev/null 2>&1 ||
    lab_fail "nginx is not installed (run scripts/deps.sh: it installs nginx-light)"
  _lab_proxy_conf "$conf"
  out=$(lab_exec rdv nginx -t -q -e stderr -p "$LAB_DIR/nginx/" -c "$conf" 2>&1) ||
    lab_fail "nginx refuses its configuration $conf: $out"

  lab_run rendezvous rdv env LOG_FORMAT=json LOG_LEVEL=debug "$HP_BUILD_DIR/holepunch-rendezvous" \
    --bind 127.0.0.1 --port "$LAB_PROXY_BACKEND_PORT" --trust-proxy 1
  lab_wait_listen rdv "$LAB_PROXY_BACKEND_PORT" 10 rendezvous ||
    lab_fail "the rendezvous did not listen on 127.0.0.1:$LAB_PROXY_BACKEND_PORT within 10 s"
  lab_run nginx rdv nginx -e stderr -p "$LAB_DIR/nginx/" -c "$conf"
  lab_wait_listen rdv "$LAB_PROXY_PORT" 10 nginx ||
    lab_fail "nginx did not listen on $LAB_RDV_IP:$LAB_PROXY_PORT within 10 s"
  if [[ -n $LAB_PROXY_TLS_CERT ]]; then
    local n=100
    until lab_exec rdv curl -fsS -m 1 --cacert "$LAB_PROXY_TLS_CA" -o /dev/null "$LAB_RDV_URL/healthz" 2>/dev/null; do
      ((--n > 0)) || lab_fail "GET $LAB_RDV_URL/healthz through nginx (TLS, test CA) did not answer 200 within 10 s"
      sleep 0.1
    done
  else
    lab_wait_http rdv "$LAB_RDV_URL/healthz" 10 rendezvous ||
      lab_fail "GET $LAB_RDV_URL/healthz through nginx did not answer 200 within 10 s"
  fi
  LAB_DESC+=("reverse proxy    nginx $LAB_RDV_IP:$LAB_PROXY_PORT${ssl:+ (TLS)} -> rendezvous 127.0.0.1:$LAB_PROXY_BACKEND_PORT (--trust-proxy 1)")
  lab_log "nginx on $LAB_RDV_URL in front of the rendezvous on 127.0.0.1:$LAB_PROXY_BACKEND_PORT"
}

# lab_proxy_make_ca: a test CA and a certificate for $LAB_RDV_IP (IP SAN)
# signed by it, under $LAB_DIR/tls (openssl, P-256, valid one day); sets
# LAB_PROXY_TLS_CERT, _KEY, _CA. Also an unrelated CA, $LAB_DIR/tls/other-ca.pem,
# for the wrong-CA checks.
lab_proxy_make_ca() {
  local t="$LAB_DIR/tls" out
  mkdir -p "$t" || lab_fail "cannot create $t"
  out=$({
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -subj "/CN=holepunch lab CA $LAB_ID" -keyout "$t/ca.key" -out "$t/ca.pem" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj "/CN=holepunch other CA $LAB_ID" -keyout "$t/other-ca.key" -out "$t/other-ca.pem" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=$LAB_RDV_IP" -keyout "$t/server.key" -out "$t/server.csr" &&
      printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        "$LAB_RDV_IP" >"$t/server.ext" &&
      openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -days 1 -extfile "$t/server.ext" -out "$t/server.pem"
  } 2>&1) || lab_fail "openssl could not make the test CA: $out"
  LAB_PROXY_TLS_CERT=$t/server.pem
  LAB_PROXY_TLS_KEY=$t/server.key
  LAB_PROXY_TLS_CA=$t/ca.pem
}

# lab_expect_proxy_only HOST: from HOST, the rendezvous is reachable only
# through nginx: its backend port on the public address refuses.
lab_expect_proxy_only() {
  local rc=0
  lab_exec "$1" curl -sS -m 3 -o /dev/null "http://$LAB_RDV_IP:$LAB_PROXY_BACKEND_PORT/healthz" 2>/dev/null || rc=$?
  # curl: 7 = connection refused (the rendezvous is bound to 127.0.0.1).
  ((rc == 7)) || lab_fail "$1: http://$LAB_RDV_IP:$LAB_PROXY_BACKEND_PORT/healthz gave curl exit $rc, expected 7 (refused): the rendezvous is reachable around the proxy"
  lab_log "ok: from $1 the rendezvous is reachable only through nginx"
}

# lab_expect_whoami_via_proxy HOST: GET /whoami from HOST through nginx,
# with a forged X-Forwarded-For entry of the client's own, answers
# {"ip": <HOST's public address>, "port": null}: the service took the
# right-most entry (the one nginx appended), not the TCP peer 127.0.0.1,
# not the forged one, and it cannot see the port.
lab_expect_whoami_via_proxy() {
  local host=$1 nat=${LAB_HOST_NAT[$1]} want body out
  want=${LAB_IP[${nat:-$1}]}
  body=$(lab_exec "$host" curl -fsS -m 5 -A "$LAB_PROXY_UA" -H "X-Forwarded-For: 203.0.113.77" \
    "$LAB_RDV_URL/whoami") || lab_fail "$host: GET $LAB_RDV_URL/whoami through nginx failed"
  out=$("$LAB_PY" - "$body" "$want" 2>&1 <<'EOF'
import json, sys
body, want = sys.argv[1:3]
try:
    j = json.loads(body)
except ValueError as e:
    sys.exit(f"not JSON ({e}): {body!r}")
if not isinstance(j, dict) or "port" not in j:
    sys.exit(f"no \"port\" key: {body}")
if j.get("ip") != want:
    sys.exit(f"ip is {j.get('ip')!r}, expected {want} (X-Forwarded-For's right-most entry)")
if j["port"] is not None:
    sys.exit(f"port is {j['port']!r}, expected null (not observable behind the proxy)")
print(body)
EOF
  ) || lab_fail "$host: /whoami through nginx: $out"
  lab_log "ok: $host's /whoami through nginx (with a forged X-Forwarded-For entry): $out"
}

# lab_proxy_seen HOST_IP: "ip:port" of the first GET /whoami of the worker
# (User-Agent holepunch/...) from HOST_IP in nginx's access log: the real
# mapping of the worker's punch port, which the rendezvous cannot see.
lab_proxy_seen() {
  awk -v ip="$1" -v ua="ua=\"$LAB_WORKER_UA_PREFIX" \
    '$1 == ip && $3 == "\"GET" && $4 == "/whoami" && index($0, ua) { print $1 ":" $2; exit }' \
    "$LAB_DIR/nginx.out"
}

# lab_expect_rdv_forwarded NAT...: the rendezvous's "paired" log line names
# the NATs' public addresses (from X-Forwarded-For, without a port), not
# 127.0.0.1 (nginx).
lab_expect_rdv_forwarded() {
  local got
  got="$(lab_json_field rendezvous '^paired ' addr) $(lab_json_field rendezvous '^paired ' addr_b)"
  local nat
  for nat in "$@"; do
    [[ " $got " == *" ${LAB_IP[$nat]} "* ]] ||
      lab_fail "the rendezvous paired '$got', expected ${LAB_IP[$nat]} (from X-Forwarded-For) among them"
  done
  [[ $got != *127.0.0.1* ]] || lab_fail "the rendezvous saw nginx (127.0.0.1), not the workers: '$got'"
  lab_log "ok: the rendezvous knew the workers by their forwarded addresses: $got"
}
