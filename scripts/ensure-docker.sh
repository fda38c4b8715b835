#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
# On Debian as root with none running: install docker.io and start dockerd in the background
# (there may be no systemd to do it). Anywhere else: say what is missing and how to get it.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "ERROR: no Docker engine answers ('docker info' failed)." >&2
  echo "Start one (e.g. 'sudo systemctl start docker'), or run as root on Debian, where" >&2
  echo "this script installs docker.io and starts dockerd itself." >&2
  exit 1
fi

command -v dockerd >/dev/null 2>&1 || "$(dirname "$0")/apt-install.sh" docker.io

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl start docker
else
  echo "==> starting dockerd in the background (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "==> Docker engine is up"
    exit 0
  fi
  sleep 1
done
echo "ERROR: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
