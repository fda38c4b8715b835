"""End-to-end proof of the whole cell converged by site.yml, through nginx.

Requests go from this machine (the controller) the way a newcomer's browser goes after `make demo`:
to the loopback port Docker published for the test host's port 80 (a non-default port, so Host and
Origin carry a port), then nginx -> CHP -> notebook container, with the orchestrator behind CHP's
default route. A few checks use the host's own address on port 80 too. Figures (time-to-notebook)
are printed, never asserted.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import aiohttp
import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "molecule/shared"))
sys.path.insert(0, str(ROOT / "scripts"))
pytest.register_assert_rewrite("cell")
from cell import (  # noqa: E402 - the shared module of the end-to-end scenarios
    TIMEOUT,
    browser_headers,
    container_of,
    delete_kernel,
    execute,
    host_get,
    run_in_kernel,
    spawn,
    start_kernel,
    systemd_show,
)

# The shared fixtures (site_url, chp_token, visitor) come from the same module.
pytest_plugins = ["cell"]

GROUP_VARS = yaml.safe_load((ROOT / "inventories/local/group_vars/tmpnb.yml").read_text())
# the demo image's static trees, from the inventory's image catalogue (nginx_static_trees follows it)
STATIC_TREES = GROUP_VARS["tmpnb_images"][GROUP_VARS["tmpnb_image"]]["static_trees"]
# what this scenario's host_vars change on top of the local inventory (tmpnb_capacity)
HOST_VARS = yaml.safe_load((ROOT / "molecule/default/inventory/host_vars/tmpnb-default.yml").read_text())
# Notebook 7's own bundles (static/notebook/ -> notebook/static in the image).
STATIC_TREE = next(t for t in STATIC_TREES if t["prefix"] == "static/notebook/")
LIMITS_NOFILE = 1048576  # limits_nofile's default; the local inventory does not change it


@pytest.fixture(scope="module")
def base_url(host) -> str:
    out = host.check_output("ip -4 -o addr show dev eth0")
    ip = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out).group(1)
    return f"http://{ip}"


# --- idempotence is Molecule's own step; here: units, limits, hardening ------------------------


def _nofile(host, pid: str) -> tuple[int, int]:
    """(soft, hard) open-files limit in force for a process."""
    limits = host.check_output(f"cat /proc/{pid}/limits")
    m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.M)
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize(
    "unit", ["tmpnb.service", "configurable-http-proxy.service", "nginx.service", "docker.service"]
)
def test_unit_runs_with_configured_open_files(host, unit):
    props = systemd_show(host, unit, "ActiveState", "LimitNOFILE", "MainPID")
    assert props["ActiveState"] == "active", f"{unit}: {props}"
    assert int(props["LimitNOFILE"]) == LIMITS_NOFILE, f"{unit}: configured {props['LimitNOFILE']}"
    # The configured value is in force up to the ceiling systemd itself runs under (PID 1's hard
    # limit: 20000 on these machines, which lack CAP_SYS_RESOURCE).
    ceiling = _nofile(host, "1")[1]
    effective = _nofile(host, props["MainPID"])
    assert effective == (min(LIMITS_NOFILE, ceiling),) * 2, f"{unit}: effective open files {effective}"


def test_tmpnb_unit_hardening(host):
    props = systemd_show(
        host,
        "tmpnb.service",
        "User",
        "SupplementaryGroups",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "Restart",
        "RestartUSec",
        "EnvironmentFiles",
        "MainPID",
    )
    assert props["User"] == "tmpnb"
    assert props["SupplementaryGroups"] == "docker"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["Restart"] == "always"
    assert props["RestartUSec"] != "0"
    assert "/etc/configurable-http-proxy/auth.env" in props["EnvironmentFiles"]
    assert "/etc/tmpnb/secrets.env" in props["EnvironmentFiles"]
    # In force on the running process, not only written in the unit.
    status = host.check_output(f"cat /proc/{props['MainPID']}/status")
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert host.check_output(f"ps -o user= -p {props['MainPID']}").strip() == "tmpnb"
    secrets = host.file("/etc/tmpnb/secrets.env")
    assert secrets.mode == 0o600 and secrets.user == "root"
    assert re.search(r"^TMPNB_ADMIN_TOKEN=\S{32,}$", secrets.content_string, re.M)


def test_orchestrator_config_is_the_inventorys(host):
    config = host.file("/etc/tmpnb/tmpnb.toml").content_string
    assert f'image = "{GROUP_VARS["tmpnb_image"]}"' in config
    assert f"capacity = {HOST_VARS['tmpnb_capacity']}" in config
    assert f"pool_size = {GROUP_VARS['tmpnb_pool_size']}" in config
    assert f"mem_limit_mb = {GROUP_VARS['tmpnb_slice_mb']}" in config
    assert host.run("/opt/tmpnb/venv/bin/tmpnb --check-config /etc/tmpnb/tmpnb.toml").rc == 0


def test_chp_admin_api_loopback_only_and_token_required(host, base_url, chp_token):
    listening = host.check_output("ss -Htlnp")
    admin = [line for line in listening.splitlines() if re.search(r":8001\s", line)]
    assert admin, "nothing listens on port 8001"
    assert all(re.search(r"\s127\.0\.0\.1:8001\s", line) for line in admin), admin
    assert host_get(host, "http://127.0.0.1:8001/api/routes")[0] == 403
    assert host_get(host, "http://127.0.0.1:8001/api/routes", "Authorization: token wrong")[0] == 403
    assert host_get(host, "http://127.0.0.1:8001/api/routes", f"Authorization: token {chp_token}")[0] == 200
    ip = base_url.removeprefix("http://")
    for port in (8000, 8001, 9999):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{ip}:{port}/", timeout=5)


# --- the visitor's path --------------------------------------------------------------------------


def test_spawn_lands_on_a_notebook_through_nginx(host, visitor, chp_token):
    assert visitor.landing.endswith(visitor.user_path + "tree"), visitor.landing
    page = visitor.session.get(visitor.site + visitor.user_path + "api/status", timeout=TIMEOUT)
    assert page.status_code == 200 and "kernels" in page.json()
    name, _ = container_of(host, chp_token, visitor.user_path)
    image = host.check_output("docker inspect -f '{{.Config.Image}}' %s" % name)  # noqa: UP031
    assert image == GROUP_VARS["tmpnb_image"]


def test_kernel_runs_code_over_websocket_through_the_chain(visitor):
    assert run_in_kernel(visitor, "print(6*7)") == "42\n"


def test_kernel_websocket_from_a_foreign_origin_is_refused(visitor):
    """The notebook server's own cross-origin protection stays on through the chain."""
    kernel_id = start_kernel(visitor)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            execute(visitor, kernel_id, "print(1)", origin="http://evil.example")
        assert err.value.status == 403, err.value
    finally:
        delete_kernel(visitor, kernel_id)


