#!/bin/bash
# HEALTHCHECK of both container images (installed as /usr/local/bin/hp-healthcheck):
# GET /healthz on 127.0.0.1:$PORT; healthy when the status is 200.
#
# It uses bash's /dev/tcp so the images need no curl or wget (and their
# dependencies): it writes one fixed request line and reads one status line,
# nothing more, and it is bounded in time (Docker's --timeout bounds it too).
set -euo pipefail

port=${PORT:-8080}
if [[ ! $port =~ ^[0-9]{1,5}$ ]] || ((port < 1 || port > 65535)); then
  echo "hp-healthcheck: PORT='$port' is not a TCP port (1-65535)" >&2
  exit 1
fi
if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
  echo "hp-healthcheck: nothing listens on 127.0.0.1:$port" >&2
  exit 1
fi
# HTTP/1.0: the server closes the connection after its answer.
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3
status_line=
read -r -t 5 status_line <&3 || true
# Drain the (small) answer so the server sees an orderly close; bounded.
for _ in {1..64}; do read -r -t 2 _ <&3 || break; done
exec 3<&-
read -r _ code _ <<<"$status_line"
if [[ $code != 200 ]]; then
  echo "hp-healthcheck: GET /healthz on port $port answered '${status_line%$'\r'}'" >&2
  exit 1
fi
