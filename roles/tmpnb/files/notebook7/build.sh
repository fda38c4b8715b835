#!/bin/sh
# Runs INSIDE a container of the base image (scripts/build-notebook-image.sh --image notebook7
# starts it with this directory mounted read-only and the machine's CA bundle), which
# is then committed as tmpnb-notebook7. Notebook 7 + JupyterLab 4 on jupyter-server, pip-installed
# from requirements.txt (every version pinned) into the venv /opt/notebook, owned by root; tini
# (Debian's) as the entrypoint; user jovyan, uid 1000.
#
# The orchestrator runs it with a read-only root and tmpfs at /home/jovyan, /tmp and /dev/shm, so
# nothing here may need a write outside those at run time: every .pyc is compiled now, Jupyter's
# config/data/runtime dirs stay under $HOME (their defaults), and the system-wide settings below
# keep JupyterLab from wanting to build, check for updates or fetch news.
#
# Argument: the CA bundle pip must trust (the machine's, mounted read-only), if any.
set -eu
if [ -n "${1:-}" ]; then export PIP_CERT="$1"; fi
VENV=/opt/notebook
HERE=$(dirname "$0")
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
# python3-venv only to create the venv (removed below); tini is PID 1's helper at run time.
apt-get install -y -qq --no-install-recommends python3-venv tini >/dev/null
python3 -m venv "$VENV"
# Binary wheels only: no compiler comes into the image and no sdist builds at all.
"$VENV/bin/pip" install --quiet --no-cache-dir --no-compile --only-binary=:all: \
  --requirement "$HERE/requirements.txt"
"$VENV/bin/pip" check
# pip itself cannot install anything at run time (the root is read-only): drop it with the tests
# that ship inside packages and the venv helper package.
"$VENV/bin/pip" uninstall --quiet --yes pip setuptools 2>/dev/null || true
find "$VENV/lib" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
# Compile every module now, once, so no start of a read-only container compiles (or tries to
# write) bytecode.
python3 -m compileall -q -j 0 "$VENV/lib" >/dev/null
apt-get purge -y -qq python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >/dev/null
apt-get autoremove -y -qq >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /root/.cache

# System-wide Jupyter settings (the venv's etc/jupyter, found through sys.prefix): no update check
# or news fetch (no egress from a visitor's container), a read-only extension manager (the root
# cannot be written), no build check.
mkdir -p "$VENV/etc/jupyter"
cp "$HERE/jupyter_server_config.json" "$VENV/etc/jupyter/jupyter_server_config.json"

id jovyan >/dev/null 2>&1 \
  || useradd --create-home --home-dir /home/jovyan --uid 1000 --user-group --shell /bin/bash jovyan
