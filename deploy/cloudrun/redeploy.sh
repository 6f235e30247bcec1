#!/usr/bin/env bash
# Build both images for linux/amd64, push them to Artifact Registry, deploy the
# rendezvous and two workers to Cloud Run, and print the rendezvous URL.
# Configuration comes from the environment (.envrc; see .envrc.example).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/cloudrun/redeploy.sh [--dry-run] [--help]

Builds the images rendezvous-service and holepunch-worker for linux/amd64
(deploy/rendezvous.Dockerfile, deploy/worker.Dockerfile), pushes them to
REGION-docker.pkg.dev/PROJECT_ID/AR_REPO, deploys to Cloud Run:
  CLOUDRUN_RENDEZVOUS_SERVICE_NAME  the rendezvous (public, TRUST_PROXY=1,
                                    session affinity, one instance: rooms
                                    live in its memory)
  WORKER_A_SERVICE_NAME             worker A, worker B: same room, each with
  WORKER_B_SERVICE_NAME             its INTERNAL_TCP_PORT and health PORT,
                                    CPU always on, one instance each
and prints the rendezvous URL.

Options:
  --dry-run   print every command (as a shell script) instead of running it
  --help      this text

Required environment variables (all are checked before anything runs):
  PROJECT_ID REGION AR_REPO
  RENDEZVOUS_IMAGE_NAME RENDEZVOUS_IMAGE_TAG RENDEZVOUS_CONTAINER_PORT
  CLOUDRUN_RENDEZVOUS_SERVICE_NAME
  WORKER_IMAGE_NAME WORKER_IMAGE_TAG
  WORKER_A_SERVICE_NAME WORKER_B_SERVICE_NAME
  WORKER_A_CLOUDRUN_HEALTH_PORT WORKER_B_CLOUDRUN_HEALTH_PORT
  WORKER_A_INTERNAL_TCP_PORT WORKER_B_INTERNAL_TCP_PORT
  RENDEZVOUS_SERVICE_URL   the rendezvous URL the workers use (printed at the
                           end of a deployment; a first deployment may use
                           any placeholder and be run again)
Optional:
  WORKER_ROOM              the workers' room (default: holepunch-cloudrun)

Needs docker (with buildx for --platform) and gcloud, authenticated:
  gcloud auth login; gcloud auth configure-docker REGION-docker.pkg.dev

Exit status: 0 done; 2 bad usage or configuration (nothing was run);
otherwise the exit status of the step that failed, which is named.
EOF
}

dry_run=0
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "redeploy: unknown argument '$arg' (see --help)" >&2
      exit 2
      ;;
  esac
done

# ---------------------------------------------------------------- configuration
required=(
  PROJECT_ID REGION AR_REPO
  RENDEZVOUS_IMAGE_NAME RENDEZVOUS_IMAGE_TAG RENDEZVOUS_CONTAINER_PORT
  CLOUDRUN_RENDEZVOUS_SERVICE_NAME
  WORKER_IMAGE_NAME WORKER_IMAGE_TAG
  WORKER_A_SERVICE_NAME WORKER_B_SERVICE_NAME
  WORKER_A_CLOUDRUN_HEALTH_PORT WORKER_B_CLOUDRUN_HEALTH_PORT
  WORKER_A_INTERNAL_TCP_PORT WORKER_B_INTERNAL_TCP_PORT
  RENDEZVOUS_SERVICE_URL
)
missing=()
for var in "${required[@]}"; do
  [[ -n ${!var:-} ]] || missing+=("$var")
