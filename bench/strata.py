"""Benchmark 1 (issue 7): the Strata reproduction, on the deployed stack in a disposable test host.

    make bench-strata        (or: .venv/bin/python -m bench.strata [--keep] [--port N])

The host (tmpnb-bench, inventories/bench: limits_users=1000, a warm pool of 4 real notebook
servers of tmpnb-notebook:debian-1) is created from the shared platform and site.yml converges it;
then tmpnb-crowd runs from this machine through nginx's published loopback port:

  a) CHP's LimitNOFILE forced to 1024 (tmpnb.org's setting) by a bench-only systemd drop-in, the
     seed's load (110 visitors x 2 notebooks x 3 websockets = 660, 1,320 descriptors in CHP):
     must fail, with EMFILE in CHP's journal and failed websockets;
  b) drop-in removed (the kit's limits), the same load: 0 errors;
  c) concurrent kernel websockets pushed as far as this machine's 20,000-descriptor ceiling allows:
     first on the 4 real Jupyter servers (until visitors fail; CPU and memory recorded), then on light
     websocket echo backends (bench/echo_kernel.py, NOT Jupyter) routed in CHP like notebooks.

A fake is used where the machine cannot hold the real thing, and the output says so: 220 real
kernels (the seed's 110 x 2) do not fit in 4 slices of 512 MB, so a) and b) run their 660 websockets
against the echo backend, and the real servers are measured on their own in c).

Writes bench/results/strata.json (every phase's figures, the machine) and prints a summary. The
test host is removed at the end, also on failure or Ctrl-C (--keep leaves it for a look).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from bench.strata_host import (
    ECHO_NAME,
    HOST,
    INVENTORY,
    ROOT,
    BenchError,
    admin,
    chp_limits,
    container_stats,
    create_host,
    destroy_host,
    free_port,
    host_address,
    in_host,
    journal_emfile,
    machine,
    nginx_errors,
    real_paths,
    restart_chp,
    route_echo,
    spawn_to_real,
    start_echo,
)
from tmpnb.crowd.options import Options
from tmpnb.crowd.runner import run as crowd_run

RESULTS = ROOT / "bench" / "results"
SEED_NOFILE = 1024
SEED = {"visitors": 110, "kernels": 2, "sockets_per_kernel": 3}
# Real servers: 4 visitors (one per pooled server) x 2 kernels x S websockets per kernel.
REAL_SOCKETS_PER_KERNEL = (10, 40, 83, 160)
# Echo: websockets in all; 2 kernels x 5 sockets per visitor keeps the crowd's own descriptors
# (a visitor's HTTP connections besides its sockets) under this machine's 20,000.
# Start at the target (1,000 users x 2 x 3), then towards CHP's ceiling (about 2.35
# descriptors per websocket: ~8,500 in 20,000); once one fails, the level halfway back.
ECHO_UP = (6000, 9000, 9600)
ECHO_STAY = 90.0
ECHO_PER_VISITOR = (2, 5)


# ---- one crowd ----------------------------------------------------------------------------------
def crowd(url: str, visitors: int, kernels: int, sockets_per_kernel: int, *, arrival: float, stay: float,
          think: float, stats_mid: bool = False) -> dict[str, Any]:  # fmt: skip
    opts = Options(
        url=url, visitors=visitors, kernels=kernels, sockets_per_kernel=sockets_per_kernel, arrival=arrival,
        stay=stay, think=think, host_container=HOST, delete_kernels=True, step_timeout=60.0,
        timeout=arrival + stay + 180.0, max_assets=10,
    )  # fmt: skip
    mid: dict[str, Any] = {}
    sampler = None
    if stats_mid:  # the servers' CPU and memory while the sockets are open
        sampler = threading.Timer(arrival + stay / 2, lambda: mid.update(container_stats()))
        sampler.start()
    t0 = time.time()
    report = crowd_run(opts)
    if sampler is not None:
        sampler.cancel()
    s = report.summary()
    wanted = visitors * kernels * sockets_per_kernel
    return {
        "started_epoch": t0,
        "visitors": visitors, "kernels": kernels, "sockets_per_kernel": sockets_per_kernel,
        "websockets_wanted": wanted, "peak_websockets": s["peak_sockets"],
        "ok": s["ok"], "failed": s["failed"], "errors": s["errors"],
        "deadline_hit": s["deadline_hit"],
        "cells": s["cells"], "cell_latency": s["cell_latency"],
        "time_to_notebook": s["time_to_notebook"], "time_to_first_result": s["time_to_first_result"],
        "peak_fds": s["peak_fds"], "sampler_error": s["sampler_error"],
        "first_errors": [e for v in report.visitors for e in v.errors[:1]][:5],
        **({"container_stats_mid_run": mid} if stats_mid else {}),
    }  # fmt: skip


def brief(r: dict[str, Any]) -> str:
    lat = r["cell_latency"]
    p95 = f"{lat['p95']:.2f}s" if lat.get("p95") is not None else "-"
    return (
        f"{r['peak_websockets']}/{r['websockets_wanted']} websockets, {r['failed']} of {r['visitors']}"
        f" visitors failed {r['errors'] or ''}, cells {r['cells']} (p95 {p95}), peak fds {r['peak_fds']}"
    )


# ---- the phases ---------------------------------------------------------------------------------
def seed_phase(url: str, nofile: int | None) -> dict[str, Any]:
    limits = restart_chp(nofile)
    route_echo(ECHO_TARGET[0], spawn=True)
    r = crowd(url, **SEED, arrival=10, stay=20, think=5)
    r["chp_limit"] = limits
    r["journal"] = journal_emfile(r["started_epoch"] - 1)
    r["nginx_errors"] = nginx_errors()
    return r


def real_phase(url: str) -> dict[str, Any]:
    paths = real_paths()[:4]
    spawn_to_real(paths)
    levels = []
    for s in REAL_SOCKETS_PER_KERNEL:
        # A cell every 8 s on every socket; a kernel's output reaches all its S sockets. The first
        # cell on a new kernel waits for the kernel to start (seconds on a loaded machine).
        r = crowd(url, len(paths), 2, s, arrival=0, stay=20, think=8, stats_mid=True)
        r["nginx_errors"] = nginx_errors()
        levels.append(r)
        print(f"  real Jupyter, {len(paths)} servers x 2 kernels x {s}: {brief(r)}", flush=True)
        if r["failed"]:
            break
    admin([("DELETE", "/spawn", None)])
    in_host(f"docker rm -f {ECHO_NAME}-spawn >/dev/null 2>&1; true")
    return {"servers": paths, "levels": levels}


def echo_phase(url: str) -> dict[str, Any]:
    route_echo(ECHO_TARGET[0], spawn=True)
    kernels, per_kernel = ECHO_PER_VISITOR
    levels: list[dict[str, Any]] = []

    def level(total: int) -> bool:
        visitors = total // (kernels * per_kernel)
        # --stay counts from a visitor's first working socket: long enough for the last arrivals'
        # sockets to open while the first ones still hold theirs (opening runs at ~100/s here).
        # A cell every 30 s (a socket whose next cell would fall after --stay leaves at once).
        r = crowd(url, visitors, kernels, per_kernel, arrival=30, stay=ECHO_STAY, think=30,
                  stats_mid=True)  # fmt: skip
        r["journal"] = journal_emfile(r["started_epoch"] - 1)
        r["nginx_errors"] = nginx_errors()
        levels.append(r)
        print(f"  echo backend, {visitors} visitors x {kernels} x {per_kernel}: {brief(r)}", flush=True)
        return not r["failed"]

    passed = 0
    for total in ECHO_UP:
        if level(total):
            passed = total
            continue
        between = (passed + total) // 2 // 500 * 500
        if between > passed:
            level(between)
        break
    admin([("DELETE", "/spawn", None)])
    return {"levels": levels}


ECHO_TARGET: list[str] = []
ECHO_NOTE = (
    "NOTE: a), b) and the second half of c) use light websocket echo backends (bench/echo_kernel.py,"
    " NOT Jupyter) routed in CHP like notebooks (/user/echo-<i>/api/kernels/...)"
)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.strata", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="nginx's loopback port (default: a free one)")
    p.add_argument("--keep", action="store_true", help="leave the test host running at the end")
    p.add_argument("--skip-real", action="store_true", help="leave out the real Jupyter servers in c)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/"
    result: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine_before": machine(), "url": url}  # fmt: skip
    print(f"Strata reproduction on {HOST} ({INVENTORY}: limits_users=1000, 4 pooled real notebook "
          f"servers), nginx on {url}; {result['machine_before']}", flush=True)  # fmt: skip
    t_start = time.monotonic()
    try:
        result["setup"] = create_host(port)
        print(f"test host + site.yml: {result['setup']}", flush=True)
        ECHO_TARGET.append(start_echo())
        result["kit_limits"] = chp_limits()
        print(f"CHP open files with the kit's limits: {result['kit_limits']}", flush=True)
        print(ECHO_NOTE, flush=True)
        a = result["a_seed_limit_1024"] = seed_phase(url, SEED_NOFILE)
        print(f"a) LimitNOFILE={SEED_NOFILE}: {brief(a)}; EMFILE lines in CHP's journal: "
              f"{a['journal']['emfile_lines']}", flush=True)  # fmt: skip
        b = result["b_seed_kit_limits"] = seed_phase(url, None)
        print(f"b) kit limits ({b['chp_limit']['effective_soft']}): {brief(b)}; EMFILE lines: "
              f"{b['journal']['emfile_lines']}", flush=True)  # fmt: skip
        if not args.skip_real:
            print("c1) real Jupyter servers (Debian's notebook 6.4), 2 kernels each:", flush=True)
            result["c_real_jupyter"] = real_phase(url)
        # Through the host's own address: the published port is the outer engine's docker-proxy
        # (not part of the kit; 2 descriptors per connection, and it exited under this load in a
        # trial run here). nginx -> CHP -> backend is the same path.
        direct = f"http://{host_address()}/"
        print(f"c2) light echo backend (NOT Jupyter), through nginx -> CHP, at {direct}:", flush=True)
        result["c_echo"] = {"url": direct, **echo_phase(direct)}
    finally:
        result["bench_seconds"] = round(time.monotonic() - t_start, 1)
        result["machine_after"] = machine()
        if not args.keep:
            try:
                destroy_host()
            except BenchError as exc:
                print(f"removing {HOST} failed: {exc}", file=sys.stderr)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / "strata.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"written: {out.relative_to(ROOT)}")
    print(summary(result))
    return 0 if verdict(result)["ok"] else 1


def _best(levels: list[dict[str, Any]]) -> dict[str, Any] | None:
    clean = [r for r in levels if not r["failed"]]
    return max(clean, key=lambda r: r["peak_websockets"]) if clean else None


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    a, b = result.get("a_seed_limit_1024"), result.get("b_seed_kit_limits")
    echo = _best(result.get("c_echo", {}).get("levels", []))
    checks = {
        "a_failed_with_emfile": bool(a and a["failed"] and a["journal"]["emfile_lines"]),
        "b_zero_errors": bool(b and not b["failed"] and not b["deadline_hit"]),
        "c_at_least_6000": bool(echo and echo["peak_websockets"] >= 6000),
    }
    return {"ok": all(checks.values()), **checks}


def summary(result: dict[str, Any]) -> str:
    lines = ["", "== Strata reproduction: summary =="]
    v = verdict(result)
    result["verdict"] = v
    for key, label in (("a_seed_limit_1024", "a) LimitNOFILE 1024"), ("b_seed_kit_limits", "b) kit limits")):
        if key in result:
            r = result[key]
            lines.append(f"{label}: {brief(r)}; EMFILE lines in CHP's journal {r['journal']['emfile_lines']}")
    for key, label in (("c_real_jupyter", "c) real Jupyter"), ("c_echo", "c) echo (not Jupyter)")):
        levels = result.get(key, {}).get("levels", [])
        best = _best(levels)
        if levels:
            top = best["peak_websockets"] if best else 0
            lines.append(f"{label}: highest with 0 errors: {top} websockets")
            last = levels[-1]
            if last["failed"]:
                lines.append(f"  stopped at {last['websockets_wanted']}: {brief(last)}")
                emfile = last.get("journal", {}).get("emfile_lines", "-")
                lines.append(f"    EMFILE lines in CHP's journal {emfile}; nginx {last.get('nginx_errors')}")
                for e in last["first_errors"][:2]:
                    lines.append(f"    {e['step']}: {e['kind']}: {e['message'][:160]}")
    lines.append(f"verdict: {v}")
    return "\n".join(lines)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
