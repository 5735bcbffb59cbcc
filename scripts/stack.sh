#!/usr/bin/env bash
# stack.sh - the runner as a Docker Swarm stack (compose/docker-stack.yml), on the Swarm manager
# that DOCKER_HOST names (the local engine when unset). `make stack-up` / `make stack-down` run it.
#
#   stack.sh up [--monitoring] [--load ENGINE]...
#       1. builds the runner's image (runner/Dockerfile) and Redis' (compose/redis/Dockerfile) on
#          BUILD_HOST (default: DOCKER_HOST), from debian:bookworm-slim (bootstrapped when absent);
#       2. copies them (docker save | docker -H ENGINE load) into every --load ENGINE whose copy
#          differs: no registry is needed, but every node must have them (give each node's engine);
#       3. creates the Swarm secret DOCKER_RUNNER_SECRET_NAME, unless it exists, from
#          DOCKER_RUNNER_SHARED_SECRET (the environment, else ENV_FILE, else the file its
#          DOCKER_RUNNER_SHARED_SECRET_FILE names; when none is set one is generated into ENV_FILE);
#       4. deploys the stack (with --monitoring, compose/docker-stack.monitoring.yml too: its
#          Prometheus and Grafana images must already be on the manager);
#       5. waits until every service of the stack runs all its tasks, healthy (STACK_WAIT_S).
#   stack.sh build
#       step 1 alone (a test builds once, then deploys with BUILD=0).
#   stack.sh down
#       removes the stack (waiting for its tasks and network to go) and the secret.
#
# Settings (environment):
#   STACK_NAME (docker-runner)  DOCKER_RUNNER_IMAGE (docker-runner:latest)
#   DOCKER_RUNNER_REDIS_IMAGE (docker-runner-redis:latest)  DOCKER_RUNNER_SECRET_NAME
#   (docker-runner-shared-secret)  ENV_FILE (.env)  BUILD (1; 0: deploy the images as they are)
#   STACK_WAIT_S (180)  EXTRA_CA_FILES (PEM files trusted by the image build for PyPI) or
#   EXTRA_CA_CERTS (their content, as runner/Dockerfile takes it)
#   and what the stack file reads: DOCKER_SOCKET, DOCKER_GID (the group of DOCKER_SOCKET when it
#   is a local socket, else 999), DOCKER_RUNNER_PORT, DOCKER_RUNNER_INSTANCE, DOCKER_RUNNER_LOG_LEVEL.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_NAME=${STACK_NAME:-docker-runner}
export DOCKER_RUNNER_IMAGE=${DOCKER_RUNNER_IMAGE:-docker-runner:latest}
export DOCKER_RUNNER_REDIS_IMAGE=${DOCKER_RUNNER_REDIS_IMAGE:-docker-runner-redis:latest}
export DOCKER_RUNNER_SECRET_NAME=${DOCKER_RUNNER_SECRET_NAME:-docker-runner-shared-secret}
export DOCKER_SOCKET=${DOCKER_SOCKET:-/var/run/docker.sock}
if [ -z "${DOCKER_GID:-}" ]; then
  DOCKER_GID=$(stat -c %g "$DOCKER_SOCKET" 2>/dev/null || echo 999)
