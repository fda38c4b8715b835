"""What the extractor's tests share (roles/nginx_static/files/extract_static): images built here
with the shapes Debian's jupyter-notebook has (nested directories, binary files, links to files and
directories elsewhere in the image, a hard link, a dangling link, a link looping back into the tree),
the script run as the role runs it, and the copy read back."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# run as the role runs it: python3 DIR (the directory holds __main__.py)
SCRIPT = ROOT / "roles" / "nginx_static" / "files" / "extract_static"


BASE = os.environ.get("TMPNB_BASE_IMAGE", "tmpnb-testhost:bookworm-1")


TAG = f"tmpnb-test-extract-static:{os.getpid()}"


LABEL = "org.jupyter.tmpnb.extract-static"


STATIC = "/opt/app/static"


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    ok = subprocess.run(["docker", "image", "inspect", BASE], capture_output=True, check=False)
    return ok.returncode == 0


# What the image holds below STATIC, links resolved: relative path -> bytes.
STATIC_FILES = {
    "index.html": b"<html>tmpnb static test</html>\n",
    "img/logo.bin": bytes(range(256)) * 400,
    "a/b/c/deep.css": b"body { color: #123456; }\n",
}


SHARED_FILES = {
    "lib/x.js": b"define([], function () { return 42; });\n",
    "lib/sub/y.js": b"// y\n" * 1000,
    "one.js": b"console.log('one');\n",
}


EXPECTED = {
    **STATIC_FILES,
    "index-hardlink.html": STATIC_FILES["index.html"],
    "components/lib/x.js": SHARED_FILES["lib/x.js"],
    "components/lib/sub/y.js": SHARED_FILES["lib/sub/y.js"],
    "one.js": SHARED_FILES["one.js"],
    "abs-one.js": SHARED_FILES["one.js"],
}


DOCKERFILE = f"""\
FROM {BASE}
COPY static/ {STATIC}/
COPY shared/ /usr/share/tmpnb-test-shared/
RUN mkdir -p {STATIC}/components \\
 && ln -s ../../../../usr/share/tmpnb-test-shared/lib {STATIC}/components/lib \\
 && ln -s ../../../usr/share/tmpnb-test-shared/one.js {STATIC}/one.js \\
 && ln -s /usr/share/tmpnb-test-shared/one.js {STATIC}/abs-one.js \\
 && ln {STATIC}/index.html {STATIC}/index-hardlink.html \\
 && ln -s /nonexistent/file.js {STATIC}/dangling.js \\
 && ln -s .. {STATIC}/a/b/up
"""


def _build(context: Path, tag: str, dockerfile: str, files: dict[str, dict[str, bytes]]) -> str:
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    for top, tree in files.items():
        for rel, data in tree.items():
            path = context / top / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True)
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=300
    )


def extract(image: str, dest: Path, *extra: str) -> dict:
    proc = run("--image", image, "--path-in-image", STATIC, "--dest", str(dest), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _precompressed(p: Path) -> bool:
    return p.suffix == ".gz" and p.with_suffix("").exists()


def tree(root: Path) -> dict[str, bytes]:
    """The copy as nginx serves it: path -> bytes (the .gz written beside a file left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not _precompressed(p)
    }


def links_stay_inside(files: Path) -> dict[str, str]:
    """Every link in the copy, as {link: what it names}, checked: relative, landing inside the copy
    on a real file or directory, never on one of its own parents. So nginx, which follows links,
    serves the copy and nothing outside it, and a walk of the copy ends."""
    top = files.resolve()
    links = {}
    for path in files.rglob("*"):  # does not enter linked directories: each entry of the copy once
        if not path.is_symlink():
            continue
        target = os.readlink(path)
        assert not target.startswith("/"), f"{path} -> {target}: absolute"
        lands = (path.parent / target).resolve(strict=True)
        assert lands == top or top in lands.parents, f"{path} -> {target} leaves the copy"
        assert lands not in path.parents, f"{path} -> {target} is one of its own parents"
        assert lands.is_dir() or lands.is_file()
        links[path.relative_to(files).as_posix()] = lands.relative_to(top).as_posix()

    def walk(directory: Path, through: tuple[Path, ...]) -> None:  # following links, as nginx may
        for entry in directory.iterdir():
            if entry.is_dir():
                real = entry.resolve()
                assert real not in through, f"{entry}: following the copy's links comes back here"
                walk(entry, (*through, real))

    walk(files, (top,))
    return links


