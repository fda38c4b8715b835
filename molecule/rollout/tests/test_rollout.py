"""The rollout that loses nobody (issue 8), end to end on one converged cell.

Image A (Notebook 7, the inventory's tmpnb_image) -> image B (Debian's classic notebook 6) -> A,
each with `playbooks/redeploy.yml -e tmpnb_image=<name>` (the operator's command), while a visitor
of the old image works: a stream of their requests (static files and API, through the published
port: nginx -> CHP -> container) runs during the whole redeploy. Then: no request of the stream
failed; their kernel kept its state; their static files are still nginx's copy of THEIR image
(byte-identical to the files in the image, read with docker cp, not with the extractor); a new
visitor lands on the new image and gets its files; the pool holds only the new image; nginx was
reloaded, never restarted; once the old visitor is culled, the old image's copy goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from cell import (
    CHP_API,
    TIMEOUT,
    Visitor,
    browser_headers,
    chp_token_of,
    execute,
    host_get,
    published_site,
    spawn,
    start_kernel,
)
from role_run import run_playbook

A = "tmpnb-notebook7:1"
B = "tmpnb-notebook:debian-1"
DEST = "/var/lib/tmpnb-static"
ACCESS_LOG = "/var/log/nginx/access.log"
# One static file per image that its page loads, and where it is in the image.
PROBES = {
    A: [
        ("static/notebook/", "/opt/notebook/lib/python3.11/site-packages/notebook/static"),
        ("static/lab/", "/opt/notebook/share/jupyter/lab/static"),
    ],
    B: [("static/", "/usr/lib/python3/dist-packages/notebook/static")],
}


def image_id(host, image: str) -> str:
    return host.check_output(f"docker image inspect --format '{{{{.Id}}}}' {image}").removeprefix("sha256:")


def key_of(host, image: str) -> str:
    return image_id(host, image)[:12]


def static_files(host, image: str) -> dict[str, str]:
    """URL path under /user/<id>/ -> path in the image, for a few .js files of each probed tree
    (picked from the extractor's manifest: which files, not their bytes)."""
    files = {}
    for prefix, in_image in PROBES[image]:
        name = prefix.rstrip("/").replace("/", "_")
        link = host.file(f"{DEST}/images/{key_of(host, image)}/{name}")
        assert link.is_symlink, f"{link.path}: no copy of {image}'s {prefix} linked under its key"
        manifest = json.loads(host.file(str(Path(link.linked_to).parent / "manifest.json")).content_string)
        # not under a longer tree prefix of another image (static/notebook/ of the classic image's
        # static/ tree): that location looks for this image's own copy of that tree, and falls back
        # to CHP (the container) when the image has none
        longer = [q for _, trees in PROBES.items() for q, _ in trees if q != prefix and q.startswith(prefix)]
        js = [
            e["path"]
            for e in manifest["files"]
            if e["path"].endswith(".js")
            and e["bytes"] > 2000
            and not any((prefix + e["path"]).startswith(q) for q in longer)
        ][:2]
        assert js, f"no .js file in {image}'s {prefix}"
        files.update({prefix + p: f"{in_image}/{p}" for p in js})
    return files


def image_sha256(host, image: str, paths: list[str]) -> dict[str, str]:
    """sha256 of files as the image holds them (docker cp from a created, never started container)."""
    cid = host.check_output(f"docker create --network none --entrypoint /nonexistent {image}")
    try:
        return {
            p: host.check_output(f"docker cp {cid}:{p} - | tar -xO | sha256sum").split()[0] for p in paths
        }
    finally:
        host.run(f"docker rm -f {cid}")


def served(host, visitor: Visitor, files: dict[str, str]) -> dict[str, str]:
    """sha256 of what the visitor gets for each URL path, and that nginx itself answered (upstream=-
    in its access log, not CHP)."""
    got = {}
    for url_path in files:
        res = visitor.session.get(visitor.site + visitor.user_path + url_path, timeout=TIMEOUT)
        assert res.status_code == 200, f"{url_path}: {res.status_code}"
        got[url_path] = hashlib.sha256(res.content).hexdigest()
    log = host.check_output(f"tail -n 400 {ACCESS_LOG}")
    for url_path in files:
        lines = [ln for ln in log.splitlines() if f"GET {visitor.user_path}{url_path} " in ln]
        assert lines and "upstream=-" in lines[-1], f"{url_path} was not served by nginx: {lines[-1:]}"
    return got


@dataclass
class Stream:
    """A visitor's requests while the redeploy runs: their static files and their API, one after
    the other from a thread, each failure (status other than 200 or no answer) recorded."""

    visitor: Visitor
    paths: list[str]
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # connection closed under a reused connection
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Stream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        session.cookies.update(self.visitor.session.cookies)
        headers = browser_headers(self.visitor)
        urls = [
            self.visitor.site + self.visitor.user_path + p for p in [*self.paths, "api/kernels", "api/status"]
        ]
        while not self._stop.is_set():
            for url in urls:
                for attempt in (1, 2):
                    try:
                        res = session.get(url, headers=headers, timeout=TIMEOUT)
                        if res.status_code != 200:
                            self.failures.append(f"{url}: {res.status_code}")
                        break
                    except requests.ConnectionError as exc:
                        # A kept-alive connection nginx closed as it reloaded (its old workers close
                        # idle ones): a browser sends a GET again on a new connection (RFC 9112
                        # 9.3.1). Counted, and retried once; a second failure is a failure.
                        if attempt == 2:
                            self.failures.append(f"{url}: {type(exc).__name__}")
                        else:
                            self.retried.append(url)
                    except requests.RequestException as exc:
                        self.failures.append(f"{url}: {type(exc).__name__}")
                        break
                self.requests += 1
            time.sleep(0.05)

    def stop(self) -> Stream:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=2 * TIMEOUT)
        return self


