#!/usr/bin/env bash
# A local Docker Engine for development and the test suite (`make engine`; .ci/run calls it).
#
#   1. installs Debian's docker.io (and a static busybox for the test image) when dockerd is missing
#   2. starts dockerd in the background when nothing answers on the socket, and waits for it
#   3. imports the tiny test image (a static busybox, no registry needed) when it is absent
#
# Idempotent: run it as often as you like. Prints the test image's name last; exits non-zero,
# saying why, when no engine can be had.
#
#   DOCKER_SOCK        the socket to use or start       (default /var/run/docker.sock)
#   RUNNER_TEST_IMAGE  the test image's name            (default runner-test/busybox:latest)
#   DOCKERD_LOG        where a started dockerd logs     (default /tmp/dockerd.log)
set -euo pipefail

SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
IMAGE=${RUNNER_TEST_IMAGE:-runner-test/busybox:latest}
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}

say() { echo "dev-engine: $*" >&2; }
engine() { docker -H "unix://$SOCK" "$@"; }
answers() { engine version >/dev/null 2>&1; }

# ldd fails on a static binary, saying so (its status would fail a pipeline under pipefail)
static_busybox() { [ -x /bin/busybox ] && case $(ldd /bin/busybox 2>&1 || true) in *"not a dynamic"*) true ;; *) false ;; esac; }

install_packages() {
  [ "$(id -u)" = 0 ] || { say "docker.io or busybox-static is missing and installing needs root"; exit 1; }
  say "installing Debian's docker.io, busybox-static and iptables"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io busybox-static iptables >/dev/null
}

start_daemon() {
  say "starting dockerd on $SOCK (log: $LOG)"
  nohup dockerd --host "unix://$SOCK" >"$LOG" 2>&1 &
  for _ in $(seq 1 120); do
    answers && return 0
    sleep 0.5
  done
  say "dockerd did not answer within 60 s; the end of $LOG:"
  tail -20 "$LOG" >&2
  exit 1
}

# the image: busybox with one link per applet (sh, tar, sleep, base64, ...), a passwd with root and
# nobody, /tmp world-writable, /testbed for test runs. Static, so it runs in an otherwise empty image.
import_test_image() {
  local root
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root/bin" "$root/tmp" "$root/testbed" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  chmod 1777 "$root/tmp"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | engine import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' -c 'WORKDIR /' - "$IMAGE" >/dev/null
  say "imported $IMAGE"
}

if ! command -v dockerd >/dev/null 2>&1 || ! static_busybox; then
  install_packages
fi
answers || start_daemon
engine image inspect "$IMAGE" >/dev/null 2>&1 || import_test_image
echo "$IMAGE"