done
if ((${#missing[@]})); then
  echo "redeploy: missing variable(s): ${missing[*]}" >&2
  echo "redeploy: set them in .envrc (see .envrc.example) and load it (direnv allow, or: set -a; . ./.envrc; set +a)" >&2
  exit 2
fi

WORKER_ROOM=${WORKER_ROOM:-holepunch-cloudrun}
bad=()
for var in RENDEZVOUS_CONTAINER_PORT WORKER_A_CLOUDRUN_HEALTH_PORT WORKER_B_CLOUDRUN_HEALTH_PORT \
  WORKER_A_INTERNAL_TCP_PORT WORKER_B_INTERNAL_TCP_PORT; do
  val=${!var}
  if [[ ! $val =~ ^[0-9]{1,5}$ ]] || ((10#$val < 1 || 10#$val > 65535)); then
    bad+=("$var='$val' is not a TCP port (1-65535)")
  fi
done
if [[ ! $RENDEZVOUS_SERVICE_URL =~ ^(https?|wss?)://[^,[:space:]]+$ ]]; then
  bad+=("RENDEZVOUS_SERVICE_URL='$RENDEZVOUS_SERVICE_URL' is not an http://, https://, ws:// or wss:// URL (without commas or spaces)")
fi
if [[ ! $WORKER_ROOM =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
  bad+=("WORKER_ROOM='$WORKER_ROOM' is not 1-64 of [A-Za-z0-9._-]")
fi
if ((${#bad[@]})); then
  printf 'redeploy: %s\n' "${bad[@]}" >&2
  exit 2
fi

if ((!dry_run)); then
  for tool in docker gcloud; do
    if ! command -v "$tool" >/dev/null; then
      echo "redeploy: '$tool' is not on PATH" >&2
      exit 2
    fi
  done
fi

# The build context is the top of the repository.
cd "$(dirname "$0")/../.."

registry="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"
rendezvous_image="${registry}/${RENDEZVOUS_IMAGE_NAME}:${RENDEZVOUS_IMAGE_TAG}"
worker_image="${registry}/${WORKER_IMAGE_NAME}:${WORKER_IMAGE_TAG}"

# ---------------------------------------------------------------- steps
# step NAME COMMAND...: runs COMMAND (or prints it with --dry-run); a failure
# stops everything, naming the step. The output of the last step is kept in
# $step_output when "capture" is set.
capture=0
step_output=
step() {
  local name=$1 rc=0
  shift
  if ((dry_run)); then
    printf '# step %s\n' "'$name'"
    printf '%q' "$1"
    printf ' %q' "${@:2}"
    printf '\n'
    return 0
  fi
  echo "redeploy: step '$name'" >&2
  if ((capture)); then
    step_output=$("$@") || rc=$?
  else
    "$@" || rc=$?
  fi
  if ((rc != 0)); then
    echo "redeploy: step '$name' failed (exit $rc)" >&2
    exit "$rc"
  fi
}

step 'build rendezvous image' \
  docker build --platform linux/amd64 -f deploy/rendezvous.Dockerfile -t "$rendezvous_image" .
step 'build worker image' \
  docker build --platform linux/amd64 -f deploy/worker.Dockerfile -t "$worker_image" .
step 'push rendezvous image' docker push "$rendezvous_image"
step 'push worker image' docker push "$worker_image"

# Rooms live in the memory of one rendezvous process: two workers must reach
# the same instance, hence one instance at most. TRUST_PROXY=1: behind Cloud
# Run's front end the client address is only in X-Forwarded-For.
step 'deploy rendezvous' \
  gcloud run deploy "$CLOUDRUN_RENDEZVOUS_SERVICE_NAME" \
  --image "$rendezvous_image" \
  --platform managed \
  --region "$REGION" \
  --port "$RENDEZVOUS_CONTAINER_PORT" \
  --allow-unauthenticated \
  --session-affinity \
  --max-instances 1 \
  --project "$PROJECT_ID" \
  --set-env-vars TRUST_PROXY=1

# A worker is a background process, not a request handler: CPU always on and
# one instance kept running. Cloud Run sets PORT from --port (the health
# server) and K_SERVICE, which turns the worker's service mode on.
deploy_worker() {
  local label=$1 service=$2 health_port=$3 tcp_port=$4
  step "deploy worker $label" \
    gcloud run deploy "$service" \
    --image "$worker_image" \
    --platform managed \
    --region "$REGION" \
    --port "$health_port" \
    --no-allow-unauthenticated \
    --no-cpu-throttling \
    --min-instances 1 \
    --max-instances 1 \
    --project "$PROJECT_ID" \
    --set-env-vars "RENDEZVOUS_SERVICE_URL=${RENDEZVOUS_SERVICE_URL},INTERNAL_TCP_PORT=${tcp_port},ROOM=${WORKER_ROOM}"
}
deploy_worker a "$WORKER_A_SERVICE_NAME" "$WORKER_A_CLOUDRUN_HEALTH_PORT" "$WORKER_A_INTERNAL_TCP_PORT"
deploy_worker b "$WORKER_B_SERVICE_NAME" "$WORKER_B_CLOUDRUN_HEALTH_PORT" "$WORKER_B_INTERNAL_TCP_PORT"

capture=1
step 'describe rendezvous' \
  gcloud run services describe "$CLOUDRUN_RENDEZVOUS_SERVICE_NAME" \
  --platform managed \
  --region "$REGION" \
  --project "$PROJECT_ID" \
  --format 'value(status.url)'
capture=0
if ((dry_run)); then
  exit 0
fi

url=${step_output%%[[:space:]]*}
if [[ -z $url ]]; then
  echo "redeploy: step 'describe rendezvous' printed no URL" >&2
  exit 1
fi
echo "Rendezvous URL: $url"
if [[ ${RENDEZVOUS_SERVICE_URL%/} != "${url%/}" ]]; then
  echo "redeploy: note: the workers were given RENDEZVOUS_SERVICE_URL=$RENDEZVOUS_SERVICE_URL;" \
    "set RENDEZVOUS_SERVICE_URL=$url in .envrc and run again" >&2
fi
