#!/usr/bin/env python3
"""Copy a notebook image's static files out of the image, for nginx to serve.

Runs on the tmpnb host as root with python3 and the `docker` CLI only (no third-party module).

    extract_static.py --image tmpnb-notebook:debian-1 --dest /var/lib/tmpnb-static

No container is run: one is created (`docker create`), its files are streamed out with
`docker cp CONTAINER:PATH -`, and it is always removed. The copy lands in DEST/<image-id>/:

    DEST/<image-id>/manifest.json   image id, path, every file with its size and sha256, every link
    DEST/<image-id>/files/...       the static files (what nginx serves)
    DEST/current -> <image-id>      switched atomically (rename of a temporary symlink)

The copy is written to a temporary directory under DEST and renamed into place, so nginx never sees
a half-written tree. Symbolic links in the image are resolved inside the image as the image resolves
them, one component at a time, links among a link's parents and chains of links included (Debian's
jupyter-notebook links most of static/components/ to /usr/share/javascript): nothing in the copy
points at the host's own /usr/share. A link that lands on `/`, on a parent of the static directory
or of itself, or goes round a cycle of links, is a loop: left out and reported, as is a dangling one.

Each path of the image is copied once. A later link to it (siblings a -> d, b -> d; the same file
linked twice), or a later link to a directory holding it, becomes a relative symbolic link inside the
copy to that first copy: the copy stays as large as what the image holds, where copying every link
again grew it as 2**levels. Symbolic links rather than hard links: a hard link cannot name a
directory, so each directory would still be made again, its entries multiplied. nginx follows them
(roles/nginx_static sets no `disable_symlinks`); none points outside the copy or at one of its own
parents, and the manifest lists them.

An unchanged image changes nothing. The last line of standard output is a JSON object with
`"changed": true|false` (for Ansible's changed_when). Old copies beyond --keep are removed, but
never the one `current` points to, nor those of images still in use (--keep-image, or every
container's image with --keep-in-use): an old image's containers keep loading their
static files until they are gone.

Exit status: 0 done (changed or not), 1 an error (stated on standard error), 2 bad arguments.
"""

# S603: every subprocess here gets an argument list (no shell) for the docker CLI found on PATH.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import bisect
import contextlib
import fcntl
import gzip
import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

DEFAULT_PATH_IN_IMAGE = "/usr/lib/python3/dist-packages/notebook/static"
DEFAULT_DEST = "/var/lib/tmpnb-static"
MANIFEST = "manifest.json"
FILES = "files"
CURRENT = "current"
LABEL = "org.jupyter.tmpnb.extract-static"
PREFETCH_WORKERS = 4  # docker cp calls at once while reading what the pending links go through
MAX_LINK_HOPS = 40  # links followed on one path before it is a loop, as Linux (ELOOP)
MAX_CYCLE_CHECK = 10_000  # links of the copy looked at to tell whether a new one closes a cycle
# Files nginx would otherwise compress on every request (gzip on): a .gz beside each, made once here,
# is sent as it is (gzip_static on in roles/nginx_static). Measured by `python -m bench static`.
PRECOMPRESS_SUFFIXES = frozenset({".js", ".css", ".json", ".map", ".svg", ".html", ".txt", ".xml", ".mjs"})
PRECOMPRESS_MIN_BYTES = 1024
_IMAGE_DIR = re.compile(r"^[0-9a-f]{64}$")


class ExtractError(Exception):
    """An error to report to the operator (one line: what was wrong, what to do)."""


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


