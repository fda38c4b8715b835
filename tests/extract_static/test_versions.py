"""Copies by image id: unchanged images change nothing, new ones switch `current`, pruning keeps
what containers use, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.extract_static.support import (
    BASE,
    EXPECTED,
    SCRIPT,
    STATIC,
    STATIC_FILES,
    _docker_ok,
    a_container,
    extract,
    leftover_containers,
    run,
)

pytestmark = pytest.mark.integration

if not _docker_ok():
    pytest.skip(f"needs a Docker engine with {BASE} (make engine base-image)", allow_module_level=True)


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


@pytest.mark.parametrize(("option", "value"), [("--max-files", "2"), ("--max-bytes", "1000")])
def test_caps_are_clear_errors_and_switch_nothing(
    images: dict[str, str], tmp_path: Path, option: str, value: str
) -> None:
    dest = tmp_path / "d"
    proc = run("--image", images["v1"], "--path-in-image", STATIC, "--dest", str(dest), option, value)
    assert proc.returncode == 1
    assert f"raise {option}" in proc.stderr
    assert [p.name for p in dest.iterdir()] == [".lock"], "a capped extraction left files or current"


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
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from extract_static import dockercli

    real = dockercli._docker
    monkeypatch.setattr(dockercli, "_docker", lambda *a: real(*a) + ("\n" + "0" * 64 if a[0] == "ps" else ""))
    with a_container(images["v1"], "gone"):
        assert images["v1_id"] in dockercli.images_in_use()
