"""scripts/static_trees.py: route regexes -> URL prefixes, and the longest-prefix match a location
list built from them must make (the probe itself runs inside the image: test_notebook7.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("static_trees", ROOT / "scripts" / "static_trees.py")
assert _spec and _spec.loader
static_trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(static_trees)
DATA = ROOT / "roles" / "tmpnb" / "files" / "notebook7" / "static_trees.json"


def test_prefixes_of_jupyter_server_routes() -> None:
    assert static_trees._prefixes("/static/notebook/(.*)$") == ["static/notebook/"]
    assert static_trees._prefixes("/lab/extensions/(.*)$") == ["lab/extensions/"]
    assert static_trees._prefixes(r"/kernelspecs/(?P<kernel_name>[\w\.\-%]+)/(?P<path>.*)$") == [
        "kernelspecs/"
    ]
    assert static_trees._prefixes(r"/(favicon\.ico)$") == ["favicon.ico"]
    assert static_trees._prefixes(r"/(robots\.txt|favicon\.ico)$") == ["robots.txt", "favicon.ico"]
    # a route that is all regex names no literal prefix: nothing to serve from a copy
    assert static_trees._prefixes(r"/(.*)$") == []


def test_longest_prefix_wins_so_static_never_shadows_static_notebook() -> None:
    trees = json.loads(DATA.read_text())["trees"]
    prefixes = [t["prefix"] for t in trees]
    assert prefixes == sorted(prefixes, key=lambda p: (-len(p), p))
    assert static_trees.match(trees, "static/notebook/main.js")["prefix"] == "static/notebook/"
    assert static_trees.match(trees, "static/lab/remoteEntry.js")["prefix"] == "static/lab/"
    assert static_trees.match(trees, "static/favicons/favicon.ico")["prefix"] == "static/"
    assert (
        static_trees.match(trees, "lab/extensions/jupyterlab_pygments/static/x.js")["prefix"]
        == "lab/extensions/"
    )
    assert static_trees.match(trees, "api/kernels") is None
    assert static_trees.match(trees, "tree") is None


def test_the_shipped_trees_name_where_notebook7_keeps_its_bundles() -> None:
    """The data file the nginx_static role can read: every tree a Notebook 7 page loads, the
    themes (rewritten per base URL) marked so a plain copy is never served for them."""
    trees = {t["prefix"]: t for t in json.loads(DATA.read_text())["trees"]}
    site = "/opt/notebook/lib/python3.11/site-packages"
    assert trees["static/notebook/"]["dirs"] == [f"{site}/notebook/static"]
    assert trees["static/lab/"]["dirs"] == ["/opt/notebook/share/jupyter/lab/static"]
    assert trees["static/"]["dirs"] == [f"{site}/jupyter_server/static"]
    assert trees["lab/extensions/"]["dirs"] == ["/opt/notebook/share/jupyter/labextensions"]
    assert trees["lab/extensions/"]["home_first"] is True
    assert trees["lab/api/themes/"]["rewrites"] is True
    assert not any(t["rewrites"] for p, t in trees.items() if p != "lab/api/themes/")
