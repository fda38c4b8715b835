"""The same flow with a real Jupyter server (Debian's notebook 6, scripts/build-notebook-image.sh)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import docker
import pytest
import requests

from testsupport.stack import NOTEBOOK6, NOTEBOOK_IMAGE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.fixture
def notebook_image(dclient: docker.DockerClient) -> str:
    try:
        dclient.images.get(NOTEBOOK_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{NOTEBOOK_IMAGE} not built here (scripts/build-notebook-image.sh builds it, ~45 s)")
    return NOTEBOOK_IMAGE


def test_real_jupyter_server_behind_chp(make_stack, notebook_image: str) -> None:
    chp, orch = make_stack(start=False, pool_size=1, capacity=2, boot_timeout=90, command=NOTEBOOK6)
    orch.configure(image=notebook_image)
    orch.start()
    resp = orch.spawn(via=chp.url)
    assert resp.status_code == 303
    location = resp.headers["Location"]
    base = location.rsplit("/", 1)[0]
    tree = requests.get(f"{chp.url}{location}", timeout=10)
    assert tree.status_code == 200
    assert "Jupyter" in tree.text
    status = requests.get(f"{chp.url}{base}/api/status", timeout=10)
    assert status.status_code == 200 and "started" in status.json()
    specs = requests.get(f"{chp.url}{base}/api/kernelspecs", timeout=10).json()
    assert "python3" in specs["kernelspecs"]


def test_classic_ui_in_a_browser_runs_a_cell(make_stack, notebook_image: str) -> None:
    """The classic UI path (the second image, since the demo runs Notebook 7): headless Chromium
    opens the site through a real CHP and the orchestrator, lands in the tree, New -> Python 3,
    runs print(6*7) and sees 42 in the output area."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)")
    from chromium import classic_new_notebook_runs, headless_chromium
    from selenium.webdriver.support.ui import WebDriverWait

    chp, orch = make_stack(start=False, pool_size=1, capacity=2, boot_timeout=90, command=NOTEBOOK6)
    orch.configure(image=notebook_image)
    orch.start()
    driver = headless_chromium()
    try:
        wait = WebDriverWait(driver, 120)  # a shared 2-core machine can be slow
        driver.get(f"{chp.url}/")  # the orchestrator's page posts the spawn form by itself
        wait.until(lambda d: re.search(r"/user/[^/]+/tree", d.current_url))
        assert classic_new_notebook_runs(driver, wait, "print(6*7)").strip() == "42"
    finally:
        driver.quit()
