#!/usr/bin/env bash
# deploy.test_install_prefix: `cmake --install` into a temporary prefix gives
# a pkg-config file that points into that prefix (issue 6 item 5: it pointed
# at /usr/local), and examples/hp_pair.c builds through pkg-config alone and
# runs against the installed library. Two prefixes, and the tree moved
# afterwards, to show the .pc is relocatable. Local files only.
set -euo pipefail
B=${HP_BUILD_DIR:?HP_BUILD_DIR not set}
S=${HP_SOURCE_DIR:?HP_SOURCE_DIR not set}
tmp=$(mktemp -d "/tmp/hp-install-$$-XXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v pkg-config >/dev/null || fail "pkg-config is not installed (scripts/deps.sh)"
CC=${CC:-cc}
# A sanitizer build of the library (the suite's ASan pass) needs the
# program linked with the same runtime, first in the library list.
san=()
if grep -q '^HP_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
  san=("-fsanitize=address,undefined")
fi

# check PREFIX: the installed tree at PREFIX builds and runs the example.
check() {
  local p=$1 pcdir flags libdir out rc=0
  pcdir=$(dirname "$(find "$p" -name holepunch.pc -print -quit)")
  [[ -f $pcdir/holepunch.pc ]] || fail "no holepunch.pc under $p"
  ! grep -q '/usr/local' "$pcdir/holepunch.pc" || fail "holepunch.pc names /usr/local: $(cat "$pcdir/holepunch.pc")"
  flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs holepunch) || fail "pkg-config failed for $p"
  [[ $flags == *"-I$p/"* || $flags == *"-I$pcdir/"* ]] || fail "cflags do not point into $p: $flags"
  libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir holepunch)
  [[ -e $libdir/libholepunch.so ]] || fail "libdir $libdir has no libholepunch.so"
  # shellcheck disable=SC2086 # flags are words
  "$CC" "${san[@]}" -o "$tmp/hp_pair" "$S/examples/hp_pair.c" $flags || fail "examples/hp_pair.c does not build with: $flags"
  out=$(LD_LIBRARY_PATH=$libdir "$tmp/hp_pair" 2>&1) || rc=$?
  if ((rc != 2)) || [[ $out != *usage:* ]]; then
    fail "hp_pair against $libdir: exit $rc, $out"
  fi
  # ldd's output in a variable first: `ldd | grep -q` fails under pipefail
  # when grep exits at the first match and ldd gets SIGPIPE.
  deps=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/hp_pair")
  grep -q "$(readlink -f "$libdir")/libholepunch.so\|$libdir/libholepunch.so" <<<"$deps" ||
    fail "hp_pair does not load the installed library: $(grep holepunch <<<"$deps")"
  echo "ok   $p: pkg-config --cflags --libs holepunch = $flags; hp_pair builds and runs"
}

cmake --install "$B" --prefix "$tmp/p1" >/dev/null
check "$tmp/p1"
# The manual page (docs/holepunch.1) is installed and man can format it.
[[ -f $tmp/p1/share/man/man1/holepunch.1 ]] || fail "no share/man/man1/holepunch.1 under $tmp/p1"
if command -v man >/dev/null; then
  man -l "$tmp/p1/share/man/man1/holepunch.1" 2>/dev/null | grep -q 'holepunch pipe --code' ||
    fail "man cannot format the installed holepunch.1"
fi
cmake --install "$B" --prefix "$tmp/p2/deeper" >/dev/null
check "$tmp/p2/deeper"
mv "$tmp/p1" "$tmp/moved"
check "$tmp/moved"
echo PASS
