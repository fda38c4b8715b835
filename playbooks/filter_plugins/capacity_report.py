"""The capacity plan's verdict and its table (playbooks/filter_plugins/capacity.py makes the plan):
which limits of the host fall short, each naming the variable to change, and the plan as lines read
at a glance. They read only the plan; unit-tested in tests/test_capacity_filters.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", str(text))[:3])


def capacity_problems(plan: Mapping[str, Any]) -> list[str]:
    """What the host cannot hold, each naming the variable or fact to change and the number it
    needs. Empty: the host holds its plan. Unknown facts (inventory without the value) pass."""
    problems: list[str] = []
    host, mem, fds, disk = plan["host"], plan["memory"], plan["fds"], plan["disk"]
    fact = "ansible_memtotal_mb" if host["source"] == "facts" else "plan_memory_mb"
    if mem["capacity"] < 1:
        problems.append(
            f"memory: {mem['total_mb']} MB ({fact}) - tmpnb_memory_reserve_mb {mem['reserve_mb']} holds no "
            f"slice of tmpnb_slice_mb {mem['slice_mb']} MB: lower them or use a host with at least "
            f"{mem['reserve_mb'] + mem['slice_mb']} MB"
        )
    elif mem["needed_mb"] > mem["total_mb"]:
        problems.append(
            f"memory: {mem['capacity']} containers (tmpnb_capacity) x {mem['slice_mb']} MB "
            f"(tmpnb_slice_mb) + {mem['reserve_mb']} MB (tmpnb_memory_reserve_mb) = {mem['needed_mb']} MB, "
            f"the host has {mem['total_mb']} MB ({fact}): set tmpnb_capacity to at most {mem['carved']} "
            "(or 0 to carve it from memory)"
        )
    if host.get("memory_controller") is False:
        problems.append(
            "cgroup: the memory controller is not available (cgroup v2 'memory' missing from "
            "/sys/fs/cgroup/cgroup.controllers, no v1 /sys/fs/cgroup/memory): boot with "
            "cgroup_enable=memory, or the 512 MB slices are not enforced"
        )
    if host.get("swap_mb") and host.get("swap_accounting") is False:
        problems.append(
            f"cgroup: the host has {host['swap_mb']} MB swap (ansible_swaptotal_mb) but no swap accounting "
            "(no memory.swap.max / memory.memsw.limit_in_bytes): containers could swap past their slice; "
            "boot with swapaccount=1 or turn swap off"
        )
    supported = plan["supported"] or {}
    name, version = host.get("distribution"), host.get("distribution_version")
    known = name in supported and (not version or str(version) in map(str, supported[name]))
    if name is not None and not known:
        problems.append(
            f"distribution: {name} {version or ''} (ansible_distribution) is not supported; "
            f"plan_supported lists {', '.join(f'{d} {v}' for d, vs in supported.items() for v in vs)}"
        )
    if host.get("kernel") and _version(host["kernel"]) < _version(plan["kernel_min"]):
        problems.append(
            f"kernel: {host['kernel']} (ansible_kernel) is older than plan_kernel_min {plan['kernel_min']}"
        )
    if fds["effective"] < fds["budget"]:
        problems.append(
            f"open files: the fd budget is {fds['budget']} ({mem['users']} users (limits_users) x "
            f"{fds['per_user']} descriptors each) but units get {fds['effective']} (limits_nofile "
            f"{fds['limits_nofile']}, host ceiling {fds['ceiling'] or 'none'}): that covers "
            f"{fds['users_covered']} users; set limits_users to at most {fds['users_covered']} or raise the "
            f"ceiling (fs.nr_open, PID 1's hard limit) to {fds['budget']}"
        )
    if disk["free_mb"] is not None and disk["free_mb"] < disk["needed_mb"]:
        where = host.get("disk_mount") or "/var/lib/docker"
        problems.append(
            f"disk: {disk['free_mb']} MB free under /var/lib/docker ({where}) but images "
            f"{disk['images_mb']} MB (plan_images_kept x plan_image_mb) + static copies "
            f"{disk['static_mb']} MB (nginx_static_keep + 2 x plan_static_mb) + {mem['capacity']} visitors x "
            f"{disk['per_visitor_mb']:g} MB of logs (docker_log_max_size x docker_log_max_file) "
            f"need {disk['needed_mb']} MB"
        )
    return problems


def _fmt(n: Any) -> str:
    if n is None:
        return "unknown"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.3f}".rstrip("0").rstrip(".")
    return f"{int(n):,}"


def _ok(good: bool) -> str:
    return "ok" if good else "SHORT"


def capacity_table(plan: Mapping[str, Any], name: str = "") -> list[str]:
    """The plan as lines readable at a glance (one per item, the verdict at the end)."""
    host, mem, cpu, fds = plan["host"], plan["memory"], plan["cpu"], plan["fds"]
    pids, ports, br, nb, disk, cost = (
        plan[k] for k in ("pids", "ports", "bridges", "neighbours", "disk", "cost")
    )
    gb = mem["total_mb"] / 1024
    cap = f"--cpus {_fmt(cpu['cap_cpus'])}" if cpu["cap_cpus"] else "none (tmpnb_cpus 0: may burst)"
    ceiling = _fmt(fds["ceiling"]) if fds["ceiling"] else "none known"
    free = f"{_fmt(disk['free_mb'])} MB" if disk["free_mb"] is not None else "unknown (plan_disk_free_mb)"
    rows = [
        ("host", f"{name} from {host['source']}: {gb:,.0f} GB, {_fmt(cpu['cores'])} cores", ""),
        (
            "slices / users",
            f"{_fmt(mem['capacity'])} slices ({mem['capacity_from']}) "
            f"for {_fmt(mem['users'])} users (limits_users)",
            _ok(mem["users"] >= mem["capacity"]),
        ),
        ("pool", f"{_fmt(mem['pool'])} started ahead", _ok(mem["pool"] <= mem["capacity"])),
        (
            "memory",
            f"{_fmt(mem['capacity'])} x {_fmt(mem['slice_mb'])} MB + {_fmt(mem['reserve_mb'])} MB reserve = "
            f"{_fmt(mem['needed_mb'])} of {_fmt(mem['total_mb'])} MB",
            _ok(mem["needed_mb"] <= mem["total_mb"] and mem["capacity"] >= 1),
        ),
        (
            "cpu",
            f"{_fmt(cpu['cores_per_user'])} core/user; cpu_shares {cpu['shares']} ({cpu['shares_from']}, "
            f"v2 weight {cpu['weight_v2']}); cap {cap}",
            "",
        ),
        (
            "open files",
            f"budget {_fmt(fds['budget'])} (nginx worker_connections "
            f"{_fmt(fds['nginx_worker_connections'])}, CHP the same); "
            f"limits_nofile {_fmt(fds['limits_nofile'])}, ceiling {ceiling}, "
            f"covers {_fmt(fds['users_covered'])} users",
            _ok(fds["effective"] >= fds["budget"]),
        ),
        (
            "processes",
            f"{_fmt(pids['per_container'])} x {_fmt(mem['capacity'])} + {_fmt(pids['host_tasks'])} = "
            f"{_fmt(pids['needed'])} vs kernel.pid_max {_fmt(pids['pid_max'])}",
            _ok(pids["needed"] <= pids["pid_max"]),
        ),
        (
            "ephemeral ports",
            f"{_fmt(ports['needed'])} needed, {_fmt(ports['available'])} in {ports['range']}",
            _ok(ports["needed"] <= ports["available"]),
        ),
        (
            "bridges",
            f"{_fmt(br['ports_needed'])} ports, {_fmt(br['per_network'])} per network "
            f"(tmpnb_containers_per_network; a bridge holds {br['ports_per_bridge']}): "
            f"{br['networks']} Docker network{'s' if br['networks'] > 1 else ''}",
            "ok"
            if br["per_network"] <= br["ports_per_bridge"] and br["networks"] <= br["max_networks"]
            else f"SHORT: at most {br['ports_per_bridge']} per network and {br['max_networks']} networks",
        ),
        (
            "neighbours",
            f"{_fmt(nb['needed'])} entries vs gc_thresh2 {_fmt(nb['gc_thresh2'])} "
            f"/ gc_thresh3 {_fmt(nb['gc_thresh3'])}",
            _ok(nb["needed"] <= nb["gc_thresh2"]),
        ),
        (
            "disk",
            f"images {_fmt(disk['images_mb'])} + static {_fmt(disk['static_mb'])} + visitors "
            f"{_fmt(disk['visitors_mb'])} = {_fmt(disk['needed_mb'])} MB; free {free}",
            "" if disk["free_mb"] is None else _ok(disk["free_mb"] >= disk["needed_mb"]),
        ),
        (
            "cost",
            f"{cost['currency']}{_fmt(cost['price_month'])}/month = {cost['currency']}"
            f"{cost['per_user_month']:.2f}/user/month"
            if cost["per_user_month"] is not None
            else "no price (plan_price_month)",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    return [f"{label:<{width}}  {text}" + (f"  [{v}]" if v else "") for label, text, v in rows]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"capacity_problems": capacity_problems, "capacity_table": capacity_table}
