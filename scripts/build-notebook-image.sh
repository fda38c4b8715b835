#!/usr/bin/env bash
# Build the notebook image the kit ships (roles/tmpnb/files/debian-notebook/Dockerfile) on the
# local engine as tmpnb-notebook:debian-1, and do nothing when it is already there.
#   --save   also write .cache/images/tmpnb-notebook-debian-1.tar (when missing or older than the
#            image): the local inventory loads that tarball into the test host (no registry).
# No registry is reachable here, so the image builds FROM the locally built test-host base
# (BASE, default tmpnb-testhost:bookworm-1); production builds use the Dockerfile's default.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${TMPNB_NOTEBOOK_IMAGE:-tmpnb-notebook:debian-1}"
BASE="${TMPNB_BASE_IMAGE:-tmpnb-testhost:bookworm-1}"
TARBALL=".cache/images/$(echo "$IMAGE" | tr ':/' '--').tar"
CONTEXT=roles/tmpnb/files/debian-notebook

save=false
for arg in "$@"; do
  case "$arg" in
    --save) save=true ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "ERROR: unknown argument '$arg' (expected: --save)" >&2; exit 2 ;;
  esac
done

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> notebook image $IMAGE present (cached)"
else
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "ERROR: base image $BASE is missing; build it first (scripts/build-base-image.sh)" >&2
    exit 1
  fi
  echo "==> building $IMAGE from $CONTEXT (BASE=$BASE)"
  start=$(date +%s)
  docker build --pull=false --build-arg "BASE=$BASE" -t "$IMAGE" "$CONTEXT"
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
