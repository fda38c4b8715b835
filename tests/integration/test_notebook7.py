"""The current Jupyter image (Notebook 7 + JupyterLab 4 on jupyter-server, built by
`scripts/build-notebook-image.sh --image notebook7`) through a real CHP and the orchestrator, run
the way the orchestrator runs every container: read-only root, tmpfs home, /tmp and /dev/shm."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import uuid
from pathlib import Path

import aiohttp
import docker
import pytest
import requests

from tmpnb.config import DEFAULT_COMMAND
from tmpnb.crowd.messages import CellWaiter, execute_request

ROOT = Path(__file__).resolve().parents[2]
STATIC_TREES = ROOT / "roles" / "tmpnb" / "files" / "notebook7" / "static_trees.json"
_spec = importlib.util.spec_from_file_location("static_trees", ROOT / "scripts" / "static_trees.py")
assert _spec and _spec.loader
static_trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(static_trees)

NOTEBOOK7_IMAGE = os.environ.get("TMPNB_NOTEBOOK7_IMAGE", "tmpnb-notebook7:1")
# The orchestrator's own default command (jupyter notebook on jupyter-server's ServerApp options),
# and the same server started as `jupyter lab`.
NOTEBOOK_COMMAND = list(DEFAULT_COMMAND)
LAB_COMMAND = ["jupyter", "lab", *DEFAULT_COMMAND[2:]]


@pytest.fixture
def notebook7_image(dclient: docker.DockerClient) -> str:
    try:
        dclient.images.get(NOTEBOOK7_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(
            f"{NOTEBOOK7_IMAGE} not built here (scripts/build-notebook-image.sh --image notebook7"
            " builds it, a few minutes; `make notebook7-image`)"
        )
    return NOTEBOOK7_IMAGE


async def run_cell(ws_url: str, origin: str, cookies: dict[str, str], code: str) -> str:
    """Send one execute_request over the kernel's websocket, opened with the page's Origin, and
    return what the kernel printed by the time the cell was done."""
    session_id = uuid.uuid4().hex
    request = execute_request(code, session_id, username="test")
    waiter = CellWaiter(request["header"]["msg_id"])
    printed = ""
    jar = aiohttp.CookieJar(unsafe=True)  # the site is http://127.0.0.1:<port>
    async with (
        aiohttp.ClientSession(cookie_jar=jar, cookies=cookies) as client,
        client.ws_connect(f"{ws_url}?session_id={session_id}", headers={"Origin": origin}) as ws,
    ):
        await ws.send_json(request)
        async with asyncio.timeout(60):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if (
                    data.get("parent_header", {}).get("msg_id") == waiter.msg_id
                    and data["msg_type"] == "stream"
                ):
                    printed += data["content"]["text"]
                if waiter.feed(msg.data):
                    assert waiter.error is None, waiter.error
                    return printed
    raise AssertionError("kernel websocket closed before the cell was done")


COMMANDS = {"jupyter-notebook": NOTEBOOK_COMMAND, "jupyter-lab": LAB_COMMAND}


@pytest.mark.parametrize("app", COMMANDS)
def test_notebook7_tree_lab_and_kernel_behind_chp(make_stack, notebook7_image: str, app: str) -> None:
    chp, orch = make_stack(start=False, pool_size=1, capacity=2, boot_timeout=120, command=COMMANDS[app])
    orch.configure(image=notebook7_image)
    orch.start()
    resp = orch.spawn(via=chp.url)
    assert resp.status_code == 303, resp.text[:300]
    location = resp.headers["Location"]
    assert location.endswith("/tree"), location
    base = location.rsplit("/", 1)[0] + "/"  # /user/<id>/

    browser = requests.Session()
    tree = browser.get(f"{chp.url}{base}tree", timeout=30)
    assert tree.status_code == 200
    # Notebook 7's tree page (not the classic one): its page config and its bundle under static/notebook/
    assert '"appName": "Jupyter Notebook"' in tree.text and '"appVersion": "7.' in tree.text, tree.text[:500]
    assert f'src="{base}static/notebook/main.' in tree.text
    lab = browser.get(f"{chp.url}{base}lab", timeout=30)
    assert lab.status_code == 200
    assert '"appName": "JupyterLab"' in lab.text and '"appVersion": "4.' in lab.text, lab.text[:500]

    # A kernel started as the page's JavaScript starts it: its Origin and the XSRF cookie it was given.
    xsrf = browser.cookies.get("_xsrf", "")
    headers = {"Origin": chp.url, "X-XSRFToken": xsrf}
    kernels = f"{chp.url}{base}api/kernels"
    started = browser.post(kernels, json={"name": "python3"}, headers=headers, timeout=60)
    assert started.status_code == 201, started.text[:300]
    kernel_id = started.json()["id"]
    ws_url = f"{chp.url.replace('http://', 'ws://')}{base}api/kernels/{kernel_id}/channels"
    cookies = {c.name: c.value for c in browser.cookies}
    assert asyncio.run(run_cell(ws_url, chp.url, cookies, "print(6*7)")) == "42\n"
    # ... and the server's own cross-origin check still holds through CHP.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(run_cell(ws_url, "http://evil.example", cookies, "print(1)"))
    assert refused.value.status == 403


def test_static_trees_file_is_what_the_image_serves(notebook7_image: str) -> None:
    """roles/tmpnb/files/notebook7/static_trees.json is the probe's answer for this image (re-run
    `scripts/static_trees.py --json roles/tmpnb/files/notebook7/static_trees.json` after a bump),
    and every directory it names exists in the image."""
    trees = static_trees.from_image(notebook7_image)
    shipped = json.loads(STATIC_TREES.read_text())["trees"]
    assert trees == shipped
    dirs = sorted({d for t in trees for d in t["dirs"]})
    listing = docker.from_env().containers.run(
        notebook7_image, ["sh", "-c", 'for d in "$@"; do test -d "$d" && echo "$d"; done', "sh", *dirs],
        entrypoint=[], network_mode="none", remove=True,
    )  # fmt: skip
    assert listing.decode().split() == dirs


def test_notebook7_image_runs_as_jovyan_under_tini_with_nothing_of_the_build(
    dclient: docker.DockerClient, notebook7_image: str
) -> None:
    """The committed image keeps only its runtime settings: uid 1000, tini, the venv on PATH; none
    of the build container's (the CA bundle's path in PIP_CERT pointed at a file the image lacks)."""
    config = dclient.images.get(notebook7_image).attrs["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert env["PATH"].startswith("/opt/notebook/bin:")
    assert not [key for key in env if key.startswith("PIP_")], env
    probe = "id -u; command -v gcc cc pip || true; cat /tmp/tmpnb-build-ca/* 2>/dev/null | wc -c"
    out = dclient.containers.run(
        notebook7_image, ["sh", "-c", probe],
        entrypoint=[], network_mode="none", remove=True,
    ).decode().split()  # fmt: skip
    assert out == ["1000", "0"], out  # jovyan, no compiler nor pip, no CA bundle left in the image
