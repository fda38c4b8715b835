"""The copy: byte-identical, links resolved inside the image, loops left out, served by nginx."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.extract_static.support import (
    BASE,
    EVERY,
    EXPECTED,
    LEVELS,
    STATIC,
    TAG,
    _build,
    _docker_ok,
    extract,
    leftover_containers,
    links_stay_inside,
    run,
    served_by_nginx,
    tree,
)

pytestmark = pytest.mark.integration

if not _docker_ok():
    pytest.skip(f"needs a Docker engine with {BASE} (make engine base-image)", allow_module_level=True)


def test_copy_is_byte_identical_with_links_resolved(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    result = extract(images["v1"], dest)
    assert result["changed"] is True
    assert result["extracted"] is True
    assert result["switched"] is True
    name = images["v1_id"].removeprefix("sha256:")
    assert os.readlink(dest / "current") == name
    files = dest / "current" / "files"
    assert tree(files) == EXPECTED
    # one.js and abs-one.js name one file of the image: copied once, the second a link to the first,
    # inside the copy (nothing points at the host's own /usr/share).
    assert result["files"] == len(EXPECTED) - 1 and result["links"] == 1
    assert links_stay_inside(files) == {"one.js": "abs-one.js"}
    assert result["unresolved_links"] == ["dangling.js"]
    assert result["looping_links"] == ["a/b/up"]
    assert not leftover_containers(images["v1"]), "extract_static.py left a container behind"
    assert not [p for p in dest.iterdir() if p.name.startswith((".tmp-", ".stale-"))]


def test_manifest_lists_every_file_with_checksums(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    extract(images["v1"], dest)
    manifest = json.loads((dest / "current" / "manifest.json").read_text())
    assert manifest["image_id"] == images["v1_id"]
    assert manifest["path_in_image"] == STATIC
    assert {e["path"] for e in manifest["files"]} == set(EXPECTED) - {"one.js"}
    assert manifest["links"] == [{"path": "one.js", "target": "abs-one.js"}]
    for entry in manifest["files"]:
        data = (dest / "current" / "files" / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data) == len(EXPECTED[entry["path"]])
        assert entry["sha256"] == hashlib.sha256(EXPECTED[entry["path"]]).hexdigest()
    assert manifest["file_count"] == len(EXPECTED) - 1 and manifest["link_count"] == 1
    assert manifest["total_bytes"] == sum(len(v) for k, v in EXPECTED.items() if k != "one.js")


def test_copy_of_the_notebook_image_matches_what_the_server_serves(
    notebook_image: str, tmp_path: Path
) -> None:
    """The default --path-in-image is the directory Jupyter serves at /user/<id>/static/."""
    dest = tmp_path / "static"
    proc = run("--image", notebook_image, "--dest", str(dest))  # the script's default path
    assert proc.returncode == 0, proc.stderr
    files = dest / "current" / "files"
    name = f"tmpnb-test-extract-static-nb-{os.getpid()}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-u", "1000", notebook_image, "jupyter", "notebook",
         "--NotebookApp.base_url=/user/x/", "--NotebookApp.token=", "--ip=0.0.0.0", "--no-browser"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        ip = subprocess.run(
            ["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", name],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        base = f"http://{ip}:8888/user/x"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api", timeout=2) as answer:
                    assert json.load(answer)["version"].startswith("6.")
                    break
            except OSError:
                assert time.monotonic() < deadline, "the notebook server did not answer within 60 s"
                time.sleep(0.3)
        # Files of the notebook itself and ones Debian links in from /usr/share/javascript.
        for rel in [
            "notebook/js/main.min.js",
            "base/images/favicon.ico",
            "components/jquery/jquery.min.js",
            "components/requirejs/require.js",
            "components/font-awesome/fonts/fontawesome-webfont.woff",
        ]:
            with urllib.request.urlopen(f"{base}/static/{rel}?v=1", timeout=10) as answer:
                served = answer.read()
            assert served == (files / rel).read_bytes(), f"static/{rel} differs from the copy"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_link_to_root_is_a_loop_and_etc_shadow_is_never_copied(tmp_path: Path) -> None:
    """A link to `/` used to be followed (`"/" + "/"` matched no path): the image's whole root,
    /etc/shadow included, landed in the tree nginx serves. Now it is a loop, left out and reported."""
    tag = f"{TAG}-root-link"
    dockerfile = (
        f"FROM {BASE}\nRUN mkdir -p {STATIC}/sub && echo hi > {STATIC}/index.html"
        f" && ln -s / {STATIC}/root && ln -s ../../../.. {STATIC}/sub/up4\n"
    )
    _build(tmp_path / "ctx", tag, dockerfile, {})
    try:
        result = extract(tag, tmp_path / "static")
        files = tmp_path / "static" / "current" / "files"
        assert tree(files) == {"index.html": b"hi\n"}
        assert not list(files.rglob("shadow"))
        assert result["looping_links"] == ["root", "sub/up4"]
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_sibling_links_to_one_directory_are_copied_once(siblings: tuple[dict, Path]) -> None:
    """The image names 2**(LEVELS+1)-1 directories through its links but holds LEVELS+1: each is
    copied once (the old script copied every link again: 2 links x 12 levels = 8,191 copies), b
    becomes a link to a's copy, and every one of the 2**(LEVELS+1) paths is there to read."""
    result, files = siblings
    assert result["files"] == LEVELS + 2 and result["links"] == LEVELS
    assert tree(files) == {"index.html": b"hi\n"} | {
        "/".join(["deep", *["a"] * depth, "f.txt"]): f"level{depth}\n".encode() for depth in range(LEVELS + 1)
    }
    assert links_stay_inside(files) == {
        "/".join(["deep", *["a"] * depth, "b"]): "/".join(["deep", *["a"] * (depth + 1)])
        for depth in range(LEVELS)
    }
    assert len(EVERY) == 2 ** (LEVELS + 1)
    assert {rel: (files / rel).read_bytes() for rel in EVERY} == EVERY