fi
export DOCKER_GID
ENV_FILE=${ENV_FILE:-$REPO/.env}
STACK_WAIT_S=${STACK_WAIT_S:-180}
MANAGER=${DOCKER_HOST:-unix:///var/run/docker.sock}
BUILD_HOST=${BUILD_HOST:-$MANAGER}
NAMESPACE_LABEL=com.docker.stack.namespace

die() { echo "stack: $*" >&2; exit 1; }
say() { echo "stack: $*" >&2; }
# the manager; the builder; any engine. The secret never goes on a command line.
m() { docker -H "$MANAGER" "$@"; }
b() { docker -H "$BUILD_HOST" "$@"; }
image_id() { docker -H "$1" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true; }

# docker build ARGS..., its output shown only when it fails. The classic builder: it takes FROM
# from the local images alone (BuildKit may ask a registry for it, or not be installed).
quiet_build() {
  local log
  log=$(mktemp /tmp/docker-runner-build.XXXXXX)
  if ! DOCKER_BUILDKIT=0 b build "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; die "docker build $* failed"
  fi
  rm -f "$log"
}

build_images() {
  local base=debian:bookworm-slim ca=""
  if [ -z "$(image_id "$BUILD_HOST" "$base")" ]; then
    case $BUILD_HOST in
      unix://*) DOCKER_SOCK=${BUILD_HOST#unix://} bash "$REPO/tests/support/debian_base.sh" >/dev/null ;;
      *) die "$base is missing on $BUILD_HOST (tests/support/debian_base.sh makes it on a local engine)" ;;
    esac
  fi
  # EXTRA_CA_CERTS as given, else from EXTRA_CA_FILES exactly as `make image` passes it: the same
  # build argument is what lets two builds share the build cache
  if [ -n "${EXTRA_CA_CERTS+set}" ]; then
    ca=$EXTRA_CA_CERTS
  elif [ -n "${EXTRA_CA_FILES:-}" ]; then
    # shellcheck disable=SC2086
    ca=$(cat ${EXTRA_CA_FILES} </dev/null 2>/dev/null || true)
  fi
  say "building $DOCKER_RUNNER_IMAGE and $DOCKER_RUNNER_REDIS_IMAGE on $BUILD_HOST"
  quiet_build -f "$REPO/runner/Dockerfile" -t "$DOCKER_RUNNER_IMAGE" --build-arg EXTRA_CA_CERTS="$ca" "$REPO"
  quiet_build -t "$DOCKER_RUNNER_REDIS_IMAGE" "$REPO/compose/redis"
}

load_images() {   # ENGINE...: docker save once, docker load in parallel where the image differs
  local engine image want tar pids=() fail=0 p targets=()
  for engine in "$@"; do
    for image in "$DOCKER_RUNNER_IMAGE" "$DOCKER_RUNNER_REDIS_IMAGE"; do
      want=$(image_id "$BUILD_HOST" "$image")
      [ -n "$want" ] || die "$image is not on $BUILD_HOST"
      if [ "$(image_id "$engine" "$image")" != "$want" ]; then targets+=("$engine"); break; fi
    done
  done
  [ "${#targets[@]}" -gt 0 ] || return 0
  tar=$(mktemp /tmp/docker-runner-stack.XXXXXX.tar)
  # shellcheck disable=SC2064
  trap "rm -f '$tar'" EXIT
  b save -o "$tar" "$DOCKER_RUNNER_IMAGE" "$DOCKER_RUNNER_REDIS_IMAGE"
  say "loading the images into ${targets[*]}"
  for engine in "${targets[@]}"; do docker -H "$engine" load -q -i "$tar" >/dev/null & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  rm -f "$tar"
  [ "$fail" = 0 ] || die "the image load failed on some engine"
}

secret_value() {   # the shared secret, as scripts and the runner read it (runner/docker_runner/envfile.py)
  ENV_FILE=$ENV_FILE python3 - "$REPO/runner" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from docker_runner import envfile
path = Path(os.environ["ENV_FILE"])
values = envfile.parse(path.read_text(encoding="utf-8")) if path.exists() else {}
secret = os.environ.get(envfile.SECRET_VARIABLE) or values.get(envfile.SECRET_VARIABLE, "")
named = os.environ.get(envfile.SECRET_FILE_VARIABLE) or values.get(envfile.SECRET_FILE_VARIABLE, "")
if not secret and named:
    secret = Path(named).read_text(encoding="utf-8").rstrip("\r\n")
if not secret:
    envfile.ensure_secret(path, {})
    secret = envfile.parse(path.read_text(encoding="utf-8"))[envfile.SECRET_VARIABLE]
    print(f"stack: generated a shared secret into {path} ({envfile.SECRET_VARIABLE})", file=sys.stderr)
sys.stdout.write(secret)
PY
}

