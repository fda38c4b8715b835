"""Fixtures of the extractor's tests: the images they copy from, nginx on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.extract_static.support import (
    BASE,
    DOCKERFILE,
    LEVELS,
    LINKS,
    NOTEBOOK_IMAGE,
    ROOT,
    SHARED_FILES,
    STATIC,
    STATIC_FILES,
    TAG,
    _build,
    extract,
)
from testsupport.nginx import ForegroundNginx


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def notebook_image() -> str:
    """The kit's notebook image, built by scripts/build-notebook-image.sh when missing (cached)."""
    subprocess.run([str(ROOT / "scripts" / "build-notebook-image.sh")], check=True, capture_output=True)
    return NOTEBOOK_IMAGE


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def link_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = f"{TAG}-links"
    _build(tmp_path_factory.mktemp("ctx-links"), tag, LINKS, {})
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
