"""The Strata benchmark's disposable test host (bench/strata.py runs the phases): creating and
removing it (playbooks/testhost.yml, site.yml with inventories/bench), commands inside it, CHP's
admin API and open-files limit, the light echo backends routed like notebooks, and the evidence
read back from it (CHP's EMFILE lines, nginx's errors, container CPU and memory, the machine)."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tmpnb.reconcile import DATA_INSTANCE

ROOT = Path(__file__).resolve().parents[1]
HOST = "tmpnb-bench"
INVENTORY = "inventories/bench"
CHP_UNIT = "configurable-http-proxy.service"
DROP_IN = f"/etc/systemd/system/{CHP_UNIT}.d/99-bench-strata-nofile.conf"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ECHO_NAME = "tmpnb-bench-echo"
ECHO_PORT = 8888
ECHO_USERS = 2000
ECHO_IMAGE = "tmpnb-notebook:debian-1"  # has Tornado; the echo app is not Jupyter

# Runs inside the host: CHP's admin API with the token of its EnvironmentFile.
ADMIN_SCRIPT = r"""
import json, sys, urllib.request
token = [l.split("=", 1)[1].strip() for l in open("/etc/configurable-http-proxy/auth.env")
         if l.startswith("CONFIGPROXY_AUTH_TOKEN=")][0]
