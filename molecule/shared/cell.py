"""The converged cell as a visitor and its operator see it, shared by the end-to-end scenarios
(`default`; its fault suite too): a test file puts this directory on sys.path, imports the helpers it uses and
loads the fixtures (site_url, chp_token, visitor) with `pytest_plugins = ["cell"]`.

A visitor walks the browser's path (the loopback port Docker published for the test host's port 80,
then nginx -> CHP -> notebook container); loopback-only services (the orchestrator's stats and
health, CHP's admin API) are asked from inside the test host.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import requests
from cell_visitor import (  # noqa: F401 - re-exported: the scenarios' tests import them from cell
    TIMEOUT,
    HeldKernel,
    Visitor,
    browser_headers,
    channels_url,
    client_session,
    delete_kernel,
    execute,
    output_of,
    run_in_kernel,
    start_kernel,
)

CHP_API = "http://127.0.0.1:8001/api/routes"
ORCHESTRATOR = "http://127.0.0.1:9999"


def published_site(host) -> str:
    """The site as a browser on this machine opens it: the published loopback port (like make demo's)."""
    out = subprocess.run(
        ["docker", "port", host.backend.get_hostname(), "80/tcp"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"^127\.0\.0\.1:(\d+)$", out, re.M)
    assert m, f"the test host publishes no loopback port for 80: {out!r}"
    assert m.group(1) not in ("80", "443")
    return f"http://127.0.0.1:{m.group(1)}"


def chp_token_of(host) -> str:
    """CHP's admin token, from the env file the proxy role writes."""
    env = host.file("/etc/configurable-http-proxy/auth.env").content_string
    return re.search(r"^CONFIGPROXY_AUTH_TOKEN=(\S+)$", env, re.M).group(1).strip("'\"")


@pytest.fixture(scope="module")
def site_url(host) -> str:
    """Fixture (a test module gets these with `pytest_plugins = ["cell"]`): the published site."""
    return published_site(host)


@pytest.fixture(scope="module")
def chp_token(host) -> str:
    """Fixture: CHP's admin token."""
    return chp_token_of(host)


HTTP_PROBE = """
import sys, time, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], headers=dict(h.split(": ", 1) for h in sys.argv[2:]))
start = time.monotonic()
try:
    with urllib.request.urlopen(req, timeout=10) as res:
        status, body = res.status, res.read()
except urllib.error.HTTPError as err:
    status, body = err.code, err.read()
sys.stdout.write(f"{status} {time.monotonic() - start:.3f}\\n{body.decode()}")
"""


def systemd_show(host, unit: str, *props: str) -> dict[str, str]:
    """Properties of a systemd unit in the test host (`systemctl show -p ...`)."""
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    values: dict[str, str] = {}
    for line in out.splitlines():  # a property may come on several lines (EnvironmentFiles)
        key, _, value = line.partition("=")
        values[key] = f"{values[key]}\n{value}" if key in values else value
    return values


def host_get_timed(host, url: str, *headers: str) -> tuple[int, str, float]:
    """GET from inside the test host (loopback-only services): (status, body, seconds the request
    took, measured there: no `docker exec` overhead)."""
    out = host.check_output("python3 -c %s %s" + " %s" * len(headers), HTTP_PROBE, url, *headers)
    first, _, body = out.partition("\n")
    status, seconds = first.split()
    return int(status), body, float(seconds)


def host_get(host, url: str, *headers: str) -> tuple[int, str]:
    """GET from inside the test host (loopback-only services): (status, body)."""
    status, body, _ = host_get_timed(host, url, *headers)
    return status, body


def stats(host) -> dict:
    status, body = host_get(host, ORCHESTRATOR + "/api/stats")
    assert status == 200, f"/api/stats answered {status}: {body[:300]}"
    return json.loads(body)


def wait_for_pool(host, want: int = 1, timeout: float = 180) -> dict:
    """The orchestrator's own stats (inside the host): wait until `want` containers are pooled."""
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        status, body = host_get(host, ORCHESTRATOR + "/api/stats")
        if status == 200:
            seen = json.loads(body)
            if seen["available"] >= want:
                return seen
        time.sleep(1)
    raise AssertionError(f"the warm pool did not reach {want} container(s) in {timeout} s: {seen}")


def spawn(host, base_url: str) -> Visitor:
    """GET / like a browser, POST /spawn, follow the redirect to the notebook page."""
    wait_for_pool(host)
    s = requests.Session()
    index = s.get(base_url + "/", timeout=TIMEOUT)
    assert index.status_code == 200, index.text
    assert 'action="/spawn"' in index.text, "GET / is not the spawn page"
    start = time.monotonic()
    res = s.post(base_url + "/spawn", allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == 303, f"POST /spawn answered {res.status_code}: {res.text[:300]}"
    location = res.headers["Location"]
    m = re.match(r"^(?:https?://[^/]+)?(/user/[A-Za-z0-9_-]{11,}/)", location)
    assert m, f"spawn redirected to {location!r}, not to /user/<id>/..."
    page = s.get(requests.compat.urljoin(base_url + "/", location), timeout=TIMEOUT)
    seconds = time.monotonic() - start
    assert page.status_code == 200, f"{location} answered {page.status_code}"
    assert "Jupyter" in page.text
    return Visitor(session=s, site=base_url, user_path=m.group(1), landing=location, seconds=seconds)


@pytest.fixture(scope="module")
def visitor(host, site_url) -> Visitor:
    """Fixture: the module's visitor, in a notebook."""
    v = spawn(host, site_url)
    print(f"\n[figure] time-to-notebook (POST /spawn -> notebook page answered): {v.seconds:.3f} s")
    return v


def routes(host, chp_token: str) -> dict[str, dict]:
    """Every route CHP holds (its admin API, inside the host)."""
    status, body = host_get(host, CHP_API, f"Authorization: token {chp_token}")
    assert status == 200, body
    return json.loads(body)


def container_of(host, chp_token: str, user_path: str) -> tuple[str, str]:
    """(container name, container IP) of the route CHP holds for a user path."""
    target = routes(host, chp_token)[user_path.rstrip("/")]["target"]
    ip = re.match(r"^https?://([\d.]+):\d+", target).group(1)
    names = host.check_output(
        "docker ps --filter label=tmpnb.user_path=%s --format '{{.Names}}'" % user_path  # noqa: UP031
    ).split()
    assert len(names) == 1, f"expected one container for {user_path}, got {names}"
    inspect = json.loads(host.check_output(f"docker inspect {names[0]}"))[0]
    ips = [n["IPAddress"] for n in inspect["NetworkSettings"]["Networks"].values()]
    assert ip in ips, f"CHP routes {user_path} to {ip}, but {names[0]} has {ips}"
    return names[0], ip


def notebook_containers(host) -> list[dict]:
    """`docker inspect` of every container the orchestrator labelled (any instance, any state)."""
    ids = host.check_output("docker ps -aq --filter label=tmpnb.instance").split()
    return json.loads(host.check_output("docker inspect " + " ".join(ids))) if ids else []


def route_mismatch(host, chp_token: str) -> list[str]:
    """What breaks "every notebook container has a CHP route to its address, every user route a
    running container" (empty when it holds)."""
    user_routes = {
        path: r["target"]
        for path, r in routes(host, chp_token).items()
        if path.startswith("/user/") or "tmpnb_instance" in r
    }
    problems: list[str] = []
    containers: dict[str, dict] = {}
    for c in notebook_containers(host):
        path = c["Config"]["Labels"].get("tmpnb.user_path", "").rstrip("/")
        containers[path] = c
        if c["State"]["Status"] != "running":
            problems.append(f"container {c['Name']} is {c['State']['Status']}")
            continue
        target = user_routes.get(path)
        ips = [n["IPAddress"] for n in c["NetworkSettings"]["Networks"].values()]
        if target is None:
            problems.append(f"container {c['Name']} ({path}) has no route")
        elif re.match(r"^https?://([\d.]+):", target).group(1) not in ips:
            problems.append(f"route {path} -> {target}, but {c['Name']} has {ips}")
    problems += [f"route {p} -> {t} has no container" for p, t in user_routes.items() if p not in containers]
    return problems


def wait_routes_match_containers(host, chp_token: str, timeout: float = 90) -> float:
    """Wait until no container boots or is being removed and routes and containers agree (both
    change while the pool refills); seconds it took. Fails with what still disagrees."""
    start = time.monotonic()
    problems: list[str] = ["not checked"]
    while time.monotonic() - start < timeout:
        now = stats(host)
        if now["starting"] == 0 and now["removing"] == 0:
            problems = route_mismatch(host, chp_token)
            if not problems:
                return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"routes and containers still disagree after {timeout} s: {problems}")
