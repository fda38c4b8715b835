"""What one extraction copied, and the tar stream `docker cp` writes."""

# S603: every subprocess call gets an argument list (no shell) for the docker CLI found on PATH.
# ruff: noqa: S603

from __future__ import annotations

import hashlib
import os
import posixpath
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from extract_static.common import ExtractError
from extract_static.dockercli import _docker_cli

# --- copying a tree out of the container ----------------------------------------------------------


class _Dangling(Exception):
    """A path that names nothing in the image (or goes through a file as if it were a directory)."""


class _TooManyLinks(Exception):
    """More than MAX_LINK_HOPS links on one path: a cycle of links (a -> b, b -> a), as ELOOP."""


@dataclass
class Copy:
    """What one extraction wrote: relative path -> (bytes, sha256), links made; notes for the operator."""

    root: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    precompressed: int = 0  # .gz files written beside compressible ones
    max_files: int = 100_000
    max_bytes: int = 1 << 30
    total_bytes: int = 0

    def add(self, rel: str, size: int) -> None:
        """Count one more file of SIZE bytes (a link: 0); a clear error past --max-files or --max-bytes."""
        if len(self.files) + len(self.links) + 1 > self.max_files:
            raise ExtractError(f"more than {self.max_files} files to copy (at {rel}): raise --max-files")
        if self.total_bytes + size > self.max_bytes:
            raise ExtractError(f"more than {self.max_bytes} bytes to copy (at {rel}): raise --max-bytes")
        self.total_bytes += size


def _relative(name: str) -> str:
    """A tar member's path below the archive's top entry; "" for the top entry itself."""
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise ExtractError(f"unsafe path in the archive from docker cp: {name!r}")
    return "/".join([p for p in PurePosixPath(name).parts if p != "."][1:])


def _join(base: str, rel: str) -> str:
    """BASE/REL for paths in the copy ("." is its root) or in the image (absolute)."""
    if not rel:
        return base
    return rel if base == "." else posixpath.join(base, rel)


def _parts(path: str) -> list[str]:
    """PATH's components as a stack (the first one last), without empty ones and `.`."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


def _write_file(src: IO[bytes], target: Path, mtime: float) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    target.chmod(0o644)
    os.utime(target, (mtime, mtime))
    return size, digest.hexdigest()


Member = tuple[tarfile.TarFile, tarfile.TarInfo]


def _stream(cid: str, path: str) -> Iterator[Member]:
    """Members of `docker cp CID:PATH -`, a tar stream whose top entry is PATH itself.

    docker follows the links among PATH's parents inside the image's root (never on this host), not
    PATH itself: a link comes as one entry, the link. Closing the generator early stops docker.
    """
    proc = subprocess.Popen(
        [_docker_cli(), "cp", f"{cid}:{path}", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    read_all = False
    try:
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    yield tar, member
        except tarfile.ReadError:
            pass  # an empty stream: the error is in docker's exit status, read below
        read_all = True
    finally:
        if not read_all:  # the reader stopped early (or failed): docker need not send the rest
            proc.kill()
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        if any(
            why in err for why in ("Could not find the file", "No such container:path", "not a directory")
        ):
            raise FileNotFoundError(path)
        raise ExtractError(f"docker cp {path} failed: {err}")


def _within(path: str, ancestor: str) -> bool:
    """PATH is ANCESTOR or below it (`/` is an ancestor of every path: `"/" + "/"` matches none)."""
    return ancestor == "/" or path == ancestor or path.startswith(ancestor + "/")