out = []
for method, path, body in json.load(sys.stdin):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:8001/api/routes" + path, data=data, method=method,
                                 headers={"Authorization": "token " + token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
        out.append(json.loads(text) if text else None)
print(json.dumps(out))
"""


class BenchError(RuntimeError):
    pass


def sh(argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 600) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        err = proc.stderr.strip()[-2000:]
        raise BenchError(f"{shlex.join(argv)[:200]} failed ({proc.returncode}): {err}")
    return proc.stdout


def in_host(script: str, *, input: str | None = None, check: bool = True) -> str:
    return sh(["docker", "exec", "-i", HOST, "sh", "-c", script], input=input, check=check)


def admin(calls: list[tuple[str, str, Any]]) -> list[Any]:
    out = sh(["docker", "exec", "-i", HOST, "python3", "-c", ADMIN_SCRIPT], input=json.dumps(calls))
    return json.loads(out)


def routes() -> dict[str, Any]:
    return admin([("GET", "", None)])[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ansible(*args: str) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"ansible-playbook {' '.join(args)} failed:\n{proc.stdout[-3000:]}")
    return round(time.monotonic() - t0, 1)


def create_host(port: int) -> dict[str, float]:
    host_s = ansible("playbooks/testhost.yml", "-i", INVENTORY, "-e", "testhost_scenario=bench",
                     "-e", f"testhost_port={port}")  # fmt: skip
    site_s = ansible("site.yml", "-i", INVENTORY)
    return {"test_host_s": host_s, "site_yml_s": site_s}


def destroy_host() -> None:
    ansible("playbooks/testhost.yml", "-i", INVENTORY, "-e", "testhost_scenario=bench",
            "-e", "testhost_state=absent")  # fmt: skip


def wait(what: str, predicate: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except BenchError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---- the proxy's open-files limit ---------------------------------------------------------------
def chp_limits() -> dict[str, Any]:
    configured = in_host(f"systemctl show -p LimitNOFILE --value {CHP_UNIT}").strip()
    pid = in_host(f"systemctl show -p MainPID --value {CHP_UNIT}").strip()
    line = in_host(f"grep 'Max open files' /proc/{pid}/limits")
    soft = int(line.split()[3])
    return {"configured": configured, "effective_soft": soft, "pid": int(pid)}


def restart_chp(nofile: int | None) -> dict[str, Any]:
    """Write (nofile given) or remove the bench's drop-in, restart CHP, wait until it answers and the
    orchestrator has re-posted its routes (CHP keeps routes in memory only)."""
    if nofile is None:
        in_host(f"rm -f {DROP_IN}; rmdir --ignore-fail-on-non-empty {Path(DROP_IN).parent} 2>/dev/null; true")
    else:
        text = f"# bench/strata.py only: tmpnb.org's open-files limit\n[Service]\nLimitNOFILE={nofile}\n"
        in_host(f"mkdir -p {Path(DROP_IN).parent} && cat > {DROP_IN}", input=text)
    in_host(f"systemctl daemon-reload && systemctl restart {CHP_UNIT}")
    t0 = time.monotonic()
    wait("CHP's health check", lambda: answers("http://127.0.0.1:8000/_chp_healthz"), 60)
    wait("the orchestrator's routes back in CHP", lambda: len(real_paths()) >= 4, 90)
    return {**chp_limits(), "routes_back_after_s": round(time.monotonic() - t0, 1)}


def answers(url: str) -> bool:
    """True when ``url`` answers 2xx from inside the host."""
    in_host(f"python3 -c \"import urllib.request as u; u.urlopen('{url}', timeout=2)\"")
    return True


def real_paths() -> list[str]:
    """The orchestrator's routes (real notebook servers): they carry its instance in their data."""
    return sorted(p for p, d in routes().items() if p.startswith("/user/") and d.get(DATA_INSTANCE))


# ---- the light echo backends --------------------------------------------------------------------
def start_echo() -> str:
    sh(["docker", "cp", str(ROOT / "bench" / "echo_kernel.py"), f"{HOST}:/opt/echo_kernel.py"])
    in_host(f"docker rm -f {ECHO_NAME} >/dev/null 2>&1; chmod 0644 /opt/echo_kernel.py; "
            f"docker run -d --name {ECHO_NAME} --user 1000:1000 --ulimit nofile=16384:16384 "
            f"-v /opt/echo_kernel.py:/opt/echo_kernel.py:ro {ECHO_IMAGE} "
            f"python3 /opt/echo_kernel.py --port {ECHO_PORT} --users {ECHO_USERS} --processes 2")  # fmt: skip
    ip = in_host(f"docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {ECHO_NAME}").strip()
    if not ip:
        raise BenchError(f"{ECHO_NAME} has no address on the default bridge")
    target = f"http://{ip}:{ECHO_PORT}"
    wait("the echo backend", lambda: answers(f"{target}/_echo/health"), 60)
    return target


def route_echo(target: str, spawn: bool) -> None:
    """Route /user/echo-<i> to the echo backend (and /spawn too, when ``spawn``; else unrouted)."""
    calls: list[tuple[str, str, Any]] = [
        ("POST", f"/user/echo-{i}", {"target": target, "bench": "strata"}) for i in range(ECHO_USERS)
    ]
    if spawn:
        calls.append(("POST", "/spawn", {"target": target, "bench": "strata"}))
    elif "/spawn" in routes():
        calls.append(("DELETE", "/spawn", None))
    admin(calls)


def spawn_to_real(paths: list[str]) -> str:
    """/spawn to a dispatcher that sends visitors round robin to the real pooled servers (the pool
    has 4, capacity 6: handing them out would leave nothing for the next level)."""
    in_host(f"docker rm -f {ECHO_NAME}-spawn >/dev/null 2>&1; true")
    ids = ",".join(p.removeprefix("/user/") for p in paths)
    in_host(f"docker run -d --name {ECHO_NAME}-spawn --user 1000:1000 -v /opt/echo_kernel.py:/opt/e.py:ro "
            f"{ECHO_IMAGE} python3 /opt/e.py --port {ECHO_PORT} --users 0 --spawn-ids={ids}")  # fmt: skip
    ip = in_host(f"docker inspect -f '{{{{.NetworkSettings.IPAddress}}}}' {ECHO_NAME}-spawn").strip()
    target = f"http://{ip}:{ECHO_PORT}"
    wait("the dispatcher", lambda: answers(f"{target}/_echo/health"), 60)
    admin([("POST", "/spawn", {"target": target, "bench": "strata"})])
    return target


# ---- evidence from the host ---------------------------------------------------------------------
def emfile_lines(journal: str) -> list[str]:
    """CHP's log lines that report EMFILE, colour codes removed: one per error (Node prints the
    error object's fields, ``code: 'EMFILE'`` among them, on lines of their own: not counted)."""
    plain = (ANSI.sub("", line) for line in journal.splitlines())
    return [line for line in plain if "EMFILE" in line and "[ConfigProxy]" in line]


def journal_emfile(since: float) -> dict[str, Any]:
    out = in_host(f"journalctl --no-pager -o cat -u {CHP_UNIT} --since @{int(since)}", check=False)
    hits = emfile_lines(out)
    return {"emfile_lines": len(hits), "first": hits[:3]}


NGINX_NOISE = re.compile(r"^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?([^,]*).*$")


def nginx_errors() -> dict[str, int]:
    """nginx's error log since the last call, by message (client and request left out); emptied."""
    out = in_host("cat /var/log/nginx/error.log 2>/dev/null; : > /var/log/nginx/error.log", check=False)
    counts: dict[str, int] = {}
    for line in out.splitlines():
        m = NGINX_NOISE.match(line)
        key = f"[{m.group(1)}] {m.group(2)}" if m else line[:120]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])


def container_stats() -> dict[str, Any]:
    """CPU and memory of the notebook containers (docker stats, one sample)."""
    out = in_host("docker stats --no-stream --format '{{.Name}} {{.CPUPerc}} {{.MemUsage}}'", check=False)
    stats: dict[str, Any] = {}
    for line in out.splitlines():
        name, cpu, mem = line.split(" ", 2)
        key = name if name.startswith(ECHO_NAME) else "notebook " + name[-8:]
        stats[key] = {"cpu": cpu, "mem": mem.split(" / ")[0]}
    return stats


def host_address() -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    address = sh(["docker", "inspect", "-f", fmt, HOST]).strip()
    if not address:
        raise BenchError(f"{HOST} has no address on this machine's Docker network")
    return address


def machine() -> dict[str, Any]:
    return {
        "cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "nofile_hard": int(sh(["sh", "-c", "ulimit -Hn"]).strip()),
    }
