"""End-to-end, in a real browser: the site opened in headless Chromium from this machine (the
loopback port Docker published for the test host's port 80, as after `make demo`), Notebook 7's
tree, a new notebook printing 42, and the share of that page load nginx served itself. Runs after
test_default.py (same scenario, same shared fixtures from molecule/shared/cell.py)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "molecule/shared"))
sys.path.insert(0, str(ROOT / "scripts"))
pytest.register_assert_rewrite("cell")
from cell import wait_for_pool  # noqa: E402 - the shared module of the end-to-end scenarios

pytest_plugins = ["cell"]

GROUP_VARS = yaml.safe_load((ROOT / "inventories/local/group_vars/tmpnb.yml").read_text())
# the demo image's static trees, from the inventory's image catalogue (nginx_static_trees follows it)
STATIC_TREES = GROUP_VARS["tmpnb_images"][GROUP_VARS["tmpnb_image"]]["static_trees"]


# --- a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from chromium import headless_chromium

    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


# One line of the site's access log (roles/nginx_static's `tmpnb` format).
ACCESS = re.compile(
    r'"[A-Z]+ (?P<uri>\S+) [^"]*" (?P<status>\d{3}) .* upstream=(?P<upstream>\S+) bytes=(?P<bytes>\d+)$'
)


def offload(lines: list[str], user_path: str) -> dict[str, float]:
    """Requests and bytes under USER_PATH that nginx answered itself (upstream=-), of all of them
    and of those under a static tree's prefix."""
    prefixes = tuple(user_path + t["prefix"] for t in STATIC_TREES)
    got = [m for m in map(ACCESS.search, lines) if m and m["uri"].startswith(user_path)]
    own = [m for m in got if m["upstream"] == "-"]
    static = [m for m in got if m["uri"].split("?", 1)[0].startswith(prefixes)]

    def size(ms: list[re.Match[str]]) -> int:
        return sum(int(m["bytes"]) for m in ms)

    return {
        "requests": len(got),
        "own_requests": len(own),
        "bytes": size(got),
        "own_bytes": size(own),
        "static_bytes": size(static),
        "own_static_bytes": size([m for m in static if m["upstream"] == "-"]),
    }


def test_browser_lands_in_notebook7_and_runs_code(host, site_url, browser):
    """What a person does after `make demo`: open the site, land in Notebook 7's tree, New ->
    Python 3 (ipykernel), type print(6*7), Shift+Enter, see 42. Then the share of that page load
    (tree page and open notebook) that nginx served itself, from its access log."""
    from chromium import notebook7_new_notebook_runs
    from selenium.webdriver.support.ui import WebDriverWait

    wait_for_pool(host)
    log = GROUP_VARS.get("nginx_static_access_log", "/var/log/nginx/access.log")
    before = int(host.check_output(f"wc -l < {log}"))
    wait = WebDriverWait(browser, 120)  # a shared 2-core machine can be slow
    start = time.monotonic()
    browser.get(site_url + "/")  # the page posts the spawn form by itself, as after `make demo`
    wait.until(lambda d: re.search(r"/user/[^/]+/tree", d.current_url))
    user_path = re.search(r"/user/[^/]+/", browser.current_url).group(0)
    assert notebook7_new_notebook_runs(browser, wait, "print(6*7)").strip() == "42"
    print(f"\n[figure] browser: open site -> Notebook 7 -> 42 printed: {time.monotonic() - start:.3f} s")
    lines = host.check_output(f"tail -n +{before + 1} {log}").splitlines()
    share = offload(lines, user_path)
    print(
        f"[figure] nginx offload, Notebook 7 tree page + new notebook: {share['own_requests']}/"
        f"{share['requests']} requests, {share['own_bytes']}/{share['bytes']} bytes "
        f"({share['own_bytes'] / max(share['bytes'], 1):.1%}) served by nginx itself; static trees' "
        f"bytes {share['own_static_bytes']}/{share['static_bytes']}"
        f" ({share['own_static_bytes'] / max(share['static_bytes'], 1):.1%})"
    )
    assert share["static_bytes"] > 0, f"no request under a static tree in {len(lines)} log lines"
    assert share["own_static_bytes"] / share["static_bytes"] > 0.9
