"""The command line: arguments, one run, a JSON line for Ansible."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from extract_static.bykey import TREE_NAME, is_linked, link_copy, stale_links, unlink_pruned
from extract_static.common import CURRENT, DEFAULT_DEST, DEFAULT_PATH_IN_IMAGE, ExtractError
from extract_static.dockercli import image_id
from extract_static.store import (
    _keep_ids,
    current_target,
    extract,
    is_complete,
    leftovers,
    locked,
    plan_prune,
    switch_current,
)


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
    if args.prune_only:
        return _changed(prune_only(args, dest, name, protected, result))
    if args.check:
        exists = dest.is_dir()
        result["extracted"] = not (exists and is_complete(dest / name, full_id))
        result["switched"] = not exists or current_target(dest) != name
        if exists:
            result["removed"] = plan_prune(dest, args.keep, protected, name, args.keep_in_use, args.min_age)
        if args.images_dir:
            result["linked"] = not is_linked(Path(args.images_dir), args.tree, dest, name)
            result["unlinked"] = [p.parent.name for p in stale_links(Path(args.images_dir), args.tree)]
        return _changed(result)

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
        if args.images_dir:  # linked before anything is pruned: nginx never loses the copy in use
            result["linked"] = link_copy(Path(args.images_dir), args.tree, dest, name)
        for old in plan_prune(dest, args.keep, protected, name, args.keep_in_use, args.min_age):
            shutil.rmtree(dest / old)
            result["removed"].append(old)
        if args.images_dir:
            result["unlinked"] = unlink_pruned(Path(args.images_dir), args.tree)
    return _changed(result)


def prune_only(
    args: argparse.Namespace, dest: Path, name: str, protected: set[str], result: dict[str, Any]
) -> dict[str, Any]:
    """Remove the copies (and links) of images no container runs, the configured image's (NAME)
    kept; `current` is not kept for itself: the configured image may have no such tree at all."""
    if not dest.is_dir():
        return result
    if args.check:
        result["removed"] = plan_prune(dest, args.keep, protected, name, args.keep_in_use, args.min_age)
        if args.images_dir:
            result["unlinked"] = [p.parent.name for p in stale_links(Path(args.images_dir), args.tree)]
        return result
    with locked(dest):
        for old in plan_prune(dest, args.keep, protected, name, args.keep_in_use, args.min_age):
            shutil.rmtree(dest / old)
            result["removed"].append(old)
        if (dest / CURRENT).is_symlink() and not (dest / CURRENT).exists():
            (dest / CURRENT).unlink()
        if args.images_dir:
            result["unlinked"] = unlink_pruned(Path(args.images_dir), args.tree)
    return result


def _changed(result: dict[str, Any]) -> dict[str, Any]:
    result["changed"] = any(result.get(k) for k in ("extracted", "switched", "removed", "linked", "unlinked"))
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
    parser.add_argument(
        "--images-dir",
        default="",
        metavar="DIR",
        help="also link DIR/<first 12 hex of the image id>/TREE to the copy (nginx reads it by user id)",
    )
    parser.add_argument(
        "--tree", default="", metavar="NAME", help="the link's name under --images-dir (e.g. static_notebook)"
    )
    parser.add_argument(
        "--min-age",
        type=float,
        default=0,
        metavar="SECONDS",
        help="never remove a copy written less than SECONDS ago (default 0)",
    )
    parser.add_argument(
        "--prune-only",
        action="store_true",
        help="extract nothing: remove the copies of images no container runs (--image's kept)",
    )
    parser.add_argument("--check", action="store_true", help="say what would change; change nothing")
    args = parser.parse_args(argv)
    if args.keep < 0:
        parser.error(f"--keep must be 0 or more, got {args.keep}")
    if args.min_age < 0:
        parser.error(f"--min-age must be 0 or more, got {args.min_age:g}")
    if args.max_files < 1 or args.max_bytes < 1:
        parser.error("--max-files and --max-bytes must be 1 or more")
    if not args.image.strip():
        parser.error("--image must not be empty")
    if bool(args.images_dir) != bool(args.tree):
        parser.error("--images-dir and --tree go together")
    if args.tree and not TREE_NAME.match(args.tree):
        parser.error(f"--tree must be a plain name (letters, digits, . _ -), got {args.tree!r}")
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
