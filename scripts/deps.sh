#!/usr/bin/env bash
# Install the Debian packages that build, test and run holepunch.
# Idempotent: does nothing when everything is already installed.
# Usage: scripts/deps.sh [--build-only]
#   --build-only: only what scripts/build.sh needs with -DHP_BUILD_TESTS=OFF
#   (the build stage of the container images, deploy/*.Dockerfile).
set -euo pipefail

build_only=0
case "${1:-}" in
  "") ;;
  --build-only) build_only=1 ;;
  *)
    echo "usage: $0 [--build-only]" >&2
    exit 2
    ;;
esac

pkgs=(
  build-essential cmake pkg-config
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev libssl-dev
  libcurl4-openssl-dev ca-certificates libwslay-dev libhttp-parser-dev libhiredis-dev
  libminiupnpc-dev libnatpmp-dev zlib1g-dev libsodium-dev
)
((build_only)) || pkgs+=(
  libcmocka-dev
  nftables iproute2 procps psmisc curl python3 python3-websockets python3-prometheus-client
  nginx-light redis-server
  coturn miniupnpd-nftables
  debootstrap
  shellcheck clang-format cppcheck strace
  python3-yaml
)
if [[ "${HP_DEPS_EXTRA:-}" != "" ]]; then
  # shellcheck disable=SC2206
  pkgs+=(${HP_DEPS_EXTRA})
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing packages: ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests run nginx, coturn (turnserver) and miniupnpd themselves, inside
# lab namespaces; installing the packages must not start a system nginx on
# port 80, a system STUN/TURN server on 3478 or a UPnP daemon. policy-rc.d exit 101
# tells Debian's maintainer scripts not to start services, for this install
# only (an existing policy file is left as it is).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# Others may run apt on this machine at the same time: wait for their lock
# (bounded) instead of failing at once.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
