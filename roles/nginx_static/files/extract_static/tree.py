"""Copying the static tree out of the container, links resolved as the image resolves them."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import posixpath
import shutil
import tarfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from extract_static.common import MAX_CYCLE_CHECK, MAX_LINK_HOPS, PREFETCH_WORKERS, ExtractError
from extract_static.members import (
    Copy,
    Member,
    _Dangling,
    _join,
    _parts,
    _relative,
    _stream,
    _TooManyLinks,
    _within,
    _write_file,
)


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
