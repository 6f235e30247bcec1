#!/usr/bin/env bash
# Proves the runtime stage of the container images without a Docker engine:
#
#  1. builds a minimal Debian root (debootstrap --variant=minbase bookworm, from
#     the Debian mirror this machine's apt already uses), one copy per image,
#     and runs in each the very script the Dockerfiles run
#     (deploy/runtime-setup.sh: EXACTLY the packages of
#     deploy/runtime-packages.txt, the HEALTHCHECK script, the user);
#  2. copies the built binaries in ($HP_BUILD_DIR), as the Dockerfiles do;
#  3. inside the roots (chroot, as the unprivileged image user, in a network
#     namespace of its own: traffic on its loopback only) runs both binaries'
#     --version, the image HEALTHCHECK, and a pairing: the rendezvous on
#     127.0.0.1 and two workers in the same room, both of which must exit 0;
#     then SIGTERM to the rendezvous, which must exit 0 too.
#
# The result of step 1 is cached in /var/cache/holepunch-test/runtime-chroot/,
# keyed by the hash of the runtime files and the apt sources, for at most
# HP_CHROOT_CACHE_DAYS days (default 7), so that local reruns take seconds.
# HP_CHROOT_NO_CACHE=1 builds from nothing and keeps nothing; it is the default
# under CI (CI=true), so CI always proves the whole way from nothing.
# Every step is bounded so that the whole stays under ctest's 900 s.
# Needs root; fails loudly without.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${HP_BUILD_DIR:-$top/build}
cache_top=/var/cache/holepunch-test/runtime-chroot
cache_days=${HP_CHROOT_CACHE_DAYS:-7}
# Bump when the way the roots are made changes, so old caches are not reused.
recipe=3
# The image user (deploy/runtime-setup.sh creates it with this id).
user=10001:10001
ns=hp-chroot-$$
no_cache=${HP_CHROOT_NO_CACHE:-$([[ ${CI:-} == true ]] && echo 1 || echo 0)}
work=
tmpbuild=
pids=()
cmd=()

