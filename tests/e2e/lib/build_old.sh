#!/usr/bin/env bash
# build_old.sh REV DIR: the worker (holepunch) of git revision REV of this
# repository, for interoperability checks (tests/e2e/scenario_interop_old.sh):
# sources exported to DIR/src with git archive, built in DIR/build. Needs the
# revision in this clone's history and the build dependencies
# (scripts/deps.sh).
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 REV DIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../../.." && pwd)
rev=$1 dir=$2
git -C "$top" cat-file -e "$rev^{commit}" 2>/dev/null ||
  { echo "build_old: revision $rev is not in this clone's history" >&2; exit 1; }
mkdir -p "$dir/src"
git -C "$top" archive "$rev" | tar -x -C "$dir/src"
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir/cmake.log" 2>&1 ||
  { tail -20 "$dir/cmake.log" >&2; exit 1; }
nice cmake --build "$dir/build" --target holepunch-worker -j"$(nproc)" >"$dir/build.log" 2>&1 ||
  { tail -20 "$dir/build.log" >&2; exit 1; }
echo "build_old: $dir/build/holepunch ($rev)" >&2