def test_copies_with_links_are_served_by_nginx(
    images: dict[str, str], siblings: tuple[dict, Path], nginx_root: tuple[str, Path], tmp_path: Path
) -> None:
    """nginx with roles/nginx_static's static location serves every path through the copy's links."""
    extract(images["v1"], tmp_path / "static")
    assert served_by_nginx(nginx_root, tmp_path / "static" / "current" / "files", EXPECTED) == EXPECTED
    assert served_by_nginx(nginx_root, siblings[1], EVERY) == EVERY


@pytest.mark.parametrize(
    ("static", "files", "loops"),
    [
        # to-root -> /opt/hops/hop1 -> hop2 -> /: a chain through links outside the static path.
        # x -> y -> /. The old script copied the image's root for to-root, /etc/shadow included.
        ("/opt/app/chain", {"shared.txt": b"shared\n"}, ["to-root", "x", "y"]),
        # The same, the static path itself reached through a link (/opt/alias -> .): the same copy.
        ("/opt/alias/app/chain", {"shared.txt": b"shared\n"}, ["to-root", "x", "y"]),
        # sub/to-app -> /opt/alias/app is /opt/app, the static directory's parent (the old script
        # copied it: the static tree again and its neighbours); sub/up3 -> ../../.. is /opt.
        ("/opt/app/parent", {}, ["sub/to-app", "sub/up3"]),
        # climb -> ../../../../../../../srv/t/x/../.. reads as /srv but, with /srv/t -> /var, is `/`.
        ("/opt/app/climb", {}, ["climb"]),
        # c1 -> c2 -> c1: the old script stopped with docker's "too many links" error.
        ("/opt/app/cycle", {}, ["c1", "c2"]),
        # x -> /opt/p, y -> /opt/q, /opt/p/a -> /opt/q, /opt/q/b -> /opt/p: each copied once, x/a a
        # link to y; y/b, a link to x, would close a cycle in the copy (x/a/b/a/b/...): left out.
        # The old script copied /opt/p and /opt/q twice each (x/a/qf, y/b/pf).
        ("/opt/app/cross", {"x/pf": b"p\n", "y/qf": b"q\n"}, ["y/b"]),
    ],
    ids=[
        "chain-to-root",
        "static-path-through-a-link",
        "parent",
        "climb-above-through-a-link",
        "cycle",
        "cross",
    ],
)
def test_links_to_root_a_parent_or_a_cycle_are_loops(
    link_image: str, tmp_path: Path, static: str, files: dict[str, bytes], loops: list[str]
) -> None:
    dest = tmp_path / "static"
    # A small --max-bytes: a copy of the image's root stops with an error instead of taking minutes.
    result = extract(link_image, dest, "--path-in-image", static, "--max-bytes", "1000000")
    copy = dest / "current" / "files"
    assert tree(copy) == {"index.html": b"hi\n", **files}
    assert result["looping_links"] == loops
    assert links_stay_inside(copy) == ({"x/a": "y"} if "x/pf" in files else {})
    assert json.loads((dest / "current" / "manifest.json").read_text())["path_in_image"] == static


def test_static_path_that_resolves_to_the_root_is_refused(link_image: str, tmp_path: Path) -> None:
    """/opt/alias/.. is `/` in the image (/opt/alias -> .): copying it would serve the whole image."""
    dest = tmp_path / "static"
    proc = run(
        "--image",
        link_image,
        "--path-in-image",
        "/opt/alias/..",
        "--dest",
        str(dest),
        "--max-bytes",
        "1000000",
    )
    assert proc.returncode == 1
    assert "'/opt/alias/..' is the image's root directory" in proc.stderr and "--path-in-image" in proc.stderr
    assert [p.name for p in dest.iterdir()] == [".lock"]


def test_link_through_a_file_points_nowhere(link_image: str, tmp_path: Path) -> None:
    """x -> /opt/lnk/y/z with /opt/lnk -> /etc/hostname (a file): dangling, left out and reported.
    The old script stopped with docker's "not a directory" error."""
    result = extract(link_image, tmp_path / "static", "--path-in-image", "/opt/app/enotdir")
    assert tree(tmp_path / "static" / "current" / "files") == {"index.html": b"hi\n"}
    assert result["unresolved_links"] == ["x"] and "looping_links" not in result


def test_compressible_files_get_a_gz_that_nginx_sends_as_is(
    images: dict[str, str], tmp_path: Path, nginx_root: tuple[str, Path]
) -> None:
    """Without a .gz, nginx (gzip on) compressed a big script again on every request: 0.37x the
    notebook server's own rate in `python -m bench static`; with gzip_static it sends the file."""
    result = extract(images["v1"], tmp_path / "static")
    files = tmp_path / "static" / "current" / "files"
    big = files / "components/lib/sub/y.js"  # 5,000 bytes of text
    assert gzip.decompress((big.parent / "y.js.gz").read_bytes()) == big.read_bytes()
    assert not (files / "index.html.gz").exists()  # under 1 KiB: not worth it
    assert not (files / "img/logo.bin.gz").exists()  # not a compressible type
    assert result["precompressed"] == len(list(files.rglob("*.gz"))) >= 1
    base, root = nginx_root
    root.unlink(missing_ok=True)
    root.symlink_to(files.resolve())
    req = urllib.request.Request(f"{base}/components/lib/sub/y.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        assert answer.headers["Content-Encoding"] == "gzip"
        body = answer.read()
    assert body == (big.parent / "y.js.gz").read_bytes()  # the file itself, not compressed again
