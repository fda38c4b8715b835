"""Cells behind a front, proven from this machine: the front (tmpnb-cells-front, 127.0.0.1:18580)
sends spawns to two cells (tmpnb-cells-cell1/2, their own public URLs 127.0.0.1:18581/18582) over
the private network 192.168.211.0/24. The tests run in file order and share the cells' slots
(capacity 5 each, pool 1; notebooks spawned only to be timed are removed again): spread, a
visitor's websocket past the front, latency, the status page, a drain, a stopped orchestrator on
cell 2, a full cell 1. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import testinfra
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "molecule/shared"))
sys.path.insert(0, str(ROOT / "scripts"))
pytest.register_assert_rewrite("cell")
from cell import TIMEOUT, Visitor, execute, start_kernel, stats, wait_for_pool  # noqa: E402

testinfra_hosts = ["docker://tmpnb-cells-front"]

FRONT = "http://127.0.0.1:18580"
CELLS = {
    "tmpnb-cells-cell1": ("http://127.0.0.1:18581", "192.168.211.11"),
    "tmpnb-cells-cell2": ("http://127.0.0.1:18582", "192.168.211.12"),
}
FRONT_ADDRESS = "192.168.211.10"
ACCESS_LOG = "/var/log/nginx/access.log"
# Run inside the front host: POST each URL in turn, print "<status> <seconds> <body>" per line.
POST_PROBE = """
import sys, time, urllib.request, urllib.error
for url in sys.argv[1:]:
    req = urllib.request.Request(url, data=b"", method="POST")
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            status, body = res.status, res.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    print(status, f"{time.monotonic() - start:.4f}", body.decode().replace("\\n", " "))
"""
# Run inside a cell: exit 0 once its orchestrator answers on loopback.
ANSWERS = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9999/api/stats', timeout=5)"
# Visitors by cell name, for the later tests (the one on cell 2 must survive its orchestrator).
VISITORS: dict[str, Visitor] = {}


def cell_host(name: str):
    return testinfra.get_host(f"docker://{name}")


def cell_of(url: str) -> str:
    for name, (public, _) in CELLS.items():
        if url.startswith(public + "/user/"):
            return name
    raise AssertionError(f"{url!r} is on no cell's public URL")


def wait_pools() -> None:
    for name in CELLS:
        wait_for_pool(cell_host(name))


def front_post(host, *urls: str) -> list[tuple[int, float, str]]:
    """POSTs from inside the front host (the front's own address, as the front reaches a cell)."""
    out = host.check_output("python3 -c %s" + " %s" * len(urls), POST_PROBE, *urls)
    rows = []
    for line in out.splitlines():
        status, seconds, body = [*line.split(" ", 2), ""][:3]
        rows.append((int(status), float(seconds), body))
    return rows


def release(url: str) -> None:
    """End a visitor's notebook (its container removed; the orchestrator sees it die and frees the
    slot), so the checks fit the cells' small capacity."""
    user_id = re.search(r"/user/([A-Za-z0-9_-]+)/", url).group(1)
    cell_host(cell_of(url)).check_output(
        "docker ps -q --filter label=tmpnb.user_id=%s | xargs -r docker rm -f", user_id
    )


def api_spawn_via_front() -> str:
    res = requests.post(FRONT + "/api/spawn", timeout=TIMEOUT)
    assert res.status_code == 200, f"POST /api/spawn on the front: {res.status_code} {res.text[:300]}"
    return res.json()["url"]


def visitor_at(url: str) -> Visitor:
    m = re.match(r"^(https?://[^/]+)(/user/[A-Za-z0-9_-]{11,}/)", url)
    assert m, url
    session = requests.Session()
    page = session.get(url, timeout=TIMEOUT)
    assert page.status_code == 200, f"{url} answered {page.status_code}"
    return Visitor(session=session, site=m.group(1), user_path=m.group(2), landing=url, seconds=0.0)


def front_log(host) -> list[str]:
    return host.file(ACCESS_LOG).content_string.splitlines()


def status_token(host) -> str:
    env = host.file("/etc/tmpnb-front/status.env").content_string
    return re.search(r"^FRONT_STATUS_TOKEN=(\S+)$", env, re.M).group(1)


def test_a_cell_refuses_spawns_that_bypass_the_front():
    for public, _ in CELLS.values():
        res = requests.post(public + "/api/spawn", timeout=TIMEOUT)
        assert res.status_code == 403, f"{public}/api/spawn from this machine answered {res.status_code}"
        assert "through the front" in res.text
        # The cell's page itself still loads (a visitor's notebook lives there).
        assert requests.get(public + "/", timeout=TIMEOUT).status_code == 200


def test_spawns_spread_over_both_cells():
    wait_pools()
    urls = [api_spawn_via_front() for _ in range(2)]
    cells = [cell_of(u) for u in urls]
    assert sorted(cells) == sorted(CELLS), f"two spawns through the front went to {cells}"
    for url in urls:
        VISITORS[cell_of(url)] = visitor_at(url)


def test_the_cell_sees_the_visitor_not_the_front(host):
    """The cell's nginx takes the visitor's address from the front's X-Real-IP (set_real_ip_from),
    so its access log and the orchestrator's per-client limit see the visitor."""
    for name in CELLS:
        spawns = [line for line in front_log(cell_host(name)) if '"POST /api/spawn' in line]
        assert spawns, f"{name} logged no spawn"
        assert not spawns[-1].startswith(FRONT_ADDRESS + " "), f"{name} saw the front as client: {spawns[-1]}"


def test_a_browser_spawn_through_the_front_lands_on_a_cell_and_its_websocket_skips_the_front(host):
    wait_pools()
    session = requests.Session()
    landing = session.get(FRONT + "/", timeout=TIMEOUT)
    assert landing.status_code == 200 and 'action="/spawn"' in landing.text
    res = session.post(
        FRONT + "/spawn",
        headers={"Origin": FRONT, "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert res.status_code == 303, f"POST /spawn through the front: {res.status_code} {res.text[:300]}"
    location = res.headers["Location"]
    cell_of(location)  # absolute, the cell's own public URL (proxy_redirect off)
    visitor = visitor_at(location)
    kernel = start_kernel(visitor)
    assert execute(visitor, kernel, "print(6 * 7)").strip() == "42"
    user_lines = [line for line in front_log(host) if "/user/" in line]
    assert not user_lines, f"notebook traffic passed the front: {user_lines[:3]}"
    assert any(visitor.user_path in line for line in front_log(cell_host(cell_of(location))))


def test_spawn_latency_through_the_front_and_straight_to_a_cell(host):
    n = 4
    through, straight = [], []
    for i in range(n):
        for target, into in (("http://127.0.0.1/api/spawn", through), (None, straight)):
            wait_pools()
            address = list(CELLS.values())[i % 2][1]
            status, seconds, body = front_post(host, target or f"http://{address}/api/spawn")[0]
            assert status == 200, f"spawn answered {status}: {body[:300]}"
            into.append(seconds)
            release(json.loads(body)["url"])
    print(
        f"\n[figure] spawn latency, from the front host, N={n} each: through the front p50 "
        f"{statistics.median(through) * 1000:.1f} ms {[round(s * 1000, 1) for s in through]}, "
        f"straight to a cell p50 {statistics.median(straight) * 1000:.1f} ms "
        f"{[round(s * 1000, 1) for s in straight]}"
    )


def test_the_status_page_shows_both_cells_figures(host):
    wait_pools()
    token = status_token(host)
    res = requests.get(f"{FRONT}/status/{token}/status.json", timeout=TIMEOUT)
    assert res.status_code == 200, f"status.json via the front: {res.status_code} {res.text[:200]}"
    shown = res.json()["cells"]
    assert sorted(shown) == sorted(CELLS), f"status.json names {sorted(shown)}"
    for name in CELLS:
        own = stats(cell_host(name))
        assert shown[name] is not None, f"{name} is shown down (null) although it answers"
        for key in ("capacity", "in_use", "available", "pool_size", "image"):
            assert shown[name][key] == own[key], (name, key, shown[name][key], own[key])
        assert {"spawns", "history"} <= set(shown[name])
    assert requests.get(f"{FRONT}/status/wrong-token/", timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{FRONT}/status/wrong-token/status.json", timeout=TIMEOUT).status_code == 404


def test_a_headless_browser_sees_both_cells_on_the_status_page(host):
    from chromium import headless_chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = headless_chromium()
    try:
        driver.set_window_size(1400, 900)
        driver.get(f"{FRONT}/status/{status_token(host)}/")
        wait = WebDriverWait(driver, 30)

        def both_cells_up(d) -> bool:
            cards = d.find_elements(By.CSS_SELECTOR, "article[data-cell]")
            return sorted(c.get_attribute("data-cell") for c in cards) == sorted(CELLS) and all(
                c.get_attribute("data-state") == "up" for c in cards
            )

        wait.until(both_cells_up)
        total = driver.find_element(By.ID, "total")
        assert f"{len(CELLS)} of {len(CELLS)} cells up" in total.text
        for name in CELLS:
            card = driver.find_element(By.CSS_SELECTOR, f'article[data-cell="{name}"]')
            in_use = card.find_element(By.CSS_SELECTOR, '[data-fig="in_use"]').text.replace("\n", " ")
            assert in_use.endswith(f"/ {stats(cell_host(name))['capacity']} in use"), f"{name}: {in_use}"
        shot = ROOT / ".cache" / "cells" / "status.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        print(f"\n[figure] status page screenshot: {shot}")
    finally:
        driver.quit()


def run_front_play(tmp_path: Path, drained: list[str]) -> subprocess.CompletedProcess:
    """playbooks/front.yml on Molecule's inventory plus one that drains `drained` (an operator's
    `front_cell_drain: true` in the inventory)."""
    extra = tmp_path / "drain.yml"
    extra.write_text(yaml.safe_dump({"cells": {"hosts": {n: {"front_cell_drain": True} for n in drained}}}))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    env["ANSIBLE_ROLES_PATH"] = str(ROOT / "roles")
    env.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    # The inventory directory: Molecule's hosts file and the scenario's (groups front and cells).
    inventory = os.path.dirname(env["MOLECULE_INVENTORY_FILE"])
    argv = ["ansible-playbook", "-i", inventory, "-i", str(extra), str(ROOT / "playbooks/front.yml")]
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    recap = re.search(r"tmpnb-cells-front\s*:\s*ok=[1-9]", res.stdout)
    assert recap, f"the front play ran nowhere: {res.stdout[-2000:]}"
    return res


def test_a_drained_cell_gets_nothing_new_and_the_front_is_only_reloaded(host, tmp_path):
    master = host.check_output("systemctl show -p MainPID --value nginx.service")
    run_front_play(tmp_path, ["tmpnb-cells-cell2"])
    try:
        assert " down;" in host.file("/etc/nginx/conf.d/tmpnb-front.conf").content_string
        before = len(front_log(host))
        for _ in range(4):  # the landing page takes the spawns' upstream, and no slot
            assert requests.get(FRONT + "/", timeout=TIMEOUT).status_code == 200
        cells = [re.search(r"upstream=(\S+)", line).group(1) for line in front_log(host)[before:]]
        assert cells == ["192.168.211.11:80"] * 4, f"with cell 2 drained GET / went to {cells}"
        # Its visitor keeps working: their traffic never passes the front.
        visitor = VISITORS["tmpnb-cells-cell2"]
        assert visitor.session.get(visitor.landing, timeout=TIMEOUT).status_code == 200
    finally:
        run_front_play(tmp_path, [])
    assert " down;" not in host.file("/etc/nginx/conf.d/tmpnb-front.conf").content_string
    assert host.check_output("systemctl show -p MainPID --value nginx.service") == master, "nginx restarted"


def test_spawns_go_on_when_cell2s_orchestrator_stops_and_its_visitors_keep_working(host):
    cell2 = cell_host("tmpnb-cells-cell2")
    visitor = VISITORS["tmpnb-cells-cell2"]
    kernel = start_kernel(visitor)
    assert execute(visitor, kernel, "x = 41; print('set')").strip() == "set"
    wait_pools()
    before = len(front_log(host))
    cell2.check_output("systemctl stop tmpnb.service")
    try:
        stopped = time.monotonic()
        first = None
        failed_over = False
        for _ in range(3):
            start = time.monotonic()
            url = api_spawn_via_front()
            seconds = time.monotonic() - start
            first = first if first is not None else (seconds, time.monotonic() - stopped)
            assert cell_of(url) == "tmpnb-cells-cell1", f"a spawn with cell 2 stopped went to {url}"
            release(url)
            lines = [line for line in front_log(host)[before:] if '"POST /api/spawn' in line]
            if lines and "192.168.211.12:80, 192.168.211.11:80" in lines[-1]:
                failed_over = True
                print(
                    f"\n[figure] failover: the spawn that met stopped cell 2: {seconds:.3f} s ({lines[-1]})"
                )
                break
            wait_for_pool(cell_host("tmpnb-cells-cell1"))
        assert failed_over, f"no spawn met the stopped cell 2: {front_log(host)[before:]}"
        print(f"[figure] first spawn after the stop: {first[0]:.3f} s, answered {first[1]:.3f} s after it")
        # The visitor on cell 2: CHP and the container do not need the orchestrator.
        assert execute(visitor, kernel, "print(x + 1)").strip() == "42"
    finally:
        cell2.check_output("systemctl start tmpnb.service")
    # Started is not listening yet: wait for its API, then for its pool.
    deadline = time.monotonic() + 120
    while cell2.run("python3 -c %s", ANSWERS).rc != 0:
        assert time.monotonic() < deadline, "cell 2's orchestrator did not answer again in 120 s"
        time.sleep(1)
    wait_for_pool(cell2)


def test_a_full_cell1_sends_spawns_to_cell2(host):
    cell1 = cell_host("tmpnb-cells-cell1")
    for _ in range(8):
        own = stats(cell1)
        if own["in_use"] < own["capacity"]:
            wait_for_pool(cell1)
        status, _, body = front_post(host, f"http://{CELLS['tmpnb-cells-cell1'][1]}/api/spawn")[0]
        if status == 429:
            break
        assert status == 200, f"filling cell 1: {status} {body[:200]}"
    else:
        raise AssertionError("cell 1 never answered 429 (full)")
    wait_for_pool(cell_host("tmpnb-cells-cell2"))
    before = len(front_log(host))
    url = api_spawn_via_front()
    assert cell_of(url) == "tmpnb-cells-cell2", f"with cell 1 full a spawn went to {url}"
    lines = [line for line in front_log(host)[before:] if '"POST /api/spawn' in line]
    print(f"\n[figure] spawn with cell 1 full: {lines[-1] if lines else '?'}")
