"""The host a capacity plan is made for (playbooks/filter_plugins/capacity.py makes the plan): from
its facts and the files roles/plan's probe read, or, for a host not yet bought, from the plan_*
inventory values. The open-files ceiling comes from roles/limits' own filter (imported, never
copied). Unit-tested in tests/test_capacity_filters.py."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LIMITS = Path(__file__).resolve().parents[2] / "roles" / "limits" / "filter_plugins" / "limits.py"
_spec = importlib.util.spec_from_file_location("tmpnb_capacity_host_limits", _LIMITS)
limits = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(limits)  # type: ignore[union-attr]


def int_at_least(name: str, value: Any, low: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return number


def number_at_least(name: str, value: Any, low: float = 0) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < low:
        raise ValueError(f"{name} must be a number >= {low}, got {value!r}")
    return number


def capacity_host_from_inventory(v: Mapping[str, Any]) -> dict[str, Any]:
    """A host described by the plan_* inventory values (a host not yet bought)."""
    memory = int_at_least("plan_memory_mb", v.get("plan_memory_mb", 0))
    cores = number_at_least("plan_cores", v.get("plan_cores", 0))
    missing = [k for k, n in (("plan_memory_mb", memory), ("plan_cores", cores)) if n <= 0]
    if missing:
        raise ValueError(
            f"no facts from this host and no inventory values for {', '.join(missing)}: set them "
            "(e.g. plan_memory_mb: 524288, plan_cores: 24 for an OnMetal Memory host) "
            "or make the host reachable"
        )
    disk = int_at_least("plan_disk_free_mb", v.get("plan_disk_free_mb", 0))
    ceiling = int_at_least("plan_nofile_ceiling", v.get("plan_nofile_ceiling", 0))
    return {
        "source": "inventory",
        "memory_mb": memory,
        "cores": cores,
        "swap_mb": int_at_least("plan_swap_mb", v.get("plan_swap_mb", 0)),
        "disk_free_mb": disk or None,
        "nofile_ceiling": ceiling or None,
        "pid_max": int_at_least("plan_pid_max", v.get("plan_pid_max", 0)) or None,
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
        "memory_mb": int_at_least("memtotal_mb", facts.get("memtotal_mb", 0)),
        "cores": number_at_least(
            "processor_vcpus", facts.get("processor_vcpus") or facts.get("processor_nproc") or 0
        ),
        "swap_mb": int_at_least("swaptotal_mb", facts.get("swaptotal_mb", 0) or 0),
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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "capacity_host_from_facts": capacity_host_from_facts,
            "capacity_host_from_inventory": capacity_host_from_inventory,
        }