def served_by_nginx(nginx: tuple[str, Path], files: Path, wanted: dict[str, bytes]) -> dict[str, bytes]:
    """What nginx answers for each path of WANTED with FILES as its root (404s left out)."""
    base, root = nginx
    root.unlink(missing_ok=True)
    root.symlink_to(files.resolve())
    answers = {}
    for rel in wanted:
        try:
            with urllib.request.urlopen(f"{base}/{rel}", timeout=10) as answer:
                answers[rel] = answer.read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, f"{rel}: {exc}"
    return answers


@contextlib.contextmanager
def a_container(image: str, role: str) -> Iterator[None]:
    """A container created (not started) from IMAGE, as a notebook's would be; removed after."""
    name = f"tmpnb-test-extract-static-{role}-{os.getpid()}"
    subprocess.run(
        ["docker", "create", "--name", name, "--network", "none", image, "true"],
        check=True,
        capture_output=True,
    )
    try:
        yield
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def leftover_containers(image: str) -> list[str]:
    """Extraction containers of IMAGE (this run's own: others may run the script on this engine)."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}", "--filter", f"ancestor={image}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()


NOTEBOOK_IMAGE = os.environ.get("TMPNB_NOTEBOOK_IMAGE", "tmpnb-notebook:debian-1")


LEVELS = 6


# Through its links the sibling image names 2**(LEVELS+1) files; it holds LEVELS+2.
EVERY = {"index.html": b"hi\n"} | {
    "/".join(["deep", *via, "f.txt"]): f"level{depth}\n".encode()
    for depth in range(LEVELS + 1)
    for via in itertools.product("ab", repeat=depth)
}


# Static directories /opt/app/<case> whose links are read by what they name in the image, not by
# their text: each lands on `/`, on a parent of the static directory or in a cycle (a loop, left out),
# except chain/shared.txt, which lands on a file through /opt/alias -> . twice.
LINKS = f"""\
FROM {BASE}
RUN mkdir -p /opt/app/chain /opt/app/parent/sub /opt/app/climb /opt/app/cycle /opt/hops /var/x /srv \\
 && for d in chain parent climb cycle; do echo hi > /opt/app/$d/index.html; done \\
 && echo shared > /opt/shared.txt && ln -s . /opt/alias \\
 && ln -s hop2 /opt/hops/hop1 && ln -s / /opt/hops/hop2 && ln -s /opt/hops/hop1 /opt/app/chain/to-root \\
 && ln -s y /opt/app/chain/x && ln -s / /opt/app/chain/y \\
 && ln -s /opt/alias/alias/shared.txt /opt/app/chain/shared.txt \\
 && ln -s /opt/alias/app /opt/app/parent/sub/to-app && ln -s ../../.. /opt/app/parent/sub/up3 \\
 && ln -s /var /srv/t && ln -s ../../../../../../../srv/t/x/../.. /opt/app/climb/climb \\
 && ln -s c2 /opt/app/cycle/c1 && ln -s c1 /opt/app/cycle/c2 \\
 && mkdir -p /opt/app/cross /opt/p /opt/q && echo hi > /opt/app/cross/index.html \\
 && echo p > /opt/p/pf && echo q > /opt/q/qf && ln -s /opt/q /opt/p/a && ln -s /opt/p /opt/q/b \\
 && ln -s /opt/p /opt/app/cross/x && ln -s /opt/q /opt/app/cross/y \\
 && mkdir -p /opt/app/enotdir && echo hi > /opt/app/enotdir/index.html \\
 && ln -s /etc/hostname /opt/lnk && ln -s /opt/lnk/y/z /opt/app/enotdir/x
"""
