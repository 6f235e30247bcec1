#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the Debian packages,
# builds with -Werror, runs every test (unit, NAT lab end-to-end, deployment,
# slow checks), then builds again with AddressSanitizer + UBSan and runs the
# unit and end-to-end tests on those binaries.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: NOT ROOT: the NAT lab needs root (network namespaces, nftables)." >&2
  echo "test.sh: refusing to run a partial suite; run as root." >&2
  exit 1
fi

scripts/deps.sh

echo "== build (-Werror)"
scripts/build.sh "$top/build" -DHP_WERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure --timeout 900 -j1)

echo "== build (ASan + UBSan)"
scripts/build.sh "$top/build-asan" -DHP_WERROR=ON -DHP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
# Everything but lint and the deploy script's test (no binaries of ours: a
# second run under sanitizers checks nothing new) and the chroot runtime
# test (it installs the release build into a Debian chroot; a sanitizer
# build needs the sanitizer runtimes the chroot does not have), and the
# interop check with an earlier release (it builds that release: 20 s for
# code paths the other scenarios run under the sanitizers too).
echo "== tests under ASan + UBSan (unit, e2e, deploy, loopback, slow but the chroot)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure --timeout 900 -j1 -L 'unit|e2e|deploy|loopback|slow' -E 'runtime_chroot|test_redeploy|interop_old')
