#!/usr/bin/env bash
# Build the systemd test-host base image (Debian 12 + systemd + python3) with debootstrap,
# import it into the local Docker engine, and do nothing when it is already there.
# No registry is reachable from these machines, so the image is built locally and cached.
set -euo pipefail

IMAGE="${TMPNB_BASE_IMAGE:-tmpnb-testhost:bookworm-1}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,procps,iproute2"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> base image $IMAGE present (cached)"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || "$(dirname "$0")/apt-install.sh" debootstrap

root=$(mktemp -d /var/tmp/tmpnb-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "==> debootstrap bookworm into $root (about 70 s)"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; echo "ERROR: debootstrap failed (log above)" >&2; exit 1; }
rm -f "$root.log"
# A test host boots systemd as PID 1: no getty on a console it does not have.
rm -f "$root"/etc/systemd/system/getty.target.wants/* \
      "$root"/lib/systemd/system/multi-user.target.wants/getty.target
: >"$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# Empty package lists must not look fresh: apt's cache_valid_time reads the lists directory's
# mtime, and an image built minutes ago would otherwise skip the first `apt-get update`.
touch -d @0 "$root/var/lib/apt/lists"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/sbin/init"]' --change 'ENV container=docker' - "$IMAGE" >/dev/null
echo "==> built $IMAGE"
