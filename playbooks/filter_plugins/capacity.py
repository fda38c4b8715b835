"""The capacity plan of a tmpnb host, in one place: what a host holds (slices, pool, CPU, file
descriptors, processes, ports, bridges, neighbours, disk, cost) and which of its limits fall short.
Used by playbooks/plan.yml (the plan) and playbooks/preflight.yml (the host checks) through
roles/plan, and by roles/tmpnb (the derived CPU weight). Pure functions, unit-tested in
tests/test_capacity_filters.py.

The host is described either by its facts (`capacity_host_from_facts`) or, for a host not yet
bought, by inventory values (`capacity_host_from_inventory`, the plan_* variables). The fd budget and
the sysctl values come from roles/limits' own arithmetic (imported, never copied)."""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def _load(name: str, path: Path) -> Any:
    """A sibling plugin file as a module (Ansible loads plugins under its own names, so a plain
    import of a neighbour does not work)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


limits = _load("tmpnb_limits_filters", ROLES / "limits" / "filter_plugins" / "limits.py")
# The host's description (facts or inventory values) and the number checks: capacity_host.py.
_host = _load("tmpnb_capacity_host", Path(__file__).with_name("capacity_host.py"))
_int, _num = _host.int_at_least, _host.number_at_least
capacity_host_from_facts = _host.capacity_host_from_facts
capacity_host_from_inventory = _host.capacity_host_from_inventory
# The verdict and the table read only the plan (capacity_report.py, filters of its own).
_report = _load("tmpnb_capacity_report", Path(__file__).with_name("capacity_report.py"))
capacity_problems = _report.capacity_problems
capacity_table = _report.capacity_table

# A Linux bridge holds at most BR_MAX_PORTS = 1024 ports, port 0 reserved (tmpnb#46).
BRIDGE_PORTS = 1023
# The orchestrator spreads containers over at most this many networks of an instance.
MAX_NETWORKS = 64
# Docker's cpu_shares: 1024 is one container's default weight, 2 the smallest it takes.
SHARES_PER_CORE = 1024
SHARES_MIN = 2
# Tasks a host runs besides the notebooks (systemd, dockerd, nginx workers, CHP, the orchestrator).
HOST_TASKS = 4096
# The variables the plan reads, from the roles that own them (their defaults fill what is unset).
PLAN_KEYS = {
    "tmpnb": [
        "tmpnb_slice_mb",
        "tmpnb_memory_reserve_mb",
        "tmpnb_capacity",
        "tmpnb_pool_size",
        "tmpnb_cpu_shares",
        "tmpnb_cpus",
        "tmpnb_pids_limit",
        "tmpnb_containers_per_network",
    ],
    "limits": [
        "limits_users",
        "limits_notebooks_per_user",
        "limits_sockets_per_notebook",
        "limits_proxy_hops",
        "limits_nofile",
        "limits_sysctl_overrides",
    ],
    "docker": ["docker_container_nofile_hard", "docker_log_max_size", "docker_log_max_file"],
    "nginx_static": ["nginx_static_keep"],
    "plan": [
        "plan_price_month",
        "plan_currency",
        "plan_image_mb",
        "plan_images_kept",
        "plan_static_mb",
        "plan_supported",
        "plan_kernel_min",
    ],
}


def size_mb(name: str, value: Any) -> float:
    """Docker's size strings ('10m', '1g', '512k', '100') in MB."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)b?\s*", str(value).lower())
    if not match:
        raise ValueError(f"{name} must be a size like '10m', got {value!r}")
    return float(match[1]) * {"": 1 / 1048576, "k": 1 / 1024, "m": 1, "g": 1024}[match[2]]


def role_defaults(roles: Path = ROLES) -> dict[str, Any]:
    """The plan's keys as the owning roles default them (defaults/main.yml)."""
    out: dict[str, Any] = {}
    for role, keys in PLAN_KEYS.items():
        path = roles / role / "defaults" / "main.yml"
        values = yaml.safe_load(path.read_text()) or {} if path.is_file() else {}
        out.update({k: values[k] for k in keys if k in values})
    return out


