"""The docker CLI: image ids, containers in use, a created (never started) container."""

# S603: every subprocess call gets an argument list (no shell) for the docker CLI found on PATH.
# ruff: noqa: S603

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator

from extract_static.common import LABEL, ExtractError

# --- docker CLI ---------------------------------------------------------------------------------


def _docker_cli() -> str:
    path = shutil.which("docker")
    if path is None:
        raise ExtractError("the docker CLI is not installed (needed to copy files out of the image)")
    return path


def _docker(*args: str) -> str:
    proc = subprocess.run([_docker_cli(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ExtractError(f"docker {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def image_id(image: str) -> str:
    """The image's full id (sha256:<64 hex>); a clear error when the engine does not have it."""
    proc = subprocess.run(
        [_docker_cli(), "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip()
        if "No such image" in detail or "No such object" in detail:
            raise ExtractError(
                f"image '{image}' is not in the local Docker engine: build, load or pull it first"
            )
        raise ExtractError(f"cannot inspect image '{image}': {detail}")
    return proc.stdout.strip()


def images_in_use() -> set[str]:
    """Ids of the images of every container on the engine (running or not)."""
    ids = _docker("ps", "-aq", "--no-trunc").split()
    if not ids:
        return set()
    # A container listed may be gone a moment later (tmpnb removes idle ones all the time): docker
    # inspect then prints the others and "No such object" for it. A gone container uses no image.
    proc = subprocess.run(
        [_docker_cli(), "inspect", "--format", "{{.Image}}", *ids],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0 and not (errors and all("No such object" in line for line in errors)):
        raise ExtractError(f"docker inspect failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return set(proc.stdout.split())


@contextlib.contextmanager
def created_container(image: str) -> Iterator[str]:
    """A container created (never started) from the image, removed whatever happens."""
    # The entrypoint is never run: `docker create` needs a command for images that have none.
    cid = _docker(
        "create",
        "--network",
        "none",
        "--label",
        f"{LABEL}=1",
        "--entrypoint",
        "/nonexistent-never-started",
        image,
    )
    try:
        yield cid
    finally:
        subprocess.run([_docker_cli(), "rm", "-f", cid], capture_output=True, check=False)