class _Tree:
    """The static tree copied out of a created container, each link resolved as the image resolves it.

    Paths are resolved one component at a time, like realpath(3) inside the image's root: what a
    path is (directory, file, or link and its target) comes from the archives already read, else from
    `docker cp CONTAINER:PATH -` stopped after its first entry. So a link to a link to `/`, a chain
    through links outside the static path, or `../../..` climbing above the root (which stays at `/`)
    lands where it lands in the image.

    Each real path of the image is copied once: `placed` says where its copy went, and a later link to
    it (or a later archive holding it again: a link to a parent of something copied) becomes a
    relative link inside the copy to that first copy. Links are followed breadth first, so the first
    copy is the one nearest the top. No link in the copy points outside it or closes a cycle in it.
    """

    def __init__(self, cid: str, static: str, copy: Copy) -> None:
        self.cid = cid
        self.static = static
        self.copy = copy
        self.kinds: dict[str, tuple[str, str]] = {"/": ("dir", "")}  # real path -> (kind, link target)
        self.placed: dict[str, str] = {}  # real path in the image -> its copy, relative to copy.root
        self.root = ""  # the static directory's real path in the image
        self.pending: deque[tuple[str, str, str]] = deque()  # (copy path, link's real path, its target)
        self.fetched = 0  # how many of the pending links prefetch() has looked at
        self.link_to: dict[str, str] = {}  # links made in the copy -> the copy path they name
        self.link_paths: list[str] = []  # the same links, sorted (those below a directory: a slice)

    def _note(self, path: str, member: tarfile.TarInfo) -> None:
        if member.issym():
            self.kinds[path] = ("link", member.linkname)
        else:
            self.kinds[path] = ("dir" if member.isdir() else "file", "")

    def _top(self, stream: Iterator[Member], path: str) -> Member:
        """The archive's first entry (PATH itself), noted; _Dangling when PATH is not in the image."""
        try:
            tar, top = next(stream)
        except (FileNotFoundError, StopIteration):
            self.kinds[path] = ("missing", "")
            raise _Dangling(path) from None
        self._note(path, top)
        return tar, top

    def kind(self, path: str) -> tuple[str, str]:
        """What PATH (its parents real) is in the image: (dir|file|link|missing, link target)."""
        if path not in self.kinds:
            with contextlib.closing(_stream(self.cid, path)) as stream, contextlib.suppress(_Dangling):
                self._top(stream, path)
        return self.kinds[path]

    def prefetch(self, paths: list[str] | None = None) -> None:
        """Read, a few at a time, what the parents of PATHS (default: what the links not yet looked at
        name) are by their text: `resolve` then mostly finds them known. Only a guess: a link among
        them is followed as usual, and a path the image lacks is just left to `resolve`."""
        if paths is None:
            paths = [posixpath.join(posixpath.dirname(where), target) for _, where, target in self.pending]
            paths = paths[self.fetched :]
            self.fetched = len(self.pending)
        wanted: set[str] = set()
        for text in paths:
            path = posixpath.dirname(posixpath.normpath(text))
            while path not in self.kinds and path not in wanted:
                wanted.add(path)
                path = posixpath.dirname(path)
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=PREFETCH_WORKERS) as pool:
            for guess in sorted(wanted):
                pool.submit(self.kind, guess)  # a failure only leaves the guess unknown: read again later

    def resolve(self, start: str, target: str, hops: int) -> tuple[str, int]:
        """START (a real directory) joined with TARGET, every link on the way followed; not the last
        component, which the caller reads (an archive's top entry says whether it is a link)."""
        done = "/" if target.startswith("/") else start
        todo = _parts(target)
        while todo:
            part = todo.pop()
            if part == "..":  # `done` holds no link, so its parent is the real one (`/..` is `/`)
                done = posixpath.dirname(done)
                continue
            path = posixpath.join(done, part)
            if not todo:
                return path, hops
            kind, link = self.kind(path)
            if kind == "link":
                hops = self._hop(hops)
                done = "/" if link.startswith("/") else done
                todo.extend(_parts(link))
            elif kind == "dir":
                done = path
            else:
                raise _Dangling(path)
        return done, hops

    @staticmethod
    def _hop(hops: int) -> int:
        if hops >= MAX_LINK_HOPS:
            raise _TooManyLinks
        return hops + 1

    def place(self, dest: str, start: str, target: str, where: str | None) -> None:
        """Fill DEST in the copy with what the link at WHERE (real path; None for the static directory
        itself) points to: START/TARGET resolved. A copy, a link to the first copy, or a loop."""
        path, hops = self.resolve(start, target, 0)
        while True:
            kind, link = self.kinds.get(path, ("unknown", ""))
            if kind == "missing":
                raise _Dangling(path)
            if kind == "link":
                path, hops = self.resolve(posixpath.dirname(path), link, self._hop(hops))
                continue
            if kind != "unknown" and self._elsewhere(dest, path, where):
                return  # known without reading the image again
            with contextlib.closing(_stream(self.cid, path)) as stream:
                first = self._top(stream, path)
                if first[1].issym():
                    continue  # noted as a link: followed above
                if where is None and not first[1].isdir():
                    raise ExtractError(
                        f"'{self.static}' is not a directory in the image: set --path-in-image"
                    )
                if not self._elsewhere(dest, path, where):
                    self._write(itertools.chain([first], stream), path, dest)
                return

    def _elsewhere(self, dest: str, path: str, where: str | None) -> bool:
        """Whether DEST is done without copying PATH (real, not a link): a loop, left out, when PATH is
        `/`, a parent of the static directory or of the link itself; a link when PATH is copied already."""
        if where is None:
            if path == "/":
                raise ExtractError(
                    f"'{self.static}' is the image's root directory (links followed): set --path-in-image"
                )
            self.root = path
            return False
        if path == "/" or _within(self.root, path) or _within(where, path):
            self.copy.loops.append(dest)
            return True
        if path in self.placed:
            self._link(dest, self.placed[path])
            return True
        return False

    def _link(self, dest: str, first: str) -> None:
        """DEST becomes a relative link to FIRST, the copy of the same path of the image. A link that
        would close a cycle in the copy (FIRST holds DEST, or links on to what holds it: x/a -> y,
        y/b -> x) is left out as a loop instead, so that following the copy's links always ends."""
        if first == "." or self._reaches(first, dest):
            self.copy.loops.append(dest)
            return
        self.copy.add(dest, 0)
        rel = posixpath.relpath(posixpath.join("/", first), posixpath.join("/", posixpath.dirname(dest)))
        (self.copy.root / dest).symlink_to(rel)
        self.copy.links[dest] = rel
        self.link_to[dest] = first
        bisect.insort(self.link_paths, dest)

    def _reaches(self, start: str, dest: str) -> bool:
        """Whether following the copy from START (copy path) can come to DEST: START holds it, or holds
        a link to what does, and so on. Past MAX_CYCLE_CHECK links looked at, it is taken to (a loop)."""
        todo, seen, looked = [start], {start}, 0
        while todo:
            top = todo.pop()
            if _within(dest, top):
                return True
            # The links below TOP: sorted, they run from TOP + "/" to TOP + "0" ("0" follows "/").
            low = bisect.bisect_left(self.link_paths, top + "/")
            for link in self.link_paths[low : bisect.bisect_left(self.link_paths, top + "0")]:
                looked += 1
                if looked > MAX_CYCLE_CHECK:
                    return True
                if self.link_to[link] not in seen:
                    seen.add(self.link_to[link])
                    todo.append(self.link_to[link])
        return False

    def _write(self, members: Iterator[Member], path: str, dest: str) -> None:
        """Copy the archive of PATH (real) to DEST; its links wait in `pending`, breadth first."""
        copy = self.copy
        skip = ""  # a directory copied before: its entries in this archive are not copied again
        hardlinks: list[tuple[str, str, str]] = []
        for tar, member in members:
            rel = _relative(member.name)
            real = _join(path, rel)
            if skip and _within(real, skip):
                continue
            out = _join(dest, rel)
            self._note(real, member)
            if real in self.placed:
                self._link(out, self.placed[real])
                skip = real
            elif member.isdir():
                (copy.root / out).mkdir(parents=True, exist_ok=True)
                (copy.root / out).chmod(0o755)
                self.placed[real] = out
            elif member.isreg():
                copy.add(out, member.size)
                src = tar.extractfile(member)
                assert src is not None
                copy.files[out] = _write_file(src, copy.root / out, member.mtime)
                self.placed[real] = out
            elif member.issym():
                self.pending.append((out, real, member.linkname))
            elif member.islnk():
                linked = _relative(member.linkname)
                if not linked:
                    raise ExtractError(f"hard link to the top of the archive: {member.name!r}")
                hardlinks.append((out, real, _join(path, linked)))
            else:
                copy.skipped.append(out)
        for out, real, source in hardlinks:
            first = self.placed.get(source, "")
            if first not in copy.files:
                copy.skipped.append(out)
                continue
            copy.add(out, copy.files[first][0])
            shutil.copy2(copy.root / first, copy.root / out)
            copy.files[out] = copy.files[first]
            self.placed[real] = out


