"""The front's status page for real: Debian's nginx with roles/front's status fragment (rendered by
Jinja inside a minimal server {}) in front of two real orchestrators (Docker, CHP, the tiny image),
one cell whose port refuses, one that accepts and never answers, and one that answers 404 (as a
cell that does not count the front as an admin does). status.json holds each cell's own /api/stats
(null for the three others), only the token's paths exist, and a headless Chromium sees both cells'
figures and the others marked down.

TMPNB_STATUS_SCREENSHOT=docs/status.png keeps the browser's screenshot there (the README's)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import requests

from testsupport.nginx import ForegroundNginx
from testsupport.nginx import available as nginx_available
from testsupport.stack import OrchestratorProcess, free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
FRONT = ROOT / "roles" / "front"
# change between two reads of the same cell: what the pool is doing, and the sampler's next point
LIVE = {"available", "starting", "removing", "history"}


def render(template: str, **values: Any) -> str:
    """A role template as Ansible renders it (its two filters used here, undefined is an error)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(FRONT / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in text.splitlines())
    env.filters["to_json"] = json.dumps
    return env.get_template(template).render(ansible_managed="Ansible managed", **values)


def front_nginx(workdir: Path, cells: list[dict[str, str]], token: str) -> ForegroundNginx:
    """nginx with the status fragment in a server {} that also has a landing page, the page and
    its status.json rendered into front_status_dir as the role places them."""
    status_dir = workdir / "status"
    status_dir.mkdir(parents=True)
    shutil.copy(FRONT / "files" / "status" / "index.html", status_dir / "index.html")
    values = {"__front_cells": cells, "front_status_token": token, "front_status_dir": str(status_dir)}
    (status_dir / "status.json").write_text(render("status.json.j2", **values))
    (workdir / "status.conf").write_text(render("status.conf.j2", **values))
    return ForegroundNginx(
        workdir,
        f"    location / {{ return 200 'the landing page'; }}\n    include {workdir}/status.conf;",
        http="include /etc/nginx/mime.types; default_type application/octet-stream;"
        f" access_log {workdir}/access.log;",
    )


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung cell."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


@pytest.fixture
def cells(make_stack: Any, hung_port: int) -> dict[str, Any]:
    """cell-1 and cell-2 real (cell-1 with a hand-out, cell-2 with a failed spawn), cell-3 refuses
    (stopped), cell-4 hangs, cell-5 answers 404 (cell-1's orchestrator under a path it does not know)."""
    _, one = make_stack(pool_size=2, capacity=3)
    _, two = make_stack(pool_size=1, capacity=1, spawn_wait=0)
    assert one.spawn().status_code == 303
    assert two.spawn().status_code == 303
    assert two.spawn().status_code == 429  # full: a failed spawn in cell-2's window
    wait_for(lambda: one.stats()["available"] == 2, 60, "cell-1's pool refilled")
    return {
        "cell-1": one,
        "cell-2": two,
        "cell-3": f"http://127.0.0.1:{free_port()}/",
        "cell-4": f"http://127.0.0.1:{hung_port}",
        "cell-5": f"{one.url}/not-a-cell",
    }


def url_of(cell: Any) -> str:
    return cell.url if isinstance(cell, OrchestratorProcess) else str(cell)


@pytest.fixture
def front(tmp_path: Path, cells: dict[str, Any]) -> Iterator[tuple[ForegroundNginx, str]]:
    if not nginx_available():
        pytest.skip("nginx is not installed (make nginx installs Debian's)")
    token = secrets.token_urlsafe(16)
    nginx = front_nginx(tmp_path / "front", [{"name": n, "url": url_of(c)} for n, c in cells.items()], token)
    nginx.start()
    yield nginx, token
    nginx.stop()


def without_live(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k not in LIVE}