log() { printf 'runtime-chroot: %s\n' "$*" >&2; }
die() {
  printf 'runtime-chroot: FAIL: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------- clean-up
# Unmount everything below a directory (deepest first); return non-zero if
# anything is still mounted there, so that nothing is ever deleted through a
# mount (a bind of /dev!).
unmount_below() {
  local dir=$1 m
  [[ -n $dir && -d $dir ]] || return 0
  dir=$(realpath "$dir")
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  ! awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts
}

remove_tree() {
  local dir=$1
  [[ -n $dir && -d $dir ]] || return 0
  if unmount_below "$dir"; then
    rm -rf --one-file-system "$dir"
  else
    log "WARNING: mounts remain below $dir; not deleting it"
  fi
}

# run_step COMMAND...: a long step, run in the background and waited for,
# because bash runs a signal's trap only after a foreground command ends:
# this way a signal stops the test at once, and cleanup stops the step.
step_pid=
run_step() {
  local rc=0
  "$@" &
  step_pid=$!
  wait "$step_pid" || rc=$?
  step_pid=
  return "$rc"
}

# The script's own stdout and stderr: a trap can run inside a redirected step.
exec {out_fd}>&1 {err_fd}>&2

cleanup() {
  local rc=$? p
  exec 1>&"$out_fd" 2>&"$err_fd"
  if [[ -n $step_pid ]]; then
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  ip netns delete "$ns" 2>/dev/null || true
  remove_tree "$work"
  remove_tree "$tmpbuild"
  if ((rc != 0)); then
    log "FAILED (exit $rc)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- checks
[[ $(id -u) -eq 0 ]] || die "NOT ROOT: debootstrap, chroot and network namespaces need root"
for tool in debootstrap chroot ip timeout flock sha256sum realpath; do
  command -v "$tool" >/dev/null || die "missing tool '$tool' (scripts/deps.sh installs it)"
done
for bin in holepunch-rendezvous holepunch; do
  [[ -x $build/$bin ]] || die "no built binary $build/$bin (set HP_BUILD_DIR; build with scripts/build.sh)"
done
runtime_files=(runtime-packages.txt runtime-packages.sh runtime-setup.sh healthcheck.sh)
for f in "${runtime_files[@]}"; do
  [[ -r $top/deploy/$f ]] || die "missing $top/deploy/$f"
done

# What a run killed without its trap (e.g. by ctest's timeout) left behind:
# run directories, build directories and namespaces named after a dead PID.
for d in /var/tmp/hp-chroot-run.*.*/ /var/tmp/hp-chroot-build.*.*/; do
  [[ -d $d ]] || continue
  pid=${d#/var/tmp/hp-chroot-*.}
  pid=${pid%%.*}
  if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
    log "removing the leftovers of run $pid: $d"
    remove_tree "$d"
  fi
done
while read -r old _; do
  pid=${old#hp-chroot-}
  if [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
    ip netns delete "$old" 2>/dev/null || true
  fi
done < <(ip netns list | grep '^hp-chroot-[0-9]' || true)

# ---------------------------------------------------------------- mirror
# The Debian bookworm sources this machine's apt uses, as "URI SUITE COMPONENTS"
# lines, from both the one-line (*.list) and the deb822 (*.sources) formats.
# Only bookworm, bookworm-updates and bookworm-security with "main": a
# third-party repository that reuses the suite name is not Debian.
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 4 {
      c = $4; for (i = 5; i <= NF; i++) c = c "," $i; print $2, $3, c }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j], comps
        types = ""; enabled = ""; comps = ""; nu = 0; ns = 0
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0
        else if (key == "enabled") enabled = tolower($0)
        else if (key == "uris") nu = split($0, u, " ")
        else if (key == "suites") ns = split($0, s, " ")
        else if (key == "components") { comps = $0; gsub(/ +/, ",", comps) }
      }
      END { flush() }' "$f"
  done
}
sources=$(apt_sources | awk '$2 ~ /^bookworm(-updates|-security)?$/ && ("," $3 ",") ~ /,main,/' | sort -u)
mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$sources")
[[ -n $mirror ]] || die "found no Debian bookworm 'main' source in /etc/apt/sources.list{,.d/*}"
log "Debian mirror (from this machine's apt sources): $mirror"

# ---------------------------------------------------------------- roots
key=$(
  {
    echo "recipe $recipe"
    echo "$sources"
    for f in "${runtime_files[@]}"; do
      echo "== $f"
      cat "$top/deploy/$f"
    done
  } | sha256sum | cut -c1-16
)

# Makes $1/rendezvous and $1/worker: minbase + the runtime stage of each image.
make_roots() {
  local dest=$1 img
  mkdir -p "$dest"
  log "debootstrap --variant=minbase bookworm from $mirror (takes a few minutes)"
  if ! run_step timeout -k 10 420 debootstrap --variant=minbase bookworm "$dest/base" "$mirror" \
    >"$dest/debootstrap.log" 2>&1; then
    tail -n 30 "$dest/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  # Same sources as debian:bookworm-slim has: release, updates, security.
  awk '{ c = $3; gsub(/,/, " ", c); print "deb", $1, $2, c }' <<<"$sources" \
    >"$dest/base/etc/apt/sources.list"
  for img in rendezvous worker; do
    log "runtime stage of the $img image: deploy/runtime-setup.sh $img"
    cp -a "$dest/base" "$dest/$img"
    mkdir -p "$dest/$img/tmp/hp-deploy"
    for f in "${runtime_files[@]}"; do
      cp "$top/deploy/$f" "$dest/$img/tmp/hp-deploy/"
    done
    # Name resolution for apt only; removed again below.
    cp /etc/resolv.conf "$dest/$img/etc/resolv.conf"
    mount_sys "$dest/$img"
    if ! run_step timeout -k 10 150 chroot "$dest/$img" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      sh /tmp/hp-deploy/runtime-setup.sh "$img" >"$dest/$img.setup.log" 2>&1; then
      tail -n 30 "$dest/$img.setup.log" >&2
      die "deploy/runtime-setup.sh $img failed in the chroot (log above)"
    fi
    unmount_below "$dest/$img" || die "cannot unmount below $dest/$img"
    rm -rf "$dest/$img/tmp/hp-deploy"
    : >"$dest/$img/etc/resolv.conf"
    # shellcheck disable=SC2016 # dpkg-query fields, not shell
    chroot "$dest/$img" dpkg-query -W -f '${Package} ${Version}\n' >"$dest/$img.packages"
  done
  rm -rf --one-file-system "$dest/base"
}

mount_sys() {
  mount -t proc proc "$1/proc"
  mount --bind /dev "$1/dev"
}

mkdir -p "$cache_top"
roots=
if [[ $no_cache == 1 ]]; then
  log "building from nothing (no cache)"
  tmpbuild=$(mktemp -d "/var/tmp/hp-chroot-build.$$.XXXXXX")
  make_roots "$tmpbuild"
  roots=$tmpbuild
else
  # One builder at a time; others wait (bounded) and then reuse its result.
  exec 9>"$cache_top/.lock"
  run_step flock -w 600 9 || die "cache lock $cache_top/.lock busy for 600 s"
  if [[ -f $cache_top/$key/complete ]] &&
    [[ -z $(find "$cache_top/$key/complete" -mtime +"$cache_days") ]]; then
    log "cached roots $cache_top/$key"
  else
    # Old keys (or an expired one) go: one set of roots on disk at a time.
    for old in "$cache_top"/*/ "$cache_top"/.build.*/; do
      [[ -d $old ]] && remove_tree "$old"
    done
    tmpbuild=$(mktemp -d "$cache_top/.build.XXXXXX")
    make_roots "$tmpbuild"
    date -u +%FT%TZ >"$tmpbuild/complete"
    mv "$tmpbuild" "$cache_top/$key"
    tmpbuild=
  fi
  flock -u 9
  exec 9>&-
  roots=$cache_top/$key
fi

# ---------------------------------------------------------------- run
# A throw-away copy per run: the cache is never mounted on, nor written to.
# Hard links make it instant; that is safe because everything that runs in
# the copies runs as the image user, who cannot write the root-owned files
# (new files, like the binaries below, are the copy's own). On another file
# system than the cache, a real copy.
work=$(mktemp -d "/var/tmp/hp-chroot-run.$$.XXXXXX")
for img in rendezvous worker; do
  if ! cp -al "$roots/$img" "$work/$img" 2>/dev/null; then
    rm -rf --one-file-system "${work:?}/$img"
    cp -a "$roots/$img" "$work/$img"
  fi
done
# What the Dockerfiles' COPY --from=build lines do.
install -m 0755 "$build/holepunch-rendezvous" "$work/rendezvous/usr/local/bin/holepunch-rendezvous"
install -m 0755 "$build/holepunch" "$work/worker/usr/local/bin/holepunch"
for img in rendezvous worker; do
  mount_sys "$work/$img"
done
ip netns add "$ns"
ip -n "$ns" link set lo up

# root_cmd IMAGE SECONDS VAR=VALUE... -- COMMAND...: sets the array "cmd" to
# run COMMAND as the image user, in the namespace, with only the given
# environment (plus PATH), bounded in time. An array rather than a function
# call, so that "${cmd[@]}" & gives the PID of timeout itself, which passes a
# SIGTERM on to the command.
root_cmd() {
  local img=$1 secs=$2 envs=()
  shift 2
  while [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  cmd=(timeout -k 5 "$secs" ip netns exec "$ns"
    chroot --userspec="$user" --groups="${user#*:}" "$work/$img"
    /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent "${envs[@]}" "$@")
}
in_root() {
  local cmd
  root_cmd "$@"
  "${cmd[@]}"
}

# wait_healthy IMAGE PORT PID: the image HEALTHCHECK until it passes (bounded).
wait_healthy() {
  local img=$1 port=$2 pid=$3 i
  for i in {1..100}; do
    kill -0 "$pid" 2>/dev/null || return 1
    if in_root "$img" 10 PORT="$port" -- hp-healthcheck 2>/dev/null; then
      log "HEALTHCHECK of the $img image passes on port $port (try $i)"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

show_logs() {
  local f
  for f in "$work"/*.log; do
    [[ -f $f ]] || continue
    echo "----- ${f##*/} (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

for pair in rendezvous:holepunch-rendezvous worker:holepunch; do
  img=${pair%%:*}
  bin=${pair#*:}
  missing=$(in_root "$img" 30 -- ldd "/usr/local/bin/$bin" | grep 'not found' || true)
  [[ -z $missing ]] || die "$bin lacks libraries in the $img image: $missing"
  version=$(in_root "$img" 30 -- "$bin" --version) || die "$bin --version failed in the $img image"
  [[ -n $version ]] || die "$bin --version printed nothing"
  log "$img image: $bin --version: ${version%%$'\n'*}"
done

room=chroot-$$
url=http://127.0.0.1:8080
root_cmd rendezvous 120 PORT=8080 LOG_FORMAT=json LOG_LEVEL=debug -- holepunch-rendezvous
"${cmd[@]}" >"$work/rendezvous.log" 2>&1 &
rdv=$!
pids+=("$rdv")
wait_healthy rendezvous 8080 "$rdv" || {
  show_logs
  die "the rendezvous never became healthy"
}

worker_env=(RENDEZVOUS_SERVICE_URL="$url" ROOM="$room" ALLOW_LOOPBACK_CANDIDATES=1 LOG_FORMAT=json LOG_LEVEL=debug
  WS_RECV_TIMEOUT=60 P2P_CONNECT_TIMEOUT=30)
root_cmd worker 90 "${worker_env[@]}" WORKER_ID=a INTERNAL_TCP_PORT=8082 PORT=8081 -- holepunch
"${cmd[@]}" >"$work/worker-a.log" 2>&1 &
wa=$!
pids+=("$wa")
# Worker A waits for its peer with its health server up: check it there.
wait_healthy worker 8081 "$wa" || {
  show_logs
  die "worker A's health server never became healthy"
}
root_cmd worker 90 "${worker_env[@]}" WORKER_ID=b INTERNAL_TCP_PORT=8083 PORT=8084 -- holepunch
"${cmd[@]}" >"$work/worker-b.log" 2>&1 &
wb=$!
pids+=("$wb")

rc_a=0
rc_b=0
wait "$wa" || rc_a=$?
wait "$wb" || rc_b=$?
pids=("$rdv")
if ((rc_a != 0 || rc_b != 0)); then
  show_logs
  die "pairing on loopback: worker A exit $rc_a, worker B exit $rc_b (want 0 and 0)"
fi
log "pairing on loopback: both workers exit 0; their last log lines:"
tail -n 2 "$work/worker-a.log" "$work/worker-b.log" >&2

in_root rendezvous 10 PORT=8080 -- hp-healthcheck || die "rendezvous unhealthy after the pairing"
kill -TERM "$rdv"
rc_r=0
wait "$rdv" || rc_r=$?
pids=()
if ((rc_r != 0)); then
  show_logs
  die "rendezvous exit $rc_r after SIGTERM (want 0)"
fi
log "rendezvous: SIGTERM -> exit 0"
log "OK: the images' runtime packages suffice for both binaries" \
  "($(wc -l <"$roots/rendezvous.packages") and $(wc -l <"$roots/worker.packages") dpkg packages in all)"
