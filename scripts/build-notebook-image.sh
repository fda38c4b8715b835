#!/usr/bin/env bash
# Build a notebook image the kit ships on the local engine, and do nothing when it is already there.
#   --image debian     (default) Debian's Notebook 6.4, apt only (roles/tmpnb/files/debian-notebook/
#                      Dockerfile), as tmpnb-notebook:debian-1 (TMPNB_NOTEBOOK_IMAGE overrides).
#   --image notebook7  Notebook 7 + JupyterLab 4 on jupyter-server, pinned pip packages in a venv
#                      (roles/tmpnb/files/notebook7/), as tmpnb-notebook7:1 (TMPNB_NOTEBOOK7_IMAGE).
#   --save             also write .cache/images/<name>-<tag>.tar (when missing or older than the
#                      image): the local inventory loads that tarball into the test host (no registry).
# No registry is reachable here, so both build FROM the locally built test-host base (BASE, default
# tmpnb-testhost:bookworm-1). notebook7 is built with `docker run` + `docker commit` rather than
# `docker build`: pip must reach PyPI through the machine's CA bundle (TMPNB_CA_BUNDLE, default
# /etc/ssl/certs/ca-certificates.crt), which is mounted read-only into the build container only and
# never lands in the image.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="${TMPNB_BASE_IMAGE:-tmpnb-testhost:bookworm-1}"
CA_BUNDLE="${TMPNB_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

variant=debian
save=false
while [ $# -gt 0 ]; do
  case "$1" in
    --save) save=true ;;
    --image) [ $# -ge 2 ] || { echo "ERROR: --image needs a value (debian or notebook7)" >&2; exit 2; }
             variant="$2"; shift ;;
    --image=*) variant="${1#--image=}" ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "ERROR: unknown argument '$1' (expected: --image debian|notebook7, --save)" >&2; exit 2 ;;
  esac
  shift
done
case "$variant" in
  debian)    IMAGE="${TMPNB_NOTEBOOK_IMAGE:-tmpnb-notebook:debian-1}"; CONTEXT=roles/tmpnb/files/debian-notebook ;;
  notebook7) IMAGE="${TMPNB_NOTEBOOK7_IMAGE:-tmpnb-notebook7:1}"; CONTEXT=roles/tmpnb/files/notebook7 ;;
  *) echo "ERROR: unknown image '$variant' (expected: debian or notebook7)" >&2; exit 2 ;;
esac
TARBALL=".cache/images/$(echo "$IMAGE" | tr ':/' '--').tar"

# notebook7: run build.sh in a container of BASE with the context and the CA bundle mounted, then
# commit that container with the image's runtime settings.
build_notebook7() {
  # The bundle's path is build.sh's argument, not the container's environment: `docker commit`
  # would keep that environment in the image.
  local ca_args=() ca_path=""
  build_container="tmpnb-build-notebook7-$$"
  if [ -s "$CA_BUNDLE" ]; then
    ca_path=/tmp/tmpnb-build-ca/ca.crt
    ca_args=(-v "$CA_BUNDLE:$ca_path:ro")
  else
    echo "==> no CA bundle at $CA_BUNDLE: pip uses its own (set TMPNB_CA_BUNDLE for a TLS gateway)"
  fi
  trap 'docker rm -f "$build_container" >/dev/null 2>&1 || true' EXIT
  docker run --name "$build_container" --user 0:0 --entrypoint /bin/sh \
    -v "$PWD/$CONTEXT:/tmp/tmpnb-build:ro" "${ca_args[@]}" "$BASE" /tmp/tmpnb-build/build.sh ${ca_path:+"$ca_path"}
  docker commit \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /home/jovyan' \
    --change 'ENV PATH=/opt/notebook/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 SHELL=/bin/bash HOME=/home/jovyan container=' \
    --change 'ENV TINI_SUBREAPER=1' \
    --change 'EXPOSE 8888' \
    --change 'ENTRYPOINT ["/usr/bin/tini", "--"]' \
    --change 'CMD ["jupyter", "notebook", "--no-browser", "--ip=0.0.0.0", "--port=8888"]' \
    "$build_container" "$IMAGE" >/dev/null
  docker rm "$build_container" >/dev/null
  trap - EXIT
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> notebook image $IMAGE present (cached)"
else
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "ERROR: base image $BASE is missing; build it first (scripts/build-base-image.sh)" >&2
    exit 1
  fi
  echo "==> building $IMAGE from $CONTEXT (BASE=$BASE)"
  start=$(date +%s)
  if [ "$variant" = notebook7 ]; then
    build_notebook7
  else
    docker build --pull=false --build-arg "BASE=$BASE" -t "$IMAGE" "$CONTEXT"
  fi
  echo "==> built $IMAGE in $(( $(date +%s) - start )) s"
fi

if $save; then
  # The tarball is reused while it holds the image as it is now (its id is kept next to it), so a
  # rebuilt image never leaves a stale tarball behind.
  id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
  if [ -s "$TARBALL" ] && [ "$(cat "$TARBALL.id" 2>/dev/null)" = "$id" ]; then
    echo "==> $TARBALL present (cached)"
  else
    mkdir -p "$(dirname "$TARBALL")"
    start=$(date +%s)
    docker save -o "$TARBALL.tmp" "$IMAGE"
    mv "$TARBALL.tmp" "$TARBALL"
    echo "$id" >"$TARBALL.id"
    echo "==> saved $IMAGE to $TARBALL in $(( $(date +%s) - start )) s"
  fi
fi