def nginx_master_pid(host) -> str:
    return host.check_output("systemctl show --property MainPID --value nginx.service")


def pooled_images(host) -> list[str]:
    status, body = host_get(host, CHP_API, f"Authorization: token {chp_token_of(host)}")
    assert status == 200, body
    return [r["tmpnb_image"] for r in json.loads(body).values() if r.get("tmpnb_state") == "pooled"]


def wait_until(what: str, check, timeout: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(1)
    return time.monotonic() - start


def container_gone(host, visitor: Visitor) -> bool:
    return host.check_output(f"docker ps -aq --filter label=tmpnb.user_path={visitor.user_path}") == ""


def new_wheel(directory: Path) -> Path:
    """The orchestrator as another wheel (other bytes, same version: what a fix release brings to
    the host): the redeploy installs it and restarts the orchestrator, which adopts every container."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(directory),
         os.environ["MOLECULE_PROJECT_DIRECTORY"]],
        env={**os.environ, "SOURCE_DATE_EPOCH": "946684800"},  # not prepare.yml's snapshot's
        check=True,
        capture_output=True,
    )  # fmt: skip
    return next(directory.glob("tmpnb-*-py3-none-any.whl"))


def orchestrator_pid(host) -> str:
    return host.check_output("systemctl show --property MainPID --value tmpnb.service")


def roll(host, old: str, new: str, wheel: Path | None = None) -> None:
    site = published_site(host)
    before = spawn(host, site)  # the visitor of the old image
    assert before.user_id.startswith(key_of(host, old) + "-"), before.user_id
    kernel = start_kernel(before)
    execute(before, kernel, "x = 41")
    files = static_files(host, old)
    expected = image_sha256(host, old, list(files.values()))
    assert served(host, before, files) == {u: expected[p] for u, p in files.items()}
    nginx_pid = nginx_master_pid(host)
    orchestrator = orchestrator_pid(host)

    stream = Stream(before, list(files)).start()
    started = time.monotonic()
    # the inventory directory: its links put the host in the `tmpnb` group with the local group_vars
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    extra = {"tmpnb_image": new, **({"tmpnb_wheel": str(wheel)} if wheel else {})}
    run = run_playbook("redeploy.yml", "-i", inventory, extra=extra)
    took = time.monotonic() - started
    time.sleep(2)  # the stream goes on a moment after the switch
    stream.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    said = re.search(r"redeploy to \S+ took ([\d.]+) s", run.stdout)
    assert said, "the playbook did not run the redeploy: " + run.stdout[-2000:]
    print(
        f"\n[figure] redeploy {old} -> {new}: {took:.1f} s (the playbook says "
        f"{said.group(1)} s); the visitor's stream: {stream.requests} requests, "
        f"{len(stream.failures)} failed ({len(stream.retried)} retried once on a new connection, "
        "as a browser does)"
    )
    assert stream.requests > 20, "the stream barely ran"
    assert stream.failures == [], stream.failures[:10]
    assert nginx_master_pid(host) == nginx_pid, "nginx was restarted (a reload keeps its master)"
    if wheel:  # a new orchestrator: restarted, and it adopted the visitor's container (below)
        assert orchestrator_pid(host) != orchestrator, "the new wheel did not restart the orchestrator"
        print(f"[figure] the redeploy also installed a new orchestrator wheel ({wheel.name}): restarted")
    else:  # a new image only: a SIGHUP reload, the same process
        assert orchestrator_pid(host) == orchestrator, "the orchestrator was restarted for an image change"

    # The old visitor: same kernel, same state, still their own image's files from nginx.
    assert execute(before, kernel, "print(x + 1)").strip() == "42"
    assert served(host, before, files) == {u: expected[p] for u, p in files.items()}

    # The pool holds only the new image (idle containers of the old one replaced).
    waited = wait_until("the pool holds only the new image", lambda: set(pooled_images(host)) == {new}, 180)
    print(f"[figure] pool refilled with {new} only {waited:.0f} s after the redeploy")

    # A new visitor lands on the new image and gets its files from nginx.
    after = spawn(host, site)
    assert after.user_id.startswith(key_of(host, new) + "-"), after.user_id
    new_files = static_files(host, new)
    new_expected = image_sha256(host, new, list(new_files.values()))
    assert served(host, after, new_files) == {u: new_expected[p] for u, p in new_files.items()}

    # Once the old visitor is culled (idle past the scenario's 25 s), the timer prunes the old copy.
    old_link = f"{DEST}/images/{key_of(host, old)}"
    culled = wait_until("the old visitor culled", lambda: container_gone(host, before), 120)
    pruned = wait_until("the old image's copy pruned", lambda: not host.file(old_link).exists, 60)
    print(
        f"[figure] old visitor culled {culled:.0f} s after the checks; "
        f"{old}'s copy pruned {pruned:.0f} s later"
    )
    assert not [d for d in host.check_output(f"ls {DEST}").split() if d.startswith(image_id(host, old))]
    assert host.file(f"{DEST}/images/{key_of(host, new)}").is_directory


@pytest.mark.parametrize(("old", "new"), [(A, B), (B, A)], ids=["A-to-B", "rollback-B-to-A"])
def test_a_redeploy_loses_nobody(host, old: str, new: str, tmp_path: Path) -> None:
    """The rollback also upgrades the orchestrator (a new wheel) in the same command."""
    status, body = host_get(host, "http://127.0.0.1:9999/api/stats")
    assert status == 200 and json.loads(body)["image"] == old, body
    roll(host, old, new, wheel=new_wheel(tmp_path) if new == A else None)