def test_api_write_with_the_browsers_origin_succeeds(visitor):
    """POST api/contents (New -> Notebook) as the browser sends it, through the published port."""
    url = visitor.site + visitor.user_path + "api/contents"
    new = {"type": "notebook"}
    res = visitor.session.post(url, json=new, headers=browser_headers(visitor), timeout=TIMEOUT)
    assert res.status_code == 201, f"creating a notebook answered {res.status_code}: {res.text[:300]}"
    path = res.json()["path"]
    listed = visitor.session.get(url, timeout=TIMEOUT).json()
    assert path in [item["path"] for item in listed["content"]]
    # The same write from a foreign page is refused, and creates nothing.
    evil = visitor.session.post(
        url, json=new, headers=browser_headers(visitor, "http://evil.example"), timeout=TIMEOUT
    )
    assert evil.status_code in (403, 404), f"a cross-origin write answered {evil.status_code}"
    after = visitor.session.get(url, timeout=TIMEOUT).json()
    assert len(after["content"]) == len(listed["content"])


def _chp_pid(host) -> str:
    return systemd_show(host, "configurable-http-proxy.service", "MainPID")["MainPID"]


def test_static_file_served_by_nginx_from_the_image_copy_without_chp(host, base_url, visitor, chp_token):
    # A file as the image holds it (a fresh container of the image: no exec into a visitor's): the
    # first .js of Notebook 7's static/notebook/ tree, nested under static/ (its own copy).
    image, path = GROUP_VARS["tmpnb_image"], STATIC_TREE["path"]
    name = host.check_output(
        f"docker run --rm --network none --entrypoint sh {image} -c "
        f"'cd {path} && find . -maxdepth 1 -name \"*.js\" -type f | sort | head -n 1'"
    ).removeprefix("./")
    assert name, f"no .js file in {path} of {image}"
    in_image = base64.b64decode(
        host.check_output(f"docker run --rm --network none --entrypoint base64 {image} -w0 {path}/{name}")
    )
    url = base_url + visitor.user_path + STATIC_TREE["prefix"] + name
    pid = _chp_pid(host)
    # Freeze CHP: whatever nginx sends it now hangs. The static file must still come back at once,
    # and a proxied path must not (the control that the freeze works).
    host.run(f"kill -STOP {pid}")
    try:
        res = requests.get(url, timeout=10)
        with pytest.raises(requests.Timeout):
            requests.get(base_url + visitor.user_path + "api/status", timeout=3)
    finally:
        host.run(f"kill -CONT {pid}")
    assert res.status_code == 200, f"{url} answered {res.status_code}"
    assert res.content == in_image, "nginx's copy differs from the file in the image"
    # And CHP is fine again afterwards.
    again = visitor.session.get(base_url + visitor.user_path + "api/status", timeout=TIMEOUT)
    assert again.status_code == 200


def test_two_visitors_get_isolated_containers(host, site_url, visitor, chp_token):
    other = spawn(host, site_url)
    print(f"\n[figure] time-to-notebook, second visitor: {other.seconds:.3f} s")
    assert other.user_path != visitor.user_path
    name_a, ip_a = container_of(host, chp_token, visitor.user_path)
    name_b, ip_b = container_of(host, chp_token, other.user_path)
    assert name_a != name_b and ip_a != ip_b
    port = GROUP_VARS.get("tmpnb_container_port", 8888)
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"
    # The host itself (where CHP runs) reaches both notebook servers: the probe works...
    for ip in (ip_a, ip_b):
        assert host.run(f"python3 -c '{probe}' {ip} {port}").rc == 0, f"the host cannot reach {ip}:{port}"
    # ...but from inside each visitor's notebook (code run in its kernel), the other's is unreachable.
    connect = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(({ip!r}, {port}), timeout=3).close()\n"
        "    print('REACHED')\n"
        "except OSError as exc:\n"
        "    print('BLOCKED', type(exc).__name__)\n"
    )
    for who, target in ((visitor, ip_b), (other, ip_a)):
        out = run_in_kernel(who, connect.format(ip=target, port=port))
        assert out.startswith("BLOCKED"), f"{who.user_path} reached {target}:{port}: {out}"
