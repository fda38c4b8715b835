"""The same flow with a real Jupyter server (Debian's notebook 6, scripts/build-notebook-image.sh)."""

from __future__ import annotations

import docker
import pytest
import requests

from testsupport.stack import NOTEBOOK6, NOTEBOOK_IMAGE


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
