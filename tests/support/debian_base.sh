#!/usr/bin/env bash
# Make the image debian:bookworm-slim available to `docker build` without a registry.
#   - does nothing when the tag already exists (pulled by an operator, or built here before)
#   - otherwise bootstraps a minimal Debian bookworm with debootstrap (installed with apt when
#     missing) and imports it as debian:bookworm-slim
# Idempotent: safe to run before every image build. Needs root (debootstrap) only when it builds.
# Settings: DEBIAN_BASE_IMAGE (default debian:bookworm-slim), DEBIAN_MIRROR (default
# http://deb.debian.org/debian), DOCKER_SOCK (default /var/run/docker.sock).
set -euo pipefail

IMAGE=${DEBIAN_BASE_IMAGE:-debian:bookworm-slim}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
docker_() { docker -H "unix://$SOCK" "$@"; }

if docker_ image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

root=$(mktemp -d /tmp/debian-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "debian_base: bootstrapping $IMAGE from $MIRROR (a few minutes)" >&2
if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1; then
  echo "debian_base: debootstrap failed; last lines of $root.log:" >&2
  tail -20 "$root.log" >&2
  exit 1
fi
rm -f "$root.log"

# What the registry's slim image has too: the updates and security suites, no documentation from
# later installs, no kept package archives or lists.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* "$root"/var/log/*.log

tar -C "$root" --numeric-owner -c . | docker_ import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "$IMAGE"
