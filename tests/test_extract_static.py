"""scripts/extract_static.py against the real Docker engine, with small images built here.

The images hold a static tree with the shapes Debian's jupyter-notebook has: nested directories,
binary files, links to files and to directories elsewhere in the image (resolved in the copy), a
hard link, a dangling link and a link looping back into the tree (both left out, and said so).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.nginx import ForegroundNginx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "extract_static.py"
BASE = os.environ.get("TMPNB_BASE_IMAGE", "tmpnb-testhost:bookworm-1")
TAG = f"tmpnb-test-extract-static:{os.getpid()}"
LABEL = "org.jupyter.tmpnb.extract-static"
STATIC = "/opt/app/static"

pytestmark = pytest.mark.integration


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    ok = subprocess.run(["docker", "image", "inspect", BASE], capture_output=True, check=False)
    return ok.returncode == 0


if not _docker_ok():
    pytest.skip(f"needs a Docker engine with {BASE} (make engine base-image)", allow_module_level=True)

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


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two images: v1 (the tree above) and v2 (v1 with index.html changed)."""
    ctx = tmp_path_factory.mktemp("ctx")
    v1 = _build(ctx / "v1", f"{TAG}-v1", DOCKERFILE, {"static": STATIC_FILES, "shared": SHARED_FILES})
    v2 = _build(
        ctx / "v2",
        f"{TAG}-v2",
        f"FROM {TAG}-v1\nRUN printf 'v2\\n' > {STATIC}/index.html\n",
        {},
    )
    yield {"v1": f"{TAG}-v1", "v1_id": v1, "v2": f"{TAG}-v2", "v2_id": v2}
    subprocess.run(["docker", "rmi", "-f", f"{TAG}-v2", f"{TAG}-v1"], capture_output=True, check=False)


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


@pytest.fixture(scope="module")
def nginx_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The host's nginx on a loopback port with roles/nginx_static's static location, serving
    whatever the test puts in the directory (a link to the copy): (base URL, that link)."""
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx (apt-get install nginx-light)")
    work = tmp_path_factory.mktemp("nginx")
    nginx = ForegroundNginx(
        work,
        f"    location ~ ^/user/[^/]+/static/(.*)$ {{ root {work}/files; try_files /$1 =404;\n"
        f"      gzip on; gzip_types text/css application/javascript; gzip_static on; }}",
    )
    nginx.start()
    try:
        yield f"{nginx.url}/user/x/static", work / "files"
    finally:
        nginx.stop()


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


def test_unchanged_image_changes_nothing(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    extract(images["v1"], dest)
    version = dest / images["v1_id"].removeprefix("sha256:")
    before = (
        version.stat().st_ino,
        (version / "manifest.json").stat().st_mtime_ns,
        os.lstat(dest / "current"),
    )
    again = extract(images["v1"], dest)
    assert again["changed"] is False
    assert again["extracted"] is False and again["switched"] is False and again["removed"] == []
    after = (
        version.stat().st_ino,
        (version / "manifest.json").stat().st_mtime_ns,
        os.lstat(dest / "current"),
    )
    assert before[:2] == after[:2]
    assert before[2].st_ino == after[2].st_ino, "the current symlink was rewritten"


def test_incomplete_copy_is_extracted_again(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    extract(images["v1"], dest)
    victim = dest / "current" / "files" / "img" / "logo.bin"
    victim.write_bytes(b"truncated")
    result = extract(images["v1"], dest)
    assert result["extracted"] is True and result["changed"] is True
    assert victim.read_bytes() == EXPECTED["img/logo.bin"]


def test_new_image_gets_a_new_directory_and_current_switches(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    old = images["v1_id"].removeprefix("sha256:")
    new = images["v2_id"].removeprefix("sha256:")
    extract(images["v1"], dest)
    result = extract(images["v2"], dest)
    assert result["changed"] is True and result["extracted"] is True and result["switched"] is True
    assert os.readlink(dest / "current") == new
    assert (dest / "current" / "files" / "index.html").read_bytes() == b"v2\n"
    # The old copy stays (default --keep 2): the old image's containers still load it.
    assert (dest / old / "files" / "index.html").read_bytes() == STATIC_FILES["index.html"]

    # --keep 0, but the old image is still in use: its copy stays.
    kept = extract(images["v2"], dest, "--keep", "0", "--keep-image", images["v1_id"][:19])
    assert kept["changed"] is False and (dest / old).is_dir()
    # By name works too.
    kept = extract(images["v2"], dest, "--keep", "0", "--keep-image", images["v1"])
    assert kept["changed"] is False and (dest / old).is_dir()

    # In check mode the removal is announced, not done.
    check = extract(images["v2"], dest, "--keep", "0", "--check")
    assert check["changed"] is True and check["removed"] == [old] and (dest / old).is_dir()

    pruned = extract(images["v2"], dest, "--keep", "0")
    assert pruned["changed"] is True and pruned["removed"] == [old]
    assert not (dest / old).exists()
    assert os.readlink(dest / "current") == new
    assert extract(images["v2"], dest, "--keep", "0")["changed"] is False


def test_copy_of_an_image_a_container_uses_is_kept_with_keep_in_use(
    images: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "static"
    old = images["v1_id"].removeprefix("sha256:")
    extract(images["v1"], dest)
    extract(images["v2"], dest)
    with a_container(images["v1"], "user"):
        kept = extract(images["v2"], dest, "--keep", "0", "--keep-in-use")
        assert kept["changed"] is False and kept["removed"] == [] and (dest / old).is_dir()
    pruned = extract(images["v2"], dest, "--keep", "0", "--keep-in-use")
    assert pruned["removed"] == [old] and not (dest / old).exists()


def test_current_copy_is_never_pruned(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    extract(images["v2"], dest)
    back = extract(images["v1"], dest, "--keep", "0")  # a rollback to v1
    assert back["removed"] == [images["v2_id"].removeprefix("sha256:")]
    assert os.readlink(dest / "current") == images["v1_id"].removeprefix("sha256:")
    assert (dest / "current" / "files" / "index.html").read_bytes() == STATIC_FILES["index.html"]


def test_check_mode_writes_nothing(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    result = extract(images["v1"], dest, "--check")
    assert result["changed"] is True and result["check_mode"] is True
    assert not dest.exists()
    extract(images["v1"], dest)
    assert extract(images["v1"], dest, "--check")["changed"] is False


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    proc = run("--image", "tmpnb-test-no-such-image:0", "--dest", str(tmp_path / "d"))
    assert proc.returncode == 1
    assert "tmpnb-test-no-such-image:0" in proc.stderr and "not in the local Docker engine" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_missing_path_is_a_clear_error_and_leaves_nothing(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "d"
    proc = run("--image", images["v1"], "--path-in-image", "/no/such/static", "--dest", str(dest))
    assert proc.returncode == 1
    assert "'/no/such/static' does not exist in image" in proc.stderr
    assert not leftover_containers(images["v1"])
    assert [p.name for p in dest.iterdir()] == [".lock"], "a failed extraction left files behind"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "-1"], "--keep must be 0 or more"),
        (["--path-in-image", "relative/static"], "--path-in-image must be absolute"),
        (["--keep-image", "tmpnb-test-no-such-image:0"], "--keep-image 'tmpnb-test-no-such-image:0'"),
    ],
)
def test_bad_arguments_are_named(
    images: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    proc = run("--image", images["v1"], "--dest", str(tmp_path / "d"), *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "d").exists()


NOTEBOOK_IMAGE = os.environ.get("TMPNB_NOTEBOOK_IMAGE", "tmpnb-notebook:debian-1")


@pytest.fixture(scope="module")
def notebook_image() -> str:
    """The kit's notebook image, built by scripts/build-notebook-image.sh when missing (cached)."""
    subprocess.run([str(ROOT / "scripts" / "build-notebook-image.sh")], check=True, capture_output=True)
    return NOTEBOOK_IMAGE


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


