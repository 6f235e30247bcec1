#!/usr/bin/env bash
# bench/chan.sh: throughput of the secure channel (handshake + secretstream
# records) against the plain TCP carrier on loopback, in one run, as a
# ratio, and the CPU cost per GiB on each side (sender, receiver: two
# processes). Figures only, no assertions.
# Usage: bench/chan.sh [MIB] [ROUNDS]   (default 1024 MiB, 3 rounds; the best round counts)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${HP_BENCH_BUILD_DIR:-$top/build}
mib=${1:-1024}
rounds=${2:-3}
bin=$dir/bench/bench_chan
[[ -x $bin ]] || { echo "chan.sh: $bin missing: scripts/build.sh $dir" >&2; exit 1; }

best() { # MODE -> the line of the fastest round
  local mode=$1 line best_line="" best_rate=0 rate i
  for ((i = 0; i < rounds; i++)); do
    line=$("$bin" "$mode" "$mib")
    rate=${line#*MiB_per_s=}
    rate=${rate%% *}
    if awk -v a="$rate" -v b="$best_rate" 'BEGIN { exit !(a > b) }'; then
      best_rate=$rate
      best_line=$line
    fi
  done
  echo "$best_line"
}

plain=$(best plain)
secure=$(best secure)
echo "$plain"
echo "$secure"
field() { local v=${1#*"$2"=}; echo "${v%% *}"; }
awk -v p="$(field "$plain" MiB_per_s)" -v s="$(field "$secure" MiB_per_s)" \
  -v ps="$(field "$plain" cpu_s_per_GiB_sender)" -v ss="$(field "$secure" cpu_s_per_GiB_sender)" \
  -v pr="$(field "$plain" cpu_s_per_GiB_receiver)" -v sr="$(field "$secure" cpu_s_per_GiB_receiver)" \
  'BEGIN { printf "ratio secure/plain throughput: %.2f; CPU s/GiB sender %.2f -> %.2f, receiver %.2f -> %.2f\n", s / p, ps, ss, pr, sr }'
