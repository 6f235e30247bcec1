#!/usr/bin/env bash
# lint.test_lint: every C file of the project is clang-format clean (the
# .clang-format at the top) and cppcheck finds nothing; every shell script
# is shellcheck clean. Prints each offender and fails if there is one.
set -uo pipefail
top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
fail=0

for tool in clang-format cppcheck shellcheck git; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/deps.sh installs it)"; exit 1; }
done

mapfile -t cfiles < <(git ls-files '*.c' '*.h')
((${#cfiles[@]} > 20)) || { echo "FAIL: found only ${#cfiles[@]} C files: wrong directory?"; exit 1; }
for f in "${cfiles[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "FAIL: $f is not clang-format clean (run: clang-format -i $f)"
    fail=1
  fi
done

mapfile -t srcs < <(git ls-files 'src/*.c' 'examples/*.c' 'bench/*.c')
if ! cppcheck --enable=warning,style,performance,portability --inline-suppr -q \
  --error-exitcode=1 -I include -I src/core -I src/lib "${srcs[@]}"; then
  echo "FAIL: cppcheck found the problems above"
  fail=1
fi

mapfile -t sh < <(git ls-files '*.sh' .ci/run)
if ! shellcheck -x -P SCRIPTDIR "${sh[@]}"; then
  echo "FAIL: shellcheck found the problems above"
  fail=1
fi

if ((fail)); then
  echo "lint: FAILED"
  exit 1
fi
echo "lint: ${#cfiles[@]} C files formatted, ${#srcs[@]} sources cppcheck-clean, ${#sh[@]} shell scripts shellcheck-clean"
