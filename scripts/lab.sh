#!/usr/bin/env bash
# An interactive NAT lab: the topology of the e2e scenarios (docs/lab.md)
# with the rendezvous running, for trying the worker by hand.
#
#   sudo scripts/lab.sh [NAT_TYPE] [MINUTES]
#     NAT_TYPE: preserving | changing (default) | random
#     MINUTES:  the lab removes itself after this long (default 30), or on
#               Enter / Ctrl-C.
# Binaries come from $HP_BUILD_DIR (default build/).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export HP_BUILD_DIR=${HP_BUILD_DIR:-$top/build}
export HP_SOURCE_DIR=$top
type=${1:-changing}
minutes=${2:-30}
# shellcheck source=tests/e2e/lib/lab.sh
source "$top/tests/e2e/lib/lab.sh"

lab_create
lab_require_binaries
lab_add_nat nata "$type" r1
lab_add_nat natb "$type" r2
lab_add_worker_host a nata
lab_add_worker_host b natb
lab_add_public_host pub
lab_start_rendezvous LOG_FORMAT=text
lab_describe

cat <<EOF

Rendezvous: $LAB_RDV_URL (log: $LAB_DIR/rendezvous.err)
Run a worker in each LAN, e.g. in two terminals:

  ip netns exec $(lab_ns a) env RENDEZVOUS_SERVICE_URL=$LAB_RDV_URL ROOM=try LOG_FORMAT=text $HP_BUILD_DIR/holepunch
  ip netns exec $(lab_ns b) env RENDEZVOUS_SERVICE_URL=$LAB_RDV_URL ROOM=try LOG_FORMAT=text $HP_BUILD_DIR/holepunch

A shell in a node: ip netns exec $(lab_ns a) bash   (nodes: r1 r2 rdv nata natb a b pub)
NAT rules:         ip netns exec $(lab_ns nata) nft list ruleset

The lab is removed on Enter, Ctrl-C, or after $minutes minutes.
EOF
read -r -t $((minutes * 60)) _ || true
