#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install Debian packages the controller needs, when we can (root on
# Debian); anywhere else, say what is missing and how to get it.
set -euo pipefail
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
  echo "==> installing $* from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
else
  echo "ERROR: missing on this machine: $*. Install them (e.g. 'sudo apt-get install $*')." >&2
  exit 1
fi
