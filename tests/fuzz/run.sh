#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, -DHP_FUZZ=ON) in build-fuzz/ and run
# each one for a while, then print a summary. Not part of CI (CI time); the
# ctest entries fuzz.<name> run the same harnesses over their seeds instead.
#
# Usage: tests/fuzz/run.sh [SECONDS] [NAME...]
#   SECONDS  run time per harness (default 30)
#   NAME     harnesses to run (default: all of HP_FUZZ_NAMES in tests/fuzz/CMakeLists.txt)
# Environment: HP_FUZZ_BUILD_DIR (default <top>/build-fuzz).
#
# Each harness keeps its growing corpus in build-fuzz/fuzz-out/<name>/corpus
# (the seeds in tests/fuzz/corpus/<name>/ are only read) and the inputs that
# failed in build-fuzz/fuzz-out/<name>/crash-* (until the next run of that
# harness); replay one with
#   build-fuzz/tests/fuzz/fuzz_<name> <crash file>
# Exit status: 0 when no harness found anything, 1 otherwise.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-30}
shift || true
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1)); then
  echo "usage: $0 [SECONDS] [NAME...]" >&2
  exit 2
fi
names=("$@")
if ((${#names[@]} == 0)); then
  # The one list of harnesses is CMake's.
  read -r -a names < <(sed -n 's/^set(HP_FUZZ_NAMES \(.*\))$/\1/p' "$top/tests/fuzz/CMakeLists.txt")
fi
build=${HP_FUZZ_BUILD_DIR:-$top/build-fuzz}

# libFuzzer needs clang and its runtime; CI does not run this script, so
# they are not in scripts/deps.sh's default list.
HP_DEPS_EXTRA="clang libclang-rt-14-dev" "$top/scripts/deps.sh"
echo "== build (clang, libFuzzer + ASan + UBSan) in $build"
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHP_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzzers -j2 >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
summary=()
for name in "${names[@]}"; do
  bin=$build/tests/fuzz/fuzz_$name
  seeds=$top/tests/fuzz/corpus/$name
  if [[ ! -x $bin || ! -d $seeds ]]; then
    echo "run.sh: no harness named $name" >&2
    exit 2
  fi
  maxlen=$(cat "$build/tests/fuzz/fuzz_$name.maxlen")
  out=$build/fuzz-out/$name
  mkdir -p "$out/corpus"
  # Inputs saved by an earlier run are that run's findings, not this one's.
  find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) -delete
  echo "== fuzz_$name: ${secs}s, -max_len=$maxlen"
  rc=0
  "$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "$seeds" >"$out/log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$out/log" | tail -n 1 || true)
  crashes=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  verdict=ok
  if ((rc != 0 || crashes > 0)); then
    verdict="FAILED (exit $rc, $crashes saved input(s) in $out, log $out/log)"
    failed=1
    grep -E 'contract violated|ERROR: |runtime error' "$out/log" | head -n 5 >&2 || true
  fi
  summary+=("$(printf '%-10s %10s runs %8s exec/s  %-32s %s' "$name" "${runs:-?}" "${rate:-?}" \
    "${cov:-}" "$verdict")")
done

echo
echo "== summary (${secs}s per harness)"
printf '%s\n' "${summary[@]}"
exit "$failed"
