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


def _load_limits() -> Any:
    spec = importlib.util.spec_from_file_location(
        "tmpnb_limits_filters", ROLES / "limits" / "filter_plugins" / "limits.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


limits = _load_limits()

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


def _int(name: str, value: Any, low: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return number


def _num(name: str, value: Any, low: float = 0) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < low:
        raise ValueError(f"{name} must be a number >= {low}, got {value!r}")
    return number


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


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", str(text))[:3])


def capacity_host_from_inventory(v: Mapping[str, Any]) -> dict[str, Any]:
    """A host described by the plan_* inventory values (a host not yet bought)."""
    memory = _int("plan_memory_mb", v.get("plan_memory_mb", 0))
    cores = _num("plan_cores", v.get("plan_cores", 0))
    missing = [k for k, n in (("plan_memory_mb", memory), ("plan_cores", cores)) if n <= 0]
    if missing:
        raise ValueError(
            f"no facts from this host and no inventory values for {', '.join(missing)}: set them "
            "(e.g. plan_memory_mb: 524288, plan_cores: 24 for an OnMetal Memory host) "
            "or make the host reachable"
        )
    disk = _int("plan_disk_free_mb", v.get("plan_disk_free_mb", 0))
    ceiling = _int("plan_nofile_ceiling", v.get("plan_nofile_ceiling", 0))
    return {
        "source": "inventory",
        "memory_mb": memory,
        "cores": cores,
        "swap_mb": _int("plan_swap_mb", v.get("plan_swap_mb", 0)),
        "disk_free_mb": disk or None,
        "nofile_ceiling": ceiling or None,
        "pid_max": _int("plan_pid_max", v.get("plan_pid_max", 0)) or None,
        "distribution": str(v.get("plan_distribution", "") or "") or None,
        "distribution_version": str(v.get("plan_distribution_version", "") or "") or None,
        "kernel": str(v.get("plan_kernel", "") or "") or None,
        "cgroup": None,
        "memory_controller": None,
        "swap_accounting": None,
    }


def _mount_of(mounts: list[Mapping[str, Any]], path: str) -> Mapping[str, Any] | None:
    best: Mapping[str, Any] | None = None
    for mount in mounts or []:
        point = str(mount.get("mount", ""))
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(str(best["mount"]))):
            best = mount
    return best


def capacity_host_from_facts(
    facts: Mapping[str, Any], files: Mapping[str, Any], docker_root: str = "/var/lib/docker"
) -> dict[str, Any]:
    """A reachable host: Ansible facts plus the files roles/plan's probe read (contents as text;
    absent files as ''). Keys of `files`: pid1_limits, pid1_status, nr_open, pid_max,
    cgroup_controllers (cgroup v2), memory_v1 (bool: v1 memory controller mounted),
    swap_accounting (bool: memory.swap.max or memory.memsw.limit_in_bytes exists)."""
    ceiling = None
    if files.get("pid1_limits") and files.get("pid1_status") and str(files.get("nr_open", "")).strip():
        found = limits.nofile_ceiling(files["pid1_limits"], files["pid1_status"], files["nr_open"])
        ceiling = found["ceiling"]
    controllers = str(files.get("cgroup_controllers") or "").split()
    v2 = bool(files.get("cgroup_v2"))
    mount = _mount_of(list(facts.get("mounts") or []), docker_root)
    pid_max = str(files.get("pid_max") or "").strip()
    return {
        "source": "facts",
        "memory_mb": _int("memtotal_mb", facts.get("memtotal_mb", 0)),
        "cores": _num("processor_vcpus", facts.get("processor_vcpus") or facts.get("processor_nproc") or 0),
        "swap_mb": _int("swaptotal_mb", facts.get("swaptotal_mb", 0) or 0),
        "disk_free_mb": int(mount["size_available"]) // 1048576
        if "size_available" in (mount or {})
        else None,
        "disk_mount": str(mount["mount"]) if mount else None,
        "nofile_ceiling": ceiling,
        "pid_max": int(pid_max) if pid_max.isdigit() else None,
        "distribution": facts.get("distribution"),
        "distribution_version": str(facts.get("distribution_major_version") or "") or None,
        "kernel": facts.get("kernel"),
        "cgroup": "v2" if v2 else ("v1" if files.get("memory_v1") else None),
        "memory_controller": ("memory" in controllers) if v2 else bool(files.get("memory_v1")),
        "swap_accounting": bool(files.get("swap_accounting")),
    }


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
        },
        "ports": {"needed": 2 * budget, "range": f"{low} {high}", "available": high - low + 1},
        "bridges": {
            "ports_per_bridge": BRIDGE_PORTS,
            "ports_needed": capacity,
            "per_network": per_network,
            "networks": networks,
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
            f"{_fmt(pids['per_container'])} x {_fmt(mem['capacity'])} + {_fmt(HOST_TASKS)} = "
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
            if br["per_network"] <= br["ports_per_bridge"] and br["networks"] <= MAX_NETWORKS
            else f"SHORT: at most {br['ports_per_bridge']} per network and {MAX_NETWORKS} networks",
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
        return {
            "capacity_host_from_facts": capacity_host_from_facts,
            "capacity_host_from_inventory": capacity_host_from_inventory,
            "capacity_plan": capacity_plan,
            "capacity_problems": capacity_problems,
            "capacity_table": capacity_table,
            "capacity_cpu_shares": cpu_shares,
            "capacity_slices": slices,
        }