def copy_tree(cid: str, path_in_image: str, copy: Copy) -> None:
    """Copy PATH_IN_IMAGE (resolved in the image) from the container to copy.root, links resolved
    (see _Tree). FileNotFoundError when the path is not in the image."""
    tree = _Tree(cid, path_in_image, copy)
    tree.prefetch([path_in_image])
    try:
        tree.place(".", "/", path_in_image, None)
    except _Dangling:
        raise FileNotFoundError(path_in_image) from None
    except _TooManyLinks:
        raise ExtractError(f"path '{path_in_image}' goes through a loop of links in the image") from None
    while tree.pending:
        tree.prefetch()
        dest, where, target = tree.pending.popleft()
        tree.fetched -= 1
        try:
            tree.place(dest, posixpath.dirname(where), target, where)
        except _Dangling:
            copy.unresolved.append(dest)
        except _TooManyLinks:
            copy.loops.append(dest)


# --- the versioned directory ---------------------------------------------------------------------


def _load_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(directory: Path, full_id: str) -> bool:
    """The directory holds the image's copy as its manifest describes it (sizes checked)."""
    manifest = _load_manifest(directory)
    if not manifest or manifest.get("image_id") != full_id:
        return False
    files = directory / FILES
    try:
        for entry in manifest.get("files", []):
            if (files / entry["path"]).lstat().st_size != entry["bytes"]:
                return False
        for entry in manifest.get("links", []):
            if os.readlink(files / entry["path"]) != entry["target"]:
                return False
    except (OSError, KeyError, TypeError):
        return False
    return True


