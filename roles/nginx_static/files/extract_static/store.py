"""The versioned directory: copies by image id, `current`, pruning."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from extract_static.common import (
    _IMAGE_DIR,
    CURRENT,
    FILES,
    MANIFEST,
    PRECOMPRESS_MIN_BYTES,
    PRECOMPRESS_SUFFIXES,
    ExtractError,
)
from extract_static.dockercli import created_container, image_id, images_in_use
from extract_static.members import Copy
from extract_static.tree import copy_tree

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


def plan_prune(
    dest: Path, keep: int, protected: set[str], current: str | None, in_use: bool, min_age: float = 0
) -> list[str]:
    """Old copies to remove: all but the `keep` newest, never current, never a protected image,
    never one written less than MIN_AGE seconds ago (a redeploy's new copy before the orchestrator
    runs its image), nor (in_use) an image a container was created from: the engine is asked only
    when some copy would otherwise go, so a run with nothing to prune never lists every container."""
    now = time.time()
    versions = [p for p in dest.iterdir() if p.is_dir() and not p.is_symlink() and _IMAGE_DIR.match(p.name)]
    versions = [p for p in versions if now - _extracted_at(p) >= min_age]
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