def plan_inputs(given: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's variables: what the inventory (or -e) sets, else the owning role's default."""
    values = role_defaults()
    for keys in PLAN_KEYS.values():
        for key in keys:
            if key in given:
                values[key] = given[key]
    return values


def slices(capacity: Any, memory_mb: Any, reserve_mb: Any, slice_mb: Any) -> int:
    """Containers in all: `capacity` when set (> 0), else floor((memory - reserve) / slice), never
    below 0. 512 GB - 12 GB in 512 MB slices: 1000."""
    wanted = _int("tmpnb_capacity", capacity)
    if wanted:
        return wanted
    memory = _int("memory_mb", memory_mb)
    reserve = _int("tmpnb_memory_reserve_mb", reserve_mb)
    return max(0, (memory - reserve) // _int("tmpnb_slice_mb", slice_mb, 1))


def cpu_shares(cores: Any, containers: Any) -> int:
    """Docker cpu_shares per notebook: all notebooks together weigh as much as `cores` ordinary
    services (1024 each), so a full room never starves nginx, CHP or the orchestrator; at most
    Docker's default 1024, at least 2. 24 cores / 1,000 users: 24."""
    n_cores = _num("cores", cores, 0)
    n = _int("containers", containers, 1)
    return max(SHARES_MIN, min(SHARES_PER_CORE, int(SHARES_PER_CORE * n_cores // n)))


def cpu_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for a cpu_shares value (runc's conversion)."""
    return 1 + ((shares - 2) * 9999) // 262142


def capacity_plan(host: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Everything one host holds, from its description and the kit's variables."""
    v = plan_inputs(given)
    slice_mb = _int("tmpnb_slice_mb", v["tmpnb_slice_mb"], 1)
    reserve = _int("tmpnb_memory_reserve_mb", v["tmpnb_memory_reserve_mb"])
    memory = int(host["memory_mb"])
    set_capacity = _int("tmpnb_capacity", v["tmpnb_capacity"])
    carved = slices(0, memory, reserve, slice_mb)
    capacity = slices(set_capacity, memory, reserve, slice_mb)
    pool = _int("tmpnb_pool_size", v["tmpnb_pool_size"])
    users = _int("limits_users", v["limits_users"], 1)
    cores = float(host["cores"])

    shares_set = _int("tmpnb_cpu_shares", v["tmpnb_cpu_shares"])
    shares = shares_set or cpu_shares(cores, max(capacity, 1))
    cap = _num("tmpnb_cpus", v["tmpnb_cpus"])

    budget = limits.fd_budget(
        users, v["limits_notebooks_per_user"], v["limits_sockets_per_notebook"], v["limits_proxy_hops"]
    )
    nofile = _int("limits_nofile", v["limits_nofile"], 1)
    ceiling = host.get("nofile_ceiling")
    effective = min(nofile, ceiling) if ceiling else nofile
    per_user_fds = budget // users
    sysctl = limits.sysctl_for_users(
        users,
        v["limits_notebooks_per_user"],
        v["limits_sockets_per_notebook"],
        v["limits_proxy_hops"],
        nofile,
    )
    overrides = v.get("limits_sysctl_overrides") or {}
    sysctl.update({k: " ".join(str(x).split()) for k, x in dict(overrides).items()})

    pids = _int("tmpnb_pids_limit", v["tmpnb_pids_limit"], 1)
    pid_max = max(int(sysctl["kernel.pid_max"]), int(host.get("pid_max") or 0))
    low, high = (int(p) for p in sysctl["net.ipv4.ip_local_port_range"].split()[:2])
    per_network = _int("tmpnb_containers_per_network", v["tmpnb_containers_per_network"], 1)
    networks = max(1, math.ceil(capacity / per_network))
    neighbours = capacity + networks
    gc2, gc3 = (int(sysctl[f"net.ipv4.neigh.default.gc_thresh{i}"]) for i in (2, 3))

    log_mb = size_mb("docker_log_max_size", v["docker_log_max_size"]) * _int(
        "docker_log_max_file", v["docker_log_max_file"], 1
    )
    image_mb = _int("plan_image_mb", v["plan_image_mb"])
    images = _int("plan_images_kept", v["plan_images_kept"], 1)
    static_mb = _int("plan_static_mb", v["plan_static_mb"])
    # the configured image's copy, the previous image's while its visitors stay (a redeploy), and
    # nginx_static_keep more
    copies = _int("nginx_static_keep", v["nginx_static_keep"]) + 2
    disk_needed = math.ceil(images * image_mb + copies * static_mb + capacity * log_mb)

    price = _num("plan_price_month", v["plan_price_month"])
    return {
        "host": dict(host),
        "memory": {
            "total_mb": memory,
            "slice_mb": slice_mb,
            "reserve_mb": reserve,
            "carved": carved,
            "capacity": capacity,
            "capacity_from": "tmpnb_capacity" if set_capacity else "memory",
            "needed_mb": capacity * slice_mb + reserve,
            "pool": pool,
            "users": users,
        },
        "cpu": {
            "cores": cores,
            "cores_per_user": round(cores / capacity, 4) if capacity else None,
            "shares": shares,
            "shares_from": "tmpnb_cpu_shares" if shares_set else "derived",
            "weight_v2": cpu_weight(shares),
            "cap_cpus": cap or None,
        },
        "fds": {
            "budget": budget,
            "per_user": per_user_fds,
            "nginx_worker_connections": max(1024, budget),
            "limits_nofile": nofile,
            "ceiling": ceiling,
            "effective": effective,
            "users_covered": effective // per_user_fds,
            "container_nofile": _int("docker_container_nofile_hard", v["docker_container_nofile_hard"]),
        },
        "pids": {
            "per_container": pids,
            "needed": pids * capacity + HOST_TASKS,
            "pid_max": pid_max,
            "host_tasks": HOST_TASKS,
        },
        "ports": {"needed": 2 * budget, "range": f"{low} {high}", "available": high - low + 1},
        "bridges": {
            "ports_per_bridge": BRIDGE_PORTS,
            "ports_needed": capacity,
            "per_network": per_network,
            "networks": networks,
            "max_networks": MAX_NETWORKS,
        },
        "neighbours": {"needed": neighbours, "gc_thresh2": gc2, "gc_thresh3": gc3},
        "disk": {
            "images_mb": images * image_mb,
            "static_mb": copies * static_mb,
            "visitors_mb": math.ceil(capacity * log_mb),
            "per_visitor_mb": log_mb,
            "needed_mb": disk_needed,
            "free_mb": host.get("disk_free_mb"),
        },
        "cost": {
            "price_month": price,
            "currency": str(v["plan_currency"]),
            "per_user_month": round(price / capacity, 2) if capacity and price else None,
        },
        "supported": v["plan_supported"],
        "kernel_min": str(v["plan_kernel_min"]),
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "capacity_plan": capacity_plan,
            "capacity_cpu_shares": cpu_shares,
            "capacity_slices": slices,
        }
