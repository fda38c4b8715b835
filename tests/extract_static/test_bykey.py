"""The copies laid out by image key (--images-dir/--tree): what nginx reads for /user/<key>-<id>/...
Two images' copies side by side while an old container lives, the old one's link and key directory
gone with its last container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.extract_static.support import BASE, STATIC_FILES, _docker_ok, a_container, extract, run

pytestmark = pytest.mark.integration

if not _docker_ok():
    pytest.skip(f"needs a Docker engine with {BASE} (make engine base-image)", allow_module_level=True)


def _key(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def test_each_image_is_linked_under_its_key_until_its_last_container_goes(
    images: dict[str, str], tmp_path: Path
) -> None:
    dest, by_key = tmp_path / "static", tmp_path / "images"
    opts = ("--keep", "0", "--keep-in-use", "--images-dir", str(by_key), "--tree", "static")
    old, new = _key(images["v1_id"]), _key(images["v2_id"])

    first = extract(images["v1"], dest, *opts)
    assert first["linked"] is True and first["changed"] is True
    assert (by_key / old / "static" / "index.html").read_bytes() == STATIC_FILES["index.html"]
    assert extract(images["v1"], dest, *opts)["changed"] is False  # a second run changes nothing

    with a_container(images["v1"], "bykey"):  # a visitor still on v1 while v2 rolls out
        second = extract(images["v2"], dest, *opts)
        assert second["linked"] is True and second["removed"] == [] and second["unlinked"] == []
        assert (by_key / new / "static" / "index.html").read_bytes() == b"v2\n"
        assert (by_key / old / "static" / "index.html").read_bytes() == STATIC_FILES["index.html"]
        # the timer's run while the container lives: nothing goes
        assert extract(images["v2"], dest, *opts)["changed"] is False

    check = extract(images["v2"], dest, *opts, "--check")  # announced, not done
    assert check["changed"] is True and (by_key / old / "static").is_symlink()
    gone = extract(images["v2"], dest, *opts)
    assert gone["removed"] == [images["v1_id"].removeprefix("sha256:")] and gone["unlinked"] == [old]
    assert not (by_key / old).exists()
    assert os.readlink(by_key / new / "static") == str(
        dest / images["v2_id"].removeprefix("sha256:") / "files"
    )
    assert sorted(p.name for p in by_key.iterdir() if not p.name.startswith(".")) == [new]


def test_a_key_directory_stays_while_another_tree_of_it_is_linked(
    images: dict[str, str], tmp_path: Path
) -> None:
    by_key = tmp_path / "images"
    key = _key(images["v1_id"])
    for tree in ("static", "static_notebook"):
        extract(images["v1"], tmp_path / tree, "--images-dir", str(by_key), "--tree", tree)
    assert sorted(p.name for p in (by_key / key).iterdir()) == ["static", "static_notebook"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images-dir", "/tmp/x"], "--images-dir and --tree go together"),
        (["--tree", "static"], "--images-dir and --tree go together"),
        (["--images-dir", "/tmp/x", "--tree", "../up"], "--tree must be a plain name"),
    ],
)
def test_bad_layout_arguments_are_named(args: list[str], message: str) -> None:
    proc = run("--image", "whatever", *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_prune_only_removes_a_tree_the_configured_image_does_not_have(
    images: dict[str, str], tmp_path: Path
) -> None:
    """The timer's run (--prune-only): the configured image (v2 here) may have no copy of this tree
    at all; v1's copy, its link and `current` go once no container runs v1, and nothing is extracted."""
    dest, by_key = tmp_path / "static", tmp_path / "images"
    layout = ("--images-dir", str(by_key), "--tree", "static")
    extract(images["v1"], dest, *layout)
    prune = ("--prune-only", "--keep", "0", "--keep-in-use", *layout)
    with a_container(images["v1"], "prune"):
        kept = extract(images["v2"], dest, *prune)
        assert kept["changed"] is False and (by_key / _key(images["v1_id"]) / "static").is_symlink()
    assert extract(images["v2"], dest, *prune, "--check")["removed"] == [
        images["v1_id"].removeprefix("sha256:")
    ]
    gone = extract(images["v2"], dest, *prune)
    assert gone["changed"] is True and gone["unlinked"] == [_key(images["v1_id"])]
    assert sorted(p.name for p in dest.iterdir()) == [".lock"]  # no copy of v2 made, current gone
    assert not (by_key / _key(images["v1_id"])).exists()


def test_a_copy_younger_than_min_age_is_not_pruned(images: dict[str, str], tmp_path: Path) -> None:
    """A redeploy copies the new image out before the orchestrator runs it: a timer run meanwhile
    (the previous image still configured) must leave the new copy alone. Seen on the demo host: the
    classic image's copy was pruned seconds after it was made."""
    dest, by_key = tmp_path / "static", tmp_path / "images"
    layout = ("--images-dir", str(by_key), "--tree", "static")
    extract(images["v2"], dest, *layout)  # the new image, copied out first
    prune = ("--prune-only", "--keep", "0", "--keep-in-use", *layout)
    kept = extract(images["v1"], dest, *prune, "--min-age", "600")  # the old image still configured
    assert kept["removed"] == [] and (by_key / _key(images["v2_id"]) / "static").is_symlink()
    assert extract(images["v1"], dest, *prune)["removed"] == [images["v2_id"].removeprefix("sha256:")]