ensure_secret() {
  if m secret inspect "$DOCKER_RUNNER_SECRET_NAME" >/dev/null 2>&1; then
    say "the Swarm secret $DOCKER_RUNNER_SECRET_NAME exists: kept (stack.sh down removes it)"
    return 0
  fi
  local secret
  secret=$(secret_value) || die "cannot read the shared secret"
  [ -n "$secret" ] || die "the shared secret is empty"
  printf '%s' "$secret" | m secret create --label "$NAMESPACE_LABEL=$STACK_NAME" \
    "$DOCKER_RUNNER_SECRET_NAME" - >/dev/null || die "cannot create the Swarm secret $DOCKER_RUNNER_SECRET_NAME"
}

stack_services() { m service ls --filter "label=$NAMESPACE_LABEL=$STACK_NAME" --format '{{.Name}} {{.Replicas}}'; }

all_running() {   # every service "N/N" with N > 0 (a running task has passed its healthcheck)
  local lines name replicas
  lines=$(stack_services) || return 1
  [ -n "$lines" ] || return 1
  while read -r name replicas; do
    [[ $replicas =~ ^([0-9]+)/([0-9]+) ]] || return 1
    [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[2]}" -gt 0 ] || return 1
  done <<<"$lines"
}

wait_running() {
  local deadline=$((SECONDS + STACK_WAIT_S))
  until all_running; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      stack_services >&2 || true
      m stack ps --no-trunc --format '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}' "$STACK_NAME" >&2 || true
      die "the stack $STACK_NAME is not running healthy after $STACK_WAIT_S s"
    fi
    sleep 1
  done
  stack_services | sed 's/^/stack: running /' >&2
}

cmd_up() {
  local files=(-c "$REPO/compose/docker-stack.yml") engines=()
  while [ $# -gt 0 ]; do case $1 in
    --monitoring) files+=(-c "$REPO/compose/docker-stack.monitoring.yml"); shift ;;
    --load) [ $# -ge 2 ] || die "--load needs an engine (unix:///..., tcp://..., ssh://...)"; engines+=("$2"); shift 2 ;;
    *) die "unknown argument '$1'" ;; esac; done
  [ "$(m info --format '{{.Swarm.ControlAvailable}}')" = true ] || die "$MANAGER is not a Swarm manager"
  [ "${BUILD:-1}" = 0 ] || build_images
  [ "${#engines[@]}" = 0 ] || load_images "${engines[@]}"
  ensure_secret
  # no registry: the nodes run the images they have (never resolved to a registry's digest)
  m stack deploy --resolve-image never "${files[@]}" "$STACK_NAME" >/dev/null
  wait_running
}

stack_left() {   # what of the stack is still there, one line each
  m service ls -q --filter "label=$NAMESPACE_LABEL=$STACK_NAME"
  m network ls -q --filter "label=$NAMESPACE_LABEL=$STACK_NAME"
  m config ls -q --filter "label=$NAMESPACE_LABEL=$STACK_NAME"
}

cmd_down() {
  [ $# = 0 ] || die "down takes no argument"
  if [ -n "$(stack_left)" ]; then
    m stack rm "$STACK_NAME" >/dev/null
    # stack rm asks the managers to remove; the network goes once the tasks have stopped
    local deadline=$((SECONDS + STACK_WAIT_S))
    while [ -n "$(stack_left)" ]; do
      [ "$SECONDS" -lt "$deadline" ] || die "the stack $STACK_NAME is still there after $STACK_WAIT_S s"
      m network ls -q --filter "label=$NAMESPACE_LABEL=$STACK_NAME" | xargs -r docker -H "$MANAGER" network rm >/dev/null 2>&1 || true
      sleep 1
    done
  fi
  if m secret inspect "$DOCKER_RUNNER_SECRET_NAME" >/dev/null 2>&1; then
    m secret rm "$DOCKER_RUNNER_SECRET_NAME" >/dev/null
  fi
  say "removed the stack $STACK_NAME and the secret $DOCKER_RUNNER_SECRET_NAME"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  build) [ $# = 1 ] || die "build takes no argument"; build_images ;;
  down) shift; cmd_down "$@" ;;
  *) echo "usage: $0 up [--monitoring] [--load ENGINE]... | build | down" >&2; exit 2 ;;
esac
