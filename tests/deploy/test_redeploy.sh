#!/usr/bin/env bash
# Deployment checks, without Docker or Google Cloud:
#  - shellcheck: the deployment's shell scripts must be clean (and, with
#    HP_SHELLCHECK_ALL=1, every shell script of the repository); the findings
#    in the other scripts/*.sh and tests/**/*.sh are printed either way;
#  - deploy/cloudrun/redeploy.sh against stand-in `docker` and `gcloud`
#    programs that record their arguments: the exact calls, in order; the
#    refusal of a missing or bad variable before anything runs; --dry-run;
#    a failing step stops the script with its name; --help;
#  - the runtime package list, the Dockerfiles and compose.yaml agree.
set -euo pipefail

top=${HP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
script=$top/deploy/cloudrun/redeploy.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hp-redeploy-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$*"
}
fail() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$*"
}
# check NAME COMMAND...: one assertion.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

# ---------------------------------------------------------------- shellcheck
command -v shellcheck >/dev/null || {
  echo "FAIL shellcheck is not installed (scripts/deps.sh installs it)"
  exit 1
}
owned=(
  "$top"/deploy/*.sh "$top"/deploy/cloudrun/*.sh
  "$top/tests/deploy/test_redeploy.sh" "$top/tests/slow/test_runtime_chroot.sh"
)
for f in "${owned[@]}"; do
  [[ -f $f ]] || continue
  if out=$(shellcheck -x -P SCRIPTDIR "$f" 2>&1); then
    ok "shellcheck ${f#"$top"/}"
  else
    fail "shellcheck ${f#"$top"/}"
    printf '%s\n' "$out"
  fi
done
# Everybody else's shell scripts.
shopt -s globstar nullglob
others=()
for f in "$top"/scripts/*.sh "$top"/tests/**/*.sh "$top"/.ci/run; do
  case " ${owned[*]} " in *" $f "*) continue ;; esac
  others+=("$f")
done
shopt -u globstar nullglob
for f in "${others[@]}"; do
  if out=$(shellcheck -x -P SCRIPTDIR -f gcc "$f" 2>&1); then
    ok "shellcheck ${f#"$top"/}"
  elif [[ ${HP_SHELLCHECK_ALL:-0} == 1 ]]; then
    fail "shellcheck ${f#"$top"/}"
    printf '%s\n' "$out"
  else
    printf 'note shellcheck findings in %s (not counted; HP_SHELLCHECK_ALL=1 counts them):\n%s\n' \
      "${f#"$top"/}" "$out"
  fi
done

# ---------------------------------------------------------------- stand-ins
# docker and gcloud stand-ins: append one line per call to $STANDIN_LOG, the
# program name and its arguments each %q-quoted (the format of --dry-run).
# STANDIN_FAIL: a call whose line starts with it exits 1 (after recording).
# `gcloud run services describe` prints a URL, as the real one does.
bin=$tmp/bin
mkdir -p "$bin"
cat >"$bin/standin" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
line=$(printf '%q' "${0##*/}"; printf ' %q' "$@")
printf '%s\n' "$line" >>"$STANDIN_LOG"
if [[ -n ${STANDIN_FAIL:-} && $line == "$STANDIN_FAIL"* ]]; then
  echo "stand-in: failing on purpose: $line" >&2
  exit 1
