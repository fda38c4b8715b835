#!/usr/bin/env python3
"""Which URL prefixes under /user/<id>/ a jupyter-server image serves as static files, and from
which directory in the image: read from the server's own routing table, not guessed.

    scripts/static_trees.py [--image tmpnb-notebook7:1] [--json FILE]

Runs this same file inside the image (no network, read-only root, tmpfs home and /tmp, as the
orchestrator runs it) with `--probe`: it initializes jupyter-server's ServerApp with every
extension the image enables (Notebook 7, JupyterLab, ...) without starting it (no socket is bound),
walks the Tornado routers, and prints every route whose handler serves files
(tornado.web.StaticFileHandler and its subclasses: jupyter-server's FileFindHandler, lab
extensions, themes, kernel resources) with its directories.

Each tree is a dict:
  prefix    the URL prefix under the base URL ("static/notebook/"), longest first, so a location
            list in that order never lets "static/" shadow "static/notebook/"
  dirs      directories in the image, in the server's search order (the first holding the file
            wins), only those that exist in the image and are not under $HOME
  handler   the handler class ("module.Class")
  rewrites  true when the handler changes a file's bytes (themes: CSS url()s rewritten with the
            visitor's base URL), so a plain copy is NOT equivalent; nginx must leave those to CHP
  home_dirs directories under $HOME the server searches too (a visitor's own files: a copy out of
            the image cannot have them); home_first: searched before the image's
  pattern   the route's regex (for a reader; a route of literal names gives one prefix per name)
Routes that serve the visitor's files (files/, the home) have only home dirs and are left out.
"""

# ruff: noqa: S603 - a fixed docker command line

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_IMAGE = os.environ.get("TMPNB_NOTEBOOK7_IMAGE", "tmpnb-notebook7:1")
HOME = "/home/jovyan"
CONTAINER_TMP = "/tmp"  # noqa: S108 - the probe container's own /tmp, a tmpfs
# Kernel resources are routed with a named group per kernel: reported per installed kernel.
KERNEL_GROUP = "(?P<kernel_name>"


def _prefix(pattern: str) -> str:
    """The literal part of a route regex up to its first group: '/static/notebook/(.*)$' ->
    'static/notebook/'."""
    literal = pattern.split("(", 1)[0].rstrip("$")
    return literal.replace("\\", "").lstrip("/")


def _prefixes(pattern: str) -> list[str]:
    """The prefixes a route serves: its literal part, or, for a route that is one group of literal
    names ('/(robots\\.txt|favicon\\.ico)$'), each name."""
    prefix = _prefix(pattern)
    if prefix:
        return [prefix]
    group = pattern.lstrip("/").rstrip("$")
    if group.startswith("(") and group.endswith(")") and not any(c in group[1:-1] for c in "()[]*+?"):
        return [name.replace("\\", "") for name in group[1:-1].split("|")]
    return []


def _handler_dirs(kwargs: dict[str, Any]) -> list[str]:
    path = kwargs.get("path", [])
    paths = [path] if isinstance(path, str) else list(path)
    return [os.path.realpath(p) for p in paths]


def probe() -> list[dict[str, Any]]:  # pragma: no cover - runs inside the image
    """Inside the image: initialize the server, walk its routes."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_server.serverapp import ServerApp
    from tornado.routing import Router
    from tornado.web import StaticFileHandler

    app = ServerApp.instance()
    app.initialize(argv=["--ServerApp.base_url=/", "--ServerApp.open_browser=False", "--port=0"])

    def rules(router: Any) -> list[Any]:
        found = []
        for rule in getattr(router, "rules", []):
            if isinstance(rule.target, Router):
                found.extend(rules(rule.target))
            else:
                found.append(rule)
        return found

    home = os.path.realpath(HOME)
    trees: dict[str, dict[str, Any]] = {}
    for rule in rules(app.web_app.default_router) + rules(app.web_app.wildcard_router):
        target = rule.target
        if not (isinstance(target, type) and issubclass(target, StaticFileHandler)):
            continue
        pattern = rule.matcher.regex.pattern
        dirs = _handler_dirs(rule.target_kwargs or {})
        if KERNEL_GROUP in pattern:
            ksm = KernelSpecManager()
            kernel_prefix = _prefix(pattern)
            for name, kdir in sorted(ksm.find_kernel_specs().items()):
                dirs_for = [os.path.realpath(kdir)]
                trees[f"{kernel_prefix}{name}/"] = {"dirs": dirs_for, "handler": target, "pattern": pattern}
            continue
        for prefix in _prefixes(pattern):
            trees.setdefault(prefix, {"dirs": dirs, "handler": target, "pattern": pattern})
    out = []
    for prefix, tree in trees.items():
        in_home = [d for d in tree["dirs"] if d == home or d.startswith(home + "/")]
        in_image = [d for d in tree["dirs"] if d not in in_home and os.path.isdir(d)]
        if not in_image:
            continue  # the visitor's own files (files/, custom/), or nothing the image has
        home_first = bool(in_home) and tree["dirs"].index(in_home[0]) < tree["dirs"].index(in_image[0])
        cls = tree["handler"]
        # A handler (or a base between it and StaticFileHandler) that overrides get_content serves
        # bytes other than the file's.
        below = cls.__mro__[: cls.__mro__.index(StaticFileHandler)]
        rewrites = any("get_content" in vars(c) for c in below)
        out.append(
            {
                "prefix": prefix,
                "dirs": in_image,
                "handler": f"{cls.__module__}.{cls.__qualname__}",
                "rewrites": rewrites,
                "home_dirs": in_home,
                "home_first": home_first,
                "pattern": tree["pattern"],
            }
        )
    out.sort(key=lambda t: (-len(t["prefix"]), t["prefix"]))
    return out


def from_image(image: str) -> list[dict[str, Any]]:
    """Run the probe inside `image` as the orchestrator runs containers, no network."""
    # The same user, read-only root and tmpfs as the orchestrator's container_spec.
    cmd = [
        "docker", "run", "--rm", "-i", "--network", "none", "--read-only", "--user", "1000:1000",
        "--tmpfs", f"{HOME}:uid=1000,gid=1000,mode=0700", "--tmpfs", f"{CONTAINER_TMP}:mode=1777",
        "-e", f"HOME={HOME}", "--entrypoint", "python3", image, "-", "--probe",
    ]  # fmt: skip
    res = subprocess.run(cmd, input=Path(__file__).read_bytes(), capture_output=True, timeout=300)
    if res.returncode != 0:
        raise SystemExit(f"ERROR: probing {image} failed:\n{res.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(res.stdout)


def match(trees: list[dict[str, Any]], path_under_base: str) -> dict[str, Any] | None:
    """The tree that serves a path under the base URL ('static/lab/main.js' -> the static/lab/
    tree), or None when no static tree does (an API call, a page, or a rewritten theme file)."""
    for tree in trees:  # longest prefix first
        if path_under_base.startswith(tree["prefix"]):
            return tree
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--json", type=Path, help="write the trees to this file as well")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        # The server logs to stderr; only the JSON goes to stdout.
        json.dump(probe(), sys.stdout)
        return 0
    return emit({"image": args.image, "trees": from_image(args.image)}, args.json)


def emit(result: dict[str, Any], path: Path | None) -> int:
    """Print `result` as JSON, and write it to `path` too when given."""
    text = json.dumps(result, indent=2) + "\n"
    if path:
        path.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