def test_status_json_holds_each_cells_own_stats_null_for_dead_ones_and_only_the_token_serves(
    front: tuple[ForegroundNginx, str], cells: dict[str, Any]
) -> None:
    nginx, token = front
    started = time.monotonic()
    r = requests.get(f"{nginx.url}/status/{token}/status.json", timeout=10)
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    got = r.json()["cells"]
    assert list(got) == ["cell-1", "cell-2", "cell-3", "cell-4", "cell-5"]
    assert got["cell-3"] is None  # refused
    assert got["cell-4"] is None  # timed out (2 s) instead of holding the page
    assert requests.get(f"{cells['cell-5']}/api/stats", timeout=5).status_code == 404
    assert got["cell-5"] is None  # its 404 (a JSON body) is not pasted into the document
    assert 1.5 < took < 4, took  # the hung cell costs its read timeout (2 s), no more
    for name in ("cell-1", "cell-2"):
        own = cells[name].stats()
        assert without_live(got[name]) == without_live(own), name
        assert got[name]["history"]["interval_s"] == 30
        assert got[name]["history"]["in_use"][0] == own["history"]["in_use"][0]
    one, two = got["cell-1"], got["cell-2"]
    assert (one["in_use"], one["capacity"], one["spawns"]["count"], one["spawns"]["failed"]) == (1, 3, 1, 0)
    assert one["spawns"]["p50_s"] is not None and one["spawns"]["p50_s"] <= one["spawns"]["p99_s"]
    assert (two["in_use"], two["spawns"]["count"], two["spawns"]["failed"]) == (1, 1, 1)
    # only the token's paths exist
    page = requests.get(f"{nginx.url}/status/{token}/", timeout=10)
    assert page.status_code == 200 and "<title>tmpnb status</title>" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    wrong = secrets.token_urlsafe(16)
    for path in (
        f"/status/{wrong}/",
        f"/status/{wrong}/status.json",
        "/status/",
        f"/status/{token}",
        f"/status/{token}/index.html",
        f"/status/{token}/cell/cell-1",  # the internal subrequest's location
        f"/status/{token}/down",
        f"/status/{token[:-1]}/status.json",
    ):
        assert requests.get(f"{nginx.url}{path}", timeout=10).status_code == 404, path
    assert requests.get(f"{nginx.url}/", timeout=10).text == "the landing page"


def test_a_browser_sees_both_cells_and_the_dead_ones_down(
    front: tuple[ForegroundNginx, str], tmp_path: Path
) -> None:
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)")
    from chromium import headless_chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    nginx, token = front
    driver = headless_chromium(page_load_timeout=30)
    try:
        driver.set_window_size(1400, 1250)
        driver.get(f"{nginx.url}/status/{token}/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article[data-cell]")) == 5)

        def card(name: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, f'article[data-cell="{name}"]')

        def figure(name: str, key: str) -> str:
            return str(card(name).find_element(By.CSS_SELECTOR, f'[data-fig="{key}"]').text)

        assert card("cell-1").get_attribute("data-state") == "up"
        assert card("cell-2").get_attribute("data-state") == "up"
        assert figure("cell-1", "in_use").replace("\n", " ") == "1 / 3 in use"
        assert figure("cell-1", "available").startswith("2")
        assert figure("cell-1", "count").startswith("1")
        assert figure("cell-1", "p50").split("\n")[0].endswith(("ms", " s"))
        assert figure("cell-2", "failed").startswith("1")
        assert card("cell-1").find_elements(By.CSS_SELECTOR, "svg polyline")  # the in-use chart
        for dead in ("cell-3", "cell-4", "cell-5"):
            assert card(dead).get_attribute("data-state") == "down"
            assert "DOWN" in card(dead).text
        total = driver.find_element(By.ID, "total")
        assert "2 of 5 cells up" in total.text
        assert (
            total.find_element(By.CSS_SELECTOR, '[data-fig="in_use"]').text.replace("\n", " ")
            == "2 / 4 in use"
        )
        shot = Path(os.environ.get("TMPNB_STATUS_SCREENSHOT", tmp_path / "status.png"))
        assert driver.save_screenshot(str(shot)), f"no screenshot written to {shot}"
        # the front itself goes away: the page says so at the next poll and keeps the last figures
        nginx.stop()
        banner = driver.find_element(By.ID, "banner")
        WebDriverWait(driver, 15).until(lambda d: banner.is_displayed())
        assert "status.json unreadable" in banner.text and "figures below are from" in banner.text
        assert figure("cell-1", "in_use").replace("\n", " ") == "1 / 3 in use"
    finally:
        driver.quit()