fi
if [[ ${0##*/} == gcloud && ${1:-} == run && ${2:-} == services && ${3:-} == describe ]]; then
  echo "https://hp-rendezvous-abc123-ew.a.run.app"
fi
EOF
chmod +x "$bin/standin"
ln -s standin "$bin/docker"
ln -s standin "$bin/gcloud"

conf=(
  PROJECT_ID=test-project
  REGION=europe-west1
  AR_REPO=hp-repo
  RENDEZVOUS_IMAGE_NAME=rendezvous-service
  RENDEZVOUS_IMAGE_TAG=v1
  RENDEZVOUS_CONTAINER_PORT=8080
  CLOUDRUN_RENDEZVOUS_SERVICE_NAME=hp-rendezvous
  WORKER_IMAGE_NAME=holepunch-worker
  WORKER_IMAGE_TAG=v2
  WORKER_A_SERVICE_NAME=hp-worker-a
  WORKER_B_SERVICE_NAME=hp-worker-b
  WORKER_A_CLOUDRUN_HEALTH_PORT=8080
  WORKER_B_CLOUDRUN_HEALTH_PORT=8081
  WORKER_A_INTERNAL_TCP_PORT=8082
  WORKER_B_INTERNAL_TCP_PORT=8083
  RENDEZVOUS_SERVICE_URL=https://hp-rendezvous-abc123-ew.a.run.app
)
# The exact calls, in order, for $conf.
expected=$(
  cat <<'EOF'
docker build --platform linux/amd64 -f deploy/rendezvous.Dockerfile -t europe-west1-docker.pkg.dev/test-project/hp-repo/rendezvous-service:v1 .
docker build --platform linux/amd64 -f deploy/worker.Dockerfile -t europe-west1-docker.pkg.dev/test-project/hp-repo/holepunch-worker:v2 .
docker push europe-west1-docker.pkg.dev/test-project/hp-repo/rendezvous-service:v1
docker push europe-west1-docker.pkg.dev/test-project/hp-repo/holepunch-worker:v2
gcloud run deploy hp-rendezvous --image europe-west1-docker.pkg.dev/test-project/hp-repo/rendezvous-service:v1 --platform managed --region europe-west1 --port 8080 --allow-unauthenticated --session-affinity --max-instances 1 --project test-project --set-env-vars TRUST_PROXY=1
gcloud run deploy hp-worker-a --image europe-west1-docker.pkg.dev/test-project/hp-repo/holepunch-worker:v2 --platform managed --region europe-west1 --port 8080 --no-allow-unauthenticated --no-cpu-throttling --min-instances 1 --max-instances 1 --project test-project --set-env-vars RENDEZVOUS_SERVICE_URL=https://hp-rendezvous-abc123-ew.a.run.app\,INTERNAL_TCP_PORT=8082\,ROOM=holepunch-cloudrun
gcloud run deploy hp-worker-b --image europe-west1-docker.pkg.dev/test-project/hp-repo/holepunch-worker:v2 --platform managed --region europe-west1 --port 8081 --no-allow-unauthenticated --no-cpu-throttling --min-instances 1 --max-instances 1 --project test-project --set-env-vars RENDEZVOUS_SERVICE_URL=https://hp-rendezvous-abc123-ew.a.run.app\,INTERNAL_TCP_PORT=8083\,ROOM=holepunch-cloudrun
gcloud run services describe hp-rendezvous --platform managed --region europe-west1 --project test-project --format value\(status.url\)
EOF
)

# run NAME [VAR=VALUE...] -- ARGS...: runs redeploy.sh with only $conf (plus
# the VAR=VALUE given; VAR= alone removes VAR) in a clean environment, the
# stand-ins first on PATH; from an unrelated directory, since the script must
# find the repository itself. Sets rc, out, err; the calls are in $tmp/NAME.calls.
run() {
  local name=$1 envs=("${conf[@]}") kv k i
  shift
  while [[ $1 != -- ]]; do
    kv=$1
    k=${kv%%=*}
    for i in "${!envs[@]}"; do
      [[ ${envs[$i]%%=*} == "$k" ]] && unset 'envs[i]'
    done
    [[ $kv == "$k=" ]] || envs+=("$kv")
    shift
  done
  shift
  rc=0
  (cd "$tmp" && env -i PATH="$bin:/usr/bin:/bin" HOME="$tmp" STANDIN_LOG="$tmp/$name.calls" \
    "${envs[@]}" bash "$script" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err") || rc=$?
  out=$(cat "$tmp/$name.out")
  err=$(cat "$tmp/$name.err")
}
# all_lines FILE REGEX...: every extended REGEX matches a line of FILE.
all_lines() {
  local f=$1 r
  shift
  for r in "$@"; do
    grep -qE -- "$r" "$f" || return 1
  done
}
calls() { cat "$tmp/$1.calls" 2>/dev/null || true; }
show() {
  printf -- '--- stdout\n%s\n--- stderr\n%s\n--- calls\n%s\n---\n' "$out" "$err" "$(calls "$1")"
}

# The stand-ins really are the ones found (there may be a real docker/gcloud).
[[ $(env -i PATH="$bin:/usr/bin:/bin" bash -c 'command -v docker; command -v gcloud') == "$bin/docker"$'\n'"$bin/gcloud" ]] ||
  fail "stand-ins are not first on PATH"

# ---------------------------------------------------------------- full run
run full --
check "full run exits 0" test "$rc" -eq 0 || show full
if [[ $(calls full) == "$expected" ]]; then
  ok "full run: exactly the expected docker/gcloud calls, in order"
else
  fail "full run: calls differ from the expected ones"
  diff <(echo "$expected") <(calls full) || true
fi
check "full run prints the rendezvous URL" grep -qx 'Rendezvous URL: https://hp-rendezvous-abc123-ew.a.run.app' "$tmp/full.out"
check "full run: no URL mismatch note" test -z "$(grep 'note:' "$tmp/full.err" || true)"

# A first deployment with a placeholder URL: done, and told what to set.
run placeholder RENDEZVOUS_SERVICE_URL=https://placeholder.invalid --
check "placeholder URL: exits 0" test "$rc" -eq 0
check "placeholder URL: says which URL to set" \
  grep -q 'set RENDEZVOUS_SERVICE_URL=https://hp-rendezvous-abc123-ew.a.run.app in .envrc' "$tmp/placeholder.err"

# WORKER_ROOM reaches both workers.
run room WORKER_ROOM=lab-7 --
check "WORKER_ROOM: exits 0" test "$rc" -eq 0
check "WORKER_ROOM: both workers get ROOM=lab-7" test "$(calls room | grep -c 'ROOM=lab-7$')" -eq 2

# ---------------------------------------------------------------- refusals
run missing PROJECT_ID= WORKER_B_INTERNAL_TCP_PORT= RENDEZVOUS_SERVICE_URL= --
check "missing variables: exit 2" test "$rc" -eq 2
check "missing variables: all named" \
  grep -q 'missing variable(s): PROJECT_ID WORKER_B_INTERNAL_TCP_PORT RENDEZVOUS_SERVICE_URL$' "$tmp/missing.err"
check "missing variables: nothing ran" test ! -e "$tmp/missing.calls"

run empty REGION= -- --dry-run
check "missing variable with --dry-run: exit 2, nothing printed" test "$rc" -eq 2 -a -z "$out"

run badport WORKER_A_INTERNAL_TCP_PORT=80x RENDEZVOUS_CONTAINER_PORT=70000 --
check "bad ports: exit 2" test "$rc" -eq 2
check "bad ports: both named" test "$(grep -c 'is not a TCP port' "$tmp/badport.err")" -eq 2
check "bad ports: nothing ran" test ! -e "$tmp/badport.calls"

run badurl RENDEZVOUS_SERVICE_URL=ftp://x --
check "bad URL: exit 2, nothing ran" test "$rc" -eq 2 -a ! -e "$tmp/badurl.calls"

run badarg -- --bogus
check "unknown argument: exit 2, nothing ran" test "$rc" -eq 2 -a ! -e "$tmp/badarg.calls"

run help -- --help
check "--help: exit 0" test "$rc" -eq 0
# all_in FILE WORD...: every WORD occurs in FILE.
all_in() {
  local f=$1 w
  shift
  for w in "$@"; do
    grep -qF -- "$w" "$f" || return 1
  done
}
check "--help: usage names the variables and --dry-run" \
  all_in "$tmp/help.out" PROJECT_ID WORKER_B_INTERNAL_TCP_PORT RENDEZVOUS_SERVICE_URL WORKER_ROOM --dry-run
check "--help: nothing ran" test ! -e "$tmp/help.calls"

# ---------------------------------------------------------------- dry run
run dry -- --dry-run
check "--dry-run: exit 0" test "$rc" -eq 0
check "--dry-run: no docker/gcloud call" test ! -e "$tmp/dry.calls"
if [[ $(grep -v '^#' "$tmp/dry.out") == "$expected" ]]; then
  ok "--dry-run prints exactly the commands a real run makes"
else
  fail "--dry-run output differs"
  diff <(echo "$expected") <(grep -v '^#' "$tmp/dry.out") || true
fi
check "--dry-run names the steps" test "$(grep -c "^# step '" "$tmp/dry.out")" -eq 8

# ---------------------------------------------------------------- failures
# fail_at NAME PREFIX STEP N: the call starting with PREFIX fails: the script
# stops there (N calls made, the failed one last), naming STEP.
fail_at() {
  local name=$1 prefix=$2 stepname=$3 n=$4
  run "$name" STANDIN_FAIL="$prefix" --
  check "failing '$stepname': non-zero exit" test "$rc" -ne 0
  check "failing '$stepname': named" grep -qF "step '$stepname' failed (exit 1)" "$tmp/$name.err"
  check "failing '$stepname': stops there" \
    test "$(calls "$name")" == "$(head -n "$n" <<<"$expected")"
  check "failing '$stepname': no URL printed" test -z "$out"
}
fail_at failpush 'docker push' 'push rendezvous image' 3
fail_at failbuild 'docker build --platform linux/amd64 -f deploy/worker.Dockerfile' 'build worker image' 2
fail_at faildeploy 'gcloud run deploy hp-worker-b' 'deploy worker b' 7
fail_at faildescribe 'gcloud run services describe' 'describe rendezvous' 8

# ---------------------------------------------------------------- images
# Both Dockerfiles run the one runtime stage script with their image name, and
# the list gives each image what its binary links.
for img in rendezvous worker; do
  df=$top/deploy/$img.Dockerfile
  check "$img.Dockerfile runs runtime-setup.sh $img" grep -q "^RUN sh /tmp/hp-deploy/runtime-setup.sh $img " "$df"
  check "$img.Dockerfile: build stage uses scripts/deps.sh --build-only and scripts/build.sh" \
    all_in "$df" $'\nRUN scripts/deps.sh --build-only' $'\nRUN scripts/build.sh /build' 
  check "$img.Dockerfile: two bookworm-slim stages" test "$(grep -c '^FROM debian:bookworm-slim' "$df")" -eq 2
  check "$img.Dockerfile: non-root USER, HEALTHCHECK, EXPOSE" \
    all_lines "$df" '^USER 10001:10001$' '^HEALTHCHECK ' '^EXPOSE 8080( |$)' 
done
pk=$top/deploy/runtime-packages.sh
"$pk" rendezvous >"$tmp/pk.rendezvous"
"$pk" worker >"$tmp/pk.worker"
check "runtime list: libcurl4 in the worker image only" \
  all_lines "$tmp/pk.worker" '^libcurl4$'
check "runtime list: no libcurl4 in the rendezvous image" \
  test -z "$(grep -x libcurl4 "$tmp/pk.rendezvous" || true)"
# Both programs speak HTTP and WebSocket through src/net (wslay,
# http-parser); libwebsockets is gone from both images.
own_stack() {
  local f
  for f in "$tmp/pk.rendezvous" "$tmp/pk.worker"; do
    all_lines "$f" '^libwslay1$' '^libhttp-parser2\.9$' '^libuv1$' '^libjansson4$' || return 1
    ! grep -q '^libwebsockets' "$f" || return 1
  done
}
both_common() {
  local f
  for f in "$tmp/pk.rendezvous" "$tmp/pk.worker"; do
    all_lines "$f" '^libuv1$' '^libjansson4$' '^libssl3$' '^ca-certificates$' || return 1
  done
}
check "runtime list: both images have wslay and http-parser, no libwebsockets" own_stack
check "runtime list: both images have the loop, JSON and TLS libraries" both_common

# compose.yaml: the rendezvous and two workers, same room, different ports,
# the workers pointed at the rendezvous service by name.
if /usr/bin/python3 - "$top/compose.yaml" <<'EOF'; then
import sys, urllib.parse, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
r, a, b = s["rendezvous"], s["worker-a"], s["worker-b"]
assert r["build"]["dockerfile"] == "deploy/rendezvous.Dockerfile" and r["image"] == "rendezvous-service"
for w in (a, b):
    assert w["build"]["dockerfile"] == "deploy/worker.Dockerfile" and w["image"] == "holepunch-worker"
    u = urllib.parse.urlparse(w["environment"]["RENDEZVOUS_SERVICE_URL"])
    assert u.hostname == "rendezvous", u
    assert str(u.port) == str(r["environment"]["PORT"]), u
    assert w["depends_on"]["rendezvous"]["condition"] == "service_healthy"
ea, eb = a["environment"], b["environment"]
assert ea["ROOM"] == eb["ROOM"]
assert ea["INTERNAL_TCP_PORT"] != eb["INTERNAL_TCP_PORT"] and ea["PORT"] != eb["PORT"]
EOF
  ok "compose.yaml: rendezvous + two workers in one room, different ports"
else
  fail "compose.yaml"
fi

# .envrc.example sets every variable redeploy.sh requires.
lacking=()
read -r -a vars <<<"$(sed -n '/^required=(/,/^)/p' "$script" | sed '1d;$d' | tr '\n' ' ')"
check "redeploy.sh requires the 16 original variables" test "${#vars[@]}" -eq 16
for v in "${vars[@]}"; do
  grep -q "^export $v=" "$top/.envrc.example" || lacking+=("$v")
done
check ".envrc.example sets every variable redeploy.sh requires${lacking:+ (lacks: ${lacking[*]})}" \
  test "${#lacking[@]}" -eq 0

echo
echo "$passed passed, $failed failed"
((failed == 0))
