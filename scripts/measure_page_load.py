#!/usr/bin/env python3
"""Which requests a Notebook 7 page load makes, and their bytes, grouped by the static tree
(scripts/static_trees.py) that could serve them from nginx's copy.

    scripts/measure_page_load.py [--image tmpnb-notebook7:1] [--json FILE]

Runs one notebook container of the image as the orchestrator runs it (read-only root, tmpfs home
and /tmp, user 1000) with its port published on 127.0.0.1 only, then a headless Chromium (cache
disabled, so every load is a first visit) loads the tree page, then opens a new notebook and waits
until its kernel is idle. Every HTTP response is counted (websockets are listed apart) with the
bytes on the wire (Chrome's encodedDataLength), and grouped by prefix under /user/<id>/.
"""

# ruff: noqa: S603, S607, S310 - fixed docker commands; URLs are the container's own loopback port

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium import headless_chromium
from static_trees import DEFAULT_IMAGE, HOME, emit, from_image, match

USER_PATH = "/user/measure/"
# A new notebook as New -> Notebook -> Python 3 writes it: with its kernel, so opening it starts one.
NEW_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "source": "print(6*7)", "metadata": {}, "outputs": [], "execution_count": None}
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def start_container(image: str) -> tuple[str, str]:
    cmd = [
        "docker", "run", "-d", "--rm", "--read-only", "--user", "1000:1000", "--init",
        "--tmpfs", f"{HOME}:uid=1000,gid=1000,mode=0700,exec", "--tmpfs", "/tmp:mode=1777,exec",  # noqa: S108
        "-p", "127.0.0.1::8888", "--label", "tmpnb.measure=page-load", image,
        "jupyter", "notebook", "--no-browser", "--ip=0.0.0.0", "--port=8888",
        f"--ServerApp.base_url={USER_PATH}", "--IdentityProvider.token=", "--ServerApp.password=",
    ]  # fmt: skip
    cid = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    port = (
        subprocess.run(
            ["docker", "port", cid, "8888/tcp"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.split(":")[-1]
        .strip()
    )
    site = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{site}{USER_PATH}api/status", timeout=5):
                return cid, site
        except OSError:
            time.sleep(1)
    raise SystemExit(f"ERROR: the notebook server in {cid[:12]} did not answer within 180 s")


def browser() -> Any:
    return headless_chromium(page_load_timeout=120, network_log=True)


def requests_of(driver: Any) -> list[dict[str, Any]]:
    """The HTTP responses (url, status, bytes) and websockets since the last call."""
    by_id: dict[str, dict[str, Any]] = {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        rid = params.get("requestId")
        if msg["method"] == "Network.responseReceived":
            resp = params["response"]
            by_id.setdefault(rid, {}).update(url=resp["url"], status=resp["status"], kind=params.get("type"))
        elif msg["method"] == "Network.loadingFinished":
            by_id.setdefault(rid, {})["bytes"] = int(params.get("encodedDataLength", 0))
        elif msg["method"] == "Network.webSocketCreated":
            by_id.setdefault(rid, {}).update(url=params["url"], status=101, kind="WebSocket", bytes=0)
    # Only what the page asked of the notebook server (not the browser's own chrome:// or data: URLs).
    return [r for r in by_id.values() if r.get("url", "").startswith(("http://", "ws://"))]


def wait_idle(driver: Any, selector: str, seconds: float = 120) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    time.sleep(5)  # let the page's lazy chunks and settings requests finish (a measurement, not a test)


def wait_kernel(site: str, seconds: float = 120) -> None:
    """Until the notebook page has started its kernel (its websocket follows)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{site}{USER_PATH}api/kernels", timeout=10) as resp:
            if json.load(resp):
                return
        time.sleep(1)
    raise SystemExit(f"ERROR: the notebook page started no kernel within {seconds:g} s")


def group(reqs: list[dict[str, Any]], site: str, trees: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "bytes": 0, "static": False, "paths": []}
    )
    for r in reqs:
        path = r["url"].split("?", 1)[0].replace(site.replace("http", "ws"), "").replace(site, "")
        under = path.removeprefix(USER_PATH)
        tree = match(trees, under) if path.startswith(USER_PATH) else None
        if r.get("kind") == "WebSocket":
            key = "(websocket) " + "/".join(under.split("/")[:2])
        elif tree and not tree["rewrites"]:
            key = tree["prefix"] or under
            groups[key]["static"] = True
        else:
            key = (
                "/".join(under.split("/")[:3])
                if under.startswith(("lab/api", "api"))
                else under.split("/")[0]
            )
        groups[key]["requests"] += 1
        groups[key]["bytes"] += r.get("bytes", 0)
        groups[key]["paths"].append(f"{under} {r.get('status')} {r.get('bytes', 0)}")
    total = sum(g["bytes"] for g in groups.values())
    static = sum(g["bytes"] for g in groups.values() if g["static"])
    count = sum(g["requests"] for g in groups.values())
    static_count = sum(g["requests"] for g in groups.values() if g["static"])
    return {
        "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1]["bytes"])),
        "requests": count,
        "static_requests": static_count,
        "bytes": total,
        "static_bytes": static,
        "static_bytes_share": round(static / total, 4) if total else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    trees = from_image(args.image)
    cid, site = start_container(args.image)
    driver = browser()
    result: dict[str, Any] = {"image": args.image}
    try:
        driver.get(f"{site}{USER_PATH}tree")
        wait_idle(driver, ".jp-DirListing")
        result["tree"] = group(requests_of(driver), site, trees)
        # New -> Notebook, as the page's JavaScript does it: with the XSRF cookie it was given.
        xsrf = (driver.get_cookie("_xsrf") or {}).get("value", "")
        urllib.request.urlopen(
            urllib.request.Request(
                f"{site}{USER_PATH}api/contents/measure.ipynb",
                data=json.dumps({"type": "notebook", "format": "json", "content": NEW_NOTEBOOK}).encode(),
                method="PUT",
                headers={"Content-Type": "application/json", "X-XSRFToken": xsrf, "Cookie": f"_xsrf={xsrf}"},
            ),
            timeout=30,
        )
        driver.get(f"{site}{USER_PATH}notebooks/measure.ipynb")
        wait_kernel(site)
        wait_idle(driver, '.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        result["notebook"] = group(requests_of(driver), site, trees)
    finally:
        driver.quit()
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    return emit(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