@pytest.mark.parametrize(("option", "value"), [("--max-files", "2"), ("--max-bytes", "1000")])
def test_caps_are_clear_errors_and_switch_nothing(
    images: dict[str, str], tmp_path: Path, option: str, value: str
) -> None:
    dest = tmp_path / "d"
    proc = run("--image", images["v1"], "--path-in-image", STATIC, "--dest", str(dest), option, value)
    assert proc.returncode == 1
    assert f"raise {option}" in proc.stderr
    assert [p.name for p in dest.iterdir()] == [".lock"], "a capped extraction left files or current"


LEVELS = 6


# Through its links the sibling image names 2**(LEVELS+1) files; it holds LEVELS+2.
EVERY = {"index.html": b"hi\n"} | {
    "/".join(["deep", *via, "f.txt"]): f"level{depth}\n".encode()
    for depth in range(LEVELS + 1)
    for via in itertools.product("ab", repeat=depth)
}


@pytest.fixture(scope="module")
def siblings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Path]]:
    """An image whose level i holds f.txt and two links, a and b, both to level i+1, extracted with a
    --max-files budget linear in what it holds: (the script's result, the copy's files/)."""
    tag = f"{TAG}-siblings"
    steps = [f"mkdir -p /opt/deep/l{i} && echo level{i} > /opt/deep/l{i}/f.txt" for i in range(LEVELS + 1)]
    steps += [f"ln -s ../l{i + 1} /opt/deep/l{i}/{name}" for i in range(LEVELS) for name in "ab"]
    steps += [f"mkdir -p {STATIC}", f"echo hi > {STATIC}/index.html", f"ln -s /opt/deep/l0 {STATIC}/deep"]
    work = tmp_path_factory.mktemp("siblings")
    _build(work / "ctx", tag, f"FROM {BASE}\nRUN " + " && ".join(steps) + "\n", {})
    try:
        result = extract(tag, work / "static", "--max-files", str(3 * (LEVELS + 1)))
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    yield result, work / "static" / "current" / "files"


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


@pytest.fixture(scope="module")
def link_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = f"{TAG}-links"
    _build(tmp_path_factory.mktemp("ctx-links"), tag, LINKS, {})
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


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


def test_static_path_that_is_a_file_is_refused(images: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "static"
    proc = run("--image", images["v1"], "--path-in-image", f"{STATIC}/one.js", "--dest", str(dest))
    assert proc.returncode == 1
    assert f"'{STATIC}/one.js' is not a directory in the image" in proc.stderr
    assert [p.name for p in dest.iterdir()] == [".lock"]


def test_a_container_gone_between_listing_and_inspecting_uses_no_image(
    images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --keep-in-use the script lists every container, then inspects them; tmpnb removes idle
    containers all the time, so one may be gone in between (seen here: "docker inspect failed: No
    such object" stopped a run). The race cannot be forced: `docker ps` is made to list one more id."""
    spec = importlib.util.spec_from_file_location("extract_static", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "extract_static", module)
    spec.loader.exec_module(module)
    real = module._docker
    monkeypatch.setattr(module, "_docker", lambda *a: real(*a) + ("\n" + "0" * 64 if a[0] == "ps" else ""))
    with a_container(images["v1"], "gone"):
        assert images["v1_id"] in module.images_in_use()


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
