"""The copies laid out by URL for nginx (roles/nginx_static): one directory per image key,

    IMAGES/<key>/<tree> -> DEST/<image-id>/files     (a symbolic link per static tree)

where key = the first KEY_LEN hex characters of the image id, the same key the orchestrator puts
in front of each user id (tmpnb.ids): nginx serves /user/<key>-<random>/<prefix>... from
IMAGES/<key>/<tree>, the copy of the very image that visitor's container runs, and falls back to
CHP when the file (or the key) is not there. A link is renamed into place (atomic); a link whose
copy was pruned is removed, and a key directory left empty with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from extract_static.common import FILES

KEY_LEN = 12  # as tmpnb.ids.KEY_LEN and the key in roles/nginx_static's locations
TREE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@contextlib.contextmanager
def _locked(images: Path) -> Iterator[None]:
    """Trees of one image share its key directory: one run at a time creates or removes them."""
    images.mkdir(parents=True, exist_ok=True)
    images.chmod(0o755)
    with open(images / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def link_target(dest: Path, name: str) -> str:
    return str((dest / name / FILES).absolute())


def is_linked(images: Path, tree: str, dest: Path, name: str) -> bool:
    link = images / name[:KEY_LEN] / tree
    return link.is_symlink() and os.readlink(link) == link_target(dest, name)


def link_copy(images: Path, tree: str, dest: Path, name: str) -> bool:
    """IMAGES/<key>/TREE -> DEST/NAME/files; True when it was made or changed."""
    if is_linked(images, tree, dest, name):
        return False
    with _locked(images):
        key_dir = images / name[:KEY_LEN]
        key_dir.mkdir(exist_ok=True)
        key_dir.chmod(0o755)
        tmp = key_dir / f".{tree}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(link_target(dest, name))
        tmp.rename(key_dir / tree)
    return True


def stale_links(images: Path, tree: str) -> list[Path]:
    """Links of TREE whose copy is gone (pruned)."""
    if not images.is_dir():
        return []
    return sorted(d / tree for d in images.iterdir() if (d / tree).is_symlink() and not (d / tree).exists())


def unlink_pruned(images: Path, tree: str) -> list[str]:
    """Remove the links of TREE whose copy is gone, and key directories left empty; the keys."""
    removed: list[str] = []
    if not images.is_dir():
        return removed
    with _locked(images):
        for link in stale_links(images, tree):
            link.unlink()
            removed.append(link.parent.name)
        for key_dir in images.iterdir():
            if key_dir.is_dir() and not key_dir.is_symlink():
                with contextlib.suppress(OSError):  # not empty: another tree's copy is still there
                    key_dir.rmdir()
    return removed
