#!/bin/sh
# The runtime stage of the container images, in one script so that the
# Dockerfiles (deploy/*.Dockerfile) and tests/slow/test_runtime_chroot.sh run
# exactly the same steps. Runs as root in a fresh Debian bookworm
# (debian:bookworm-slim, or a debootstrap minbase root in the test).
# Usage: runtime-setup.sh rendezvous|worker
#   Installs that image's runtime packages (deploy/runtime-packages.txt), the
#   HEALTHCHECK script as /usr/local/bin/hp-healthcheck, and the unprivileged
#   user "holepunch" (uid/gid 10001) the binaries run as.
set -eu

here=$(dirname "$0")
image=${1:-}
pkgs=$(sh "$here/runtime-packages.sh" "$image" "$here/runtime-packages.txt")

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# One package per word, so $pkgs is split on purpose.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $pkgs
apt-get clean
rm -rf /var/lib/apt/lists/*

install -m 0755 "$here/healthcheck.sh" /usr/local/bin/hp-healthcheck
# A fixed numeric id, so that Kubernetes' runAsNonRoot and the test's
# chroot --userspec can name it without a passwd lookup.
groupadd --gid 10001 holepunch
useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin holepunch