def precompress(files: Path, copied: dict[str, tuple[int, str]]) -> int:
    """Write FILE.gz beside every copied compressible file of at least PRECOMPRESS_MIN_BYTES (same
    mtime, so nginx's gzip_static answers with the same Last-Modified). Returns how many."""
    count = 0
    for rel, (size, _) in copied.items():
        if size < PRECOMPRESS_MIN_BYTES or PurePosixPath(rel).suffix.lower() not in PRECOMPRESS_SUFFIXES:
            continue
        source = files / rel
        target = source.with_name(source.name + ".gz")
        if target.exists() or target.is_symlink():  # the image ships its own .gz: keep it
            continue
        with (
            open(source, "rb") as src,
            open(target, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out,
        ):
            shutil.copyfileobj(src, out, 1 << 20)
        target.chmod(0o644)
        mtime = source.stat().st_mtime
        os.utime(target, (mtime, mtime))
        count += 1
    return count


def extract(image: str, full_id: str, path_in_image: str, dest: Path, max_files: int, max_bytes: int) -> Copy:
    """Write the image's copy into a temporary directory and rename it to DEST/<id>."""
    name = full_id.removeprefix("sha256:")
    tmp = dest / f".tmp-{name[:12]}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / FILES).mkdir(parents=True)
    copy = Copy(root=tmp / FILES, max_files=max_files, max_bytes=max_bytes)
    try:
        with created_container(image) as cid:
            try:
                copy_tree(cid, path_in_image, copy)
            except FileNotFoundError:
                raise ExtractError(
                    f"path '{path_in_image}' does not exist in image '{image}' (set --path-in-image)"
                ) from None
        if not copy.files:
            raise ExtractError(f"path '{path_in_image}' in image '{image}' holds no files")
        copy.precompressed = precompress(tmp / FILES, copy.files)
        manifest = {
            "image": image,
            "image_id": full_id,
            "path_in_image": path_in_image,
            "extracted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "file_count": len(copy.files),
            "total_bytes": sum(size for size, _ in copy.files.values()),
            "unresolved_links": sorted(copy.unresolved),
            "looping_links": sorted(copy.loops),
            "skipped": sorted(copy.skipped),
            "files": [
                {"path": path, "bytes": size, "sha256": digest}
                for path, (size, digest) in sorted(copy.files.items())
            ],
            "precompressed": copy.precompressed,
            "link_count": len(copy.links),
            "links": [{"path": path, "target": target} for path, target in sorted(copy.links.items())],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        (tmp / MANIFEST).chmod(0o644)
        tmp.chmod(0o755)
        final = dest / name
        if final.exists():  # an incomplete leftover: move it away, then drop it
            stale = dest / f".stale-{name[:12]}-{os.getpid()}"
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    copy.root = final / FILES
    return copy


def current_target(dest: Path) -> str | None:
    link = dest / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def switch_current(dest: Path, name: str) -> None:
    """Point DEST/current at DEST/<name>: a new symlink renamed over the old one (atomic)."""
    tmp = dest / f".{CURRENT}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(name)
    tmp.rename(dest / CURRENT)


def _keep_ids(keep_images: list[str]) -> set[str]:
    """Ids (or id prefixes) of the images named by --keep-image; a name the engine lacks is an error."""
    ids: set[str] = set()
    for ref in keep_images:
        hexid = ref.removeprefix("sha256:").lower()
        if re.fullmatch(r"[0-9a-f]{12,64}", hexid):
            ids.add(hexid)
        else:  # an image name: its id, if the engine still has it
            try:
                ids.add(image_id(ref).removeprefix("sha256:"))
            except ExtractError as exc:
                raise ExtractError(f"--keep-image {ref!r}: {exc}") from None
    return ids


def _extracted_at(directory: Path) -> float:
    """When the copy was written (its manifest's mtime); 0 for a copy without one."""
    try:
        return (directory / MANIFEST).stat().st_mtime
    except OSError:
        return 0.0


def plan_prune(dest: Path, keep: int, protected: set[str], current: str | None, in_use: bool) -> list[str]:
    """Old copies to remove: all but the `keep` newest, never current, never a protected image,
    nor (in_use) an image a container was created from: the engine is asked only when some copy
    would otherwise go, so a run with nothing to prune never lists every container."""
    versions = [p for p in dest.iterdir() if p.is_dir() and not p.is_symlink() and _IMAGE_DIR.match(p.name)]
    versions.sort(key=_extracted_at, reverse=True)
    old = [p.name for p in versions if p.name != current]
    removable = [n for n in old[keep:] if not any(n.startswith(k) for k in protected)]
    if removable and in_use:
        used = {i.removeprefix("sha256:") for i in images_in_use()}
        removable = [n for n in removable if n not in used]
    return removable


def leftovers(dest: Path) -> list[Path]:
    """Temporary entries of interrupted runs (we hold the lock, so none is being written)."""
    return [p for p in dest.iterdir() if p.name.startswith((".tmp-", ".stale-", f".{CURRENT}.tmp-"))]


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    with open(dest / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run(args: argparse.Namespace) -> dict[str, Any]:
    dest = Path(args.dest)
    full_id = image_id(args.image)
    name = full_id.removeprefix("sha256:")
    if not args.path_in_image.startswith("/"):
        raise ExtractError(f"--path-in-image must be absolute, got '{args.path_in_image}'")
    protected = _keep_ids(args.keep_image)
    result: dict[str, Any] = {
        "changed": False,
        "check_mode": args.check,
        "image": args.image,
        "image_id": full_id,
        "dest": str(dest),
        "path": str(dest / name),
        "current": str(dest / CURRENT),
        "extracted": False,
        "switched": False,
        "removed": [],
    }
    if args.check:
        exists = dest.is_dir()
        result["extracted"] = not (exists and is_complete(dest / name, full_id))
        result["switched"] = not exists or current_target(dest) != name
        if exists:
            result["removed"] = plan_prune(dest, args.keep, protected, name, args.keep_in_use)
        result["changed"] = bool(result["extracted"] or result["switched"] or result["removed"])
        return result

    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    with locked(dest):
        for stale in leftovers(dest):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        if not is_complete(dest / name, full_id):
            copy = extract(args.image, full_id, args.path_in_image, dest, args.max_files, args.max_bytes)
            result["extracted"] = True
            result["files"] = len(copy.files)
            result["bytes"] = sum(size for size, _ in copy.files.values())
            result["links"] = len(copy.links)
            result["precompressed"] = copy.precompressed
            for key, paths, why in (
                ("unresolved_links", copy.unresolved, "point nowhere"),
                ("looping_links", copy.loops, "loop back into the tree"),
            ):
                if paths:
                    result[key] = sorted(paths)
                    shown = ", ".join(sorted(paths)[:5])
                    print(f"extract_static: warning: links that {why}, left out: {shown}", file=sys.stderr)
        if current_target(dest) != name:
            switch_current(dest, name)
            result["switched"] = True
        for old in plan_prune(dest, args.keep, protected, name, args.keep_in_use):
            shutil.rmtree(dest / old)
            result["removed"].append(old)
    result["changed"] = bool(result["extracted"] or result["switched"] or result["removed"])
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Copy a notebook image's static files out of the image (no container is run).",
    )
    parser.add_argument("--image", required=True, help="image name or id, e.g. tmpnb-notebook:debian-1")
    parser.add_argument(
        "--path-in-image",
        default=DEFAULT_PATH_IN_IMAGE,
        help=f"the notebook server's static directory inside the image (default {DEFAULT_PATH_IN_IMAGE})",
    )
    parser.add_argument("--dest", default=DEFAULT_DEST, help=f"where copies live (default {DEFAULT_DEST})")
    parser.add_argument(
        "--keep",
        type=int,
        default=2,
        metavar="N",
        help="old copies to keep besides current (default 2); those of images in use are kept anyway",
    )
    parser.add_argument(
        "--keep-image",
        action="append",
        default=[],
        metavar="ID",
        help="an image (id, id prefix or name) whose copy must stay: its containers still run; repeatable",
    )
    parser.add_argument(
        "--keep-in-use",
        action="store_true",
        help="also keep the copy of every image that a container on this engine was created from",
    )
    parser.add_argument(
        "--max-files", type=int, default=100_000, metavar="N", help="most files to copy (default 100000)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=1 << 30, metavar="N", help="most bytes to copy (default 1 GiB)"
    )
    parser.add_argument("--check", action="store_true", help="say what would change; change nothing")
    args = parser.parse_args(argv)
    if args.keep < 0:
        parser.error(f"--keep must be 0 or more, got {args.keep}")
    if args.max_files < 1 or args.max_bytes < 1:
        parser.error("--max-files and --max-bytes must be 1 or more")
    if not args.image.strip():
        parser.error("--image must not be empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except ExtractError as exc:
        print(f"extract_static: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"extract_static: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
