#!/usr/bin/env python3
"""Copy a notebook image's static files out of the image, for nginx to serve.

Runs on the tmpnb host as root with python3 and the `docker` CLI only (no third-party module).

    extract_static.py --image tmpnb-notebook:debian-1 --dest /var/lib/tmpnb-static

No container is run: one is created (`docker create`), its files are streamed out with
`docker cp CONTAINER:PATH -`, and it is always removed. The copy lands in DEST/<image-id>/:

    DEST/<image-id>/manifest.json   image id, path, every file with its size and sha256
    DEST/<image-id>/files/...       the static files (what nginx serves)
    DEST/current -> <image-id>      switched atomically (rename of a temporary symlink)

The copy is written to a temporary directory under DEST and renamed into place, so nginx never sees
a half-written tree. Symbolic links in the image are resolved inside the image (Debian's
jupyter-notebook links most of static/components/ to /usr/share/javascript): the copy holds real
files and never points at the host's own /usr/share.

An unchanged image changes nothing. The last line of standard output is a JSON object with
`"changed": true|false` (for Ansible's changed_when). Old copies beyond --keep are removed, but
never the one `current` points to, nor those of images still in use (--keep-image, or every
container's image with --keep-in-use): lesson 8, an old image's containers keep loading their
static files until they are gone.

Exit status: 0 done (changed or not), 1 an error (stated on standard error), 2 bad arguments.
"""

# S603: every subprocess here gets an argument list (no shell) for the docker CLI found on PATH.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

DEFAULT_PATH_IN_IMAGE = "/usr/lib/python3/dist-packages/notebook/static"
DEFAULT_DEST = "/var/lib/tmpnb-static"
MANIFEST = "manifest.json"
FILES = "files"
CURRENT = "current"
LABEL = "org.jupyter.tmpnb.extract-static"
MAX_LINK_DEPTH = 16
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
    return set(_docker("inspect", "--format", "{{.Image}}", *ids).split())


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


@dataclass
class Copy:
    """What one extraction wrote: relative path -> (bytes, sha256); notes for the operator."""

    root: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    max_files: int = 100_000
    max_bytes: int = 1 << 30
    total_bytes: int = 0

    def add(self, rel: str, size: int) -> None:
        """Count one more file of SIZE bytes; a clear error past --max-files or --max-bytes."""
        if len(self.files) + 1 > self.max_files:
            raise ExtractError(f"more than {self.max_files} files to copy (at {rel}): raise --max-files")
        if self.total_bytes + size > self.max_bytes:
            raise ExtractError(f"more than {self.max_bytes} bytes to copy (at {rel}): raise --max-bytes")
        self.total_bytes += size


def _relative(name: str) -> PurePosixPath | None:
    """A tar member's path below the archive's top entry; None for the top entry itself."""
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise ExtractError(f"unsafe path in the archive from docker cp: {name!r}")
    rel = [p for p in PurePosixPath(name).parts if p != "."][1:]
    return PurePosixPath(*rel) if rel else None


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


def _stream(cid: str, path_in_image: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Members of `docker cp -L CID:PATH -` (a tar stream; -L follows PATH if it is a link)."""
    proc = subprocess.Popen(
        [_docker_cli(), "cp", "-L", f"{cid}:{path_in_image}", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                yield tar, member
    except tarfile.ReadError:
        pass  # an empty stream: the error is in docker's exit status, read below
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        if "Could not find the file" in err or "No such container:path" in err:
            raise FileNotFoundError(path_in_image)
        raise ExtractError(f"docker cp {path_in_image} failed: {err}")


def _link_target(member_path: str, linkname: str) -> str:
    """Where a link points inside the image, resolved lexically (for loop detection only)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(member_path), linkname))


def _within(path: str, ancestor: str) -> bool:
    """PATH is ANCESTOR or below it (`/` is an ancestor of every path: `"/" + "/"` matches none)."""
    return ancestor == "/" or path == ancestor or path.startswith(ancestor + "/")


def copy_tree(
    cid: str,
    path_in_image: str,
    copy: Copy,
    below: PurePosixPath,
    chain: tuple[str, ...] = (),
    real: str | None = None,
) -> None:
    """Copy PATH (file or directory) from the container to copy.root/below, resolving links.

    docker reads PATH (links in it resolved inside the image); `real` is where PATH points, resolved
    lexically, and chain holds the `real` paths being copied around this call, so that a link back
    into one of them (a loop) is left out instead of being copied again and again.
    """
    real = real or posixpath.normpath(path_in_image)
    chain = (*chain, real)
    links: list[tuple[PurePosixPath, str, str]] = []
    hardlinks: list[tuple[PurePosixPath, PurePosixPath]] = []
    for tar, member in _stream(cid, path_in_image):
        rel = _relative(member.name)
        dest_rel = below / rel if rel else below
        target = copy.root / dest_rel
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o755)
        elif member.isreg():
            copy.add(dest_rel.as_posix(), member.size)
            src = tar.extractfile(member)
            assert src is not None
            copy.files[dest_rel.as_posix()] = _write_file(src, target, member.mtime)
        elif member.issym():
            member_path = f"{path_in_image}/{rel.as_posix()}" if rel else path_in_image
            member_real = f"{real}/{rel.as_posix()}" if rel else real
            points_to = _link_target(member_real, member.linkname)
            if _within(member_real, points_to):  # a link to itself or one of its parents (or /)
                copy.loops.append(dest_rel.as_posix())
            else:
                links.append((dest_rel, member_path, points_to))
        elif member.islnk():
            linked = _relative(member.linkname)
            if linked is None:
                raise ExtractError(f"hard link to the top of the archive: {member.name!r}")
            hardlinks.append((dest_rel, below / linked))
        else:
            copy.skipped.append(dest_rel.as_posix())
    for dest_rel, source in hardlinks:
        copy.add(dest_rel.as_posix(), copy.files[source.as_posix()][0])
        shutil.copy2(copy.root / source, copy.root / dest_rel)
        copy.files[dest_rel.as_posix()] = copy.files[source.as_posix()]
    for dest_rel, member_path, points_to in links:
        if len(chain) > MAX_LINK_DEPTH or any(_within(c, points_to) for c in chain):
            copy.loops.append(dest_rel.as_posix())
            continue
        try:
            # docker resolves the link inside the image's root, never on this host.
            copy_tree(cid, member_path, copy, dest_rel, chain, points_to)
        except FileNotFoundError:
            copy.unresolved.append(dest_rel.as_posix())


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
    for entry in manifest.get("files", []):
        try:
            if (files / entry["path"]).stat().st_size != entry["bytes"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


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
                copy_tree(cid, path_in_image, copy, PurePosixPath("."))
            except FileNotFoundError:
                raise ExtractError(
                    f"path '{path_in_image}' does not exist in image '{image}' (set --path-in-image)"
                ) from None
        if not copy.files:
            raise ExtractError(f"path '{path_in_image}' in image '{image}' holds no files")
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
