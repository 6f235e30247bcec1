#!/bin/sh
# Print the runtime Debian packages of one image, one per line, from
# deploy/runtime-packages.txt (the only list of them).
# Usage: runtime-packages.sh rendezvous|worker|all [LIST_FILE]
# POSIX sh on purpose: it runs inside debian:bookworm-slim during the image
# build, and on the host for the chroot test.
set -eu

image=${1:-}
list=${2:-$(dirname "$0")/runtime-packages.txt}
case $image in
  rendezvous | worker | all) ;;
  *)
    echo "usage: $0 rendezvous|worker|all [LIST_FILE]" >&2
    exit 2
    ;;
esac
if [ ! -r "$list" ]; then
  echo "runtime-packages: cannot read $list" >&2
  exit 2
fi

# Strip comments, then keep the lines tagged with the image. A line without a
# tag or with an unknown tag is a mistake in the list: refuse it rather than
# silently building an image without a library.
pkgs=$(sed -e 's/#.*//' "$list" | awk -v img="$image" '
  NF == 0 { next }
  NF == 1 { printf "runtime-packages: line %d: package %s has no image tag\n", NR, $1 > "/dev/stderr"; bad = 1; next }
  {
    for (i = 2; i <= NF; i++) {
      if ($i != "rendezvous" && $i != "worker") {
        printf "runtime-packages: line %d: unknown image tag %s\n", NR, $i > "/dev/stderr"; bad = 1
      }
      if (img == "all" || $i == img) { want[$1] = 1 }
    }
  }
  END {
    if (bad) exit 1
    n = 0
    for (p in want) n++
    if (n == 0) { print "runtime-packages: no package for this image" > "/dev/stderr"; exit 1 }
    for (p in want) print p
  }')
# The status of the assignment is awk's: a broken list stops here (set -e).
printf '%s\n' "$pkgs" | LC_ALL=C sort
