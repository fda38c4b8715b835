"""The limits role's arithmetic, in one place: the file-descriptor budget, the sysctl values derived
from the number of users a host is carved for, the host's open-files ceiling, and the plan of which
sysctl keys to write, apply, keep or skip (with the reason). Pure functions, unit-tested in
tests/test_limits_filters.py."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# CAP_SYS_RESOURCE: needed to raise a hard limit above one's own (capabilities(7)).
CAP_SYS_RESOURCE = 24
# The kernel's highest possible fs.nr_open (sysctl_nr_open_max on 64-bit).
NR_OPEN_MAX = 1073741816
# ip_local_port_range never starts below this: the kit's services listen on 8000-9999.
PORT_RANGE_FLOOR = 10240
PORT_RANGE_DEFAULT_LOW = 32768


def _positive(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _pow2ceil(n: int) -> int:
    """The smallest power of two >= n (kernel tables like round numbers)."""
    return 1 << max(0, (int(n) - 1).bit_length())


def fd_budget(
    users: Any, notebooks_per_user: Any = 2, sockets_per_notebook: Any = 3, proxy_hops: Any = 2
) -> int:
    """File descriptors the proxy chain needs: every open notebook holds `sockets_per_notebook`
    websockets, and each is held once per hop (nginx -> CHP -> container: 2).
    110 users x 2 notebooks x 3 sockets x 2 hops = 1320 (> 1024, the wall tmpnb.org hit)."""
    return (
        _positive("limits_users", users)
        * _positive("limits_notebooks_per_user", notebooks_per_user)
        * _positive("limits_sockets_per_notebook", sockets_per_notebook)
        * _positive("limits_proxy_hops", proxy_hops)
    )


def sysctl_for_users(
    users: Any,
    notebooks_per_user: Any = 2,
    sockets_per_notebook: Any = 3,
    proxy_hops: Any = 2,
    nofile: Any = 1048576,
) -> dict[str, str]:
    """The kernel settings that bite at ~1000 containers and ~10^4 sockets, derived from the users
    the host is carved for (one notebook container per user). Values are strings, as in sysctl.d."""
    n = _positive("limits_users", users)
    budget = fd_budget(n, notebooks_per_user, sockets_per_notebook, proxy_hops)
    nofile_n = _positive("limits_nofile", nofile)
    client_sockets = n * int(notebooks_per_user) * int(sockets_per_notebook)
    # Accept queues: a crowd arriving at once, each browser opening ~4 connections.
    somaxconn = max(4096, _pow2ceil(4 * n))
    # Ephemeral ports: one per proxied connection and hop, as many again lingering in TIME_WAIT.
    ports_needed = 2 * budget
    port_low = min(PORT_RANGE_DEFAULT_LOW, max(PORT_RANGE_FLOOR, 65536 - ports_needed))
    # ARP/neighbour entries: one per container on the bridge; no GC below thresh1.
    gc1 = max(128, _pow2ceil(n))
    keys = max(200, _pow2ceil(4 * n))
    return {
        "net.ipv4.ip_forward": "1",
        "net.core.somaxconn": str(somaxconn),
        "net.ipv4.tcp_max_syn_backlog": str(2 * somaxconn),
        "net.core.netdev_max_backlog": str(max(1000, _pow2ceil(client_sockets))),
        "net.ipv4.ip_local_port_range": f"{port_low} 65535",
        "net.ipv4.neigh.default.gc_thresh1": str(gc1),
        "net.ipv4.neigh.default.gc_thresh2": str(2 * gc1),
        "net.ipv4.neigh.default.gc_thresh3": str(4 * gc1),
        # Threads count: a notebook server and its kernels run ~50 tasks.
        "kernel.pid_max": str(max(32768, _pow2ceil(64 * n))),
        # inotify limits are per uid, and every container runs as the same uid.
        "fs.inotify.max_user_instances": str(max(128, _pow2ceil(4 * n))),
        "fs.inotify.max_user_watches": str(max(8192, _pow2ceil(1024 * n))),
        # Every proxied connection is tracked on each hop; x4 for TIME_WAIT churn.
        "net.netfilter.nf_conntrack_max": str(max(262144, _pow2ceil(4 * budget))),
        # Each container gets a session keyring, all under the same uid.
        "kernel.keys.maxkeys": str(keys),
        "kernel.keys.maxbytes": str(1000 * keys),
        "fs.nr_open": str(min(NR_OPEN_MAX, max(1048576, nofile_n))),
        "fs.file-max": str(max(nofile_n, 4096 * n)),
    }


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl -e KEY...` output ("key = value", tabs inside multi-value keys) as a dict."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = " ".join(value.split())
    return values


def proc_nofile(proc_limits: str, source: str = "/proc/PID/limits") -> dict[str, int]:
    """A process's open-files limits from its /proc/PID/limits text: {soft, hard}, with
    "unlimited" read as NR_OPEN_MAX (no limit can be higher)."""
    match = re.search(r"^Max open files\s+(\S+)\s+(\S+)", proc_limits, re.MULTILINE)
    if not match:
        raise ValueError(f"no 'Max open files' line in {source}")
    soft, hard = (NR_OPEN_MAX if text == "unlimited" else int(text) for text in match.groups())
    return {"soft": soft, "hard": hard}


def nofile_ceiling(pid1_limits: str, pid1_status: str, nr_open: Any) -> dict[str, Any]:
    """The most open files a service can get on this host: fs.nr_open, or, when the service
    manager (PID 1) lacks CAP_SYS_RESOURCE (a container test host), its own hard limit too."""
    nr_open_n = int(str(nr_open).strip())
    hard = proc_nofile(pid1_limits, "/proc/1/limits")["hard"]
    caps = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", pid1_status, re.MULTILINE)
    if not caps:
        raise ValueError("no 'CapEff' line in /proc/1/status")
    can_raise = bool(int(caps.group(1), 16) >> CAP_SYS_RESOURCE & 1)
    ceiling = nr_open_n if can_raise else min(hard, nr_open_n)
    return {
        "ceiling": ceiling,
        "pid1_hard": hard,
        "nr_open": nr_open_n,
        "cap_sys_resource": can_raise,
        "capped_by": "fs.nr_open"
        if ceiling == nr_open_n
        else "the hard limit of PID 1 (no CAP_SYS_RESOURCE)",
    }


def _norm(value: Any) -> str:
    return " ".join(str(value).split())


def sysctl_plan(
    wanted: Mapping[str, Any],
    running: Mapping[str, str],
    floors: Iterable[str] = (),
    optional: Iterable[str] = (),
    netns_keys: Iterable[str] = (),
    proc_sys_writable: bool = False,
    container: str = "none",
) -> dict[str, Any]:
    """Which keys go into the drop-in, which are applied now, and a line of report for each.

    - A key in `floors` is never lowered: if the running value is higher it is left out.
    - A key in `optional` (a module's key, e.g. conntrack) is written only where it exists, with
      sysctl.d's '-' prefix so a boot before the module loads does not fail.
    - Applying: nothing when /proc/sys is read-only; inside a container only the keys the network
      namespace owns (`netns_keys`), since others would change the machine running it; else all.
    """
    floors, optional, netns = set(floors), set(optional), set(netns_keys)
    in_container = container not in ("", "none")
    file: dict[str, str] = {}
    apply: dict[str, str] = {}
    report: dict[str, str] = {}
    for key, raw in wanted.items():
        value = _norm(raw)
        current = running.get(key)
        if current is None and key in optional:
            report[key] = "not written: absent from this kernel (its module is not loaded)"
            continue
        numbers = current is not None and current.isdigit() and value.isdigit()
        if key in floors and numbers and int(current) > int(value):
            report[key] = f"not written: running value {current} is already above {value} (never lowered)"
            continue
        file[key] = value
        if current == value:
            report[key] = f"in force: {value}"
        elif current is None and in_container:
            report[key] = (
                f"skipped: not visible in this container (host-global), written to the file as {value}"
            )
        elif current is None:
            report[key] = (
                f"skipped: this kernel has no such key (a typo, or a module not loaded), written as {value}"
            )
        elif not proc_sys_writable:
            report[key] = f"skipped: /proc/sys is read-only here; running {current}, file says {value}"
        elif in_container and key not in netns:
            report[key] = (
                f"skipped: host-global key inside a {container} container; "
                f"running {current}, file says {value}"
            )
        else:
            apply[key] = value
            report[key] = f"applied: {current} -> {value}"
    return {"file": file, "apply": apply, "report": report, "optional": sorted(optional & set(file))}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "limits_fd_budget": fd_budget,
            "limits_sysctl_for_users": sysctl_for_users,
            "limits_parse_sysctl": parse_sysctl,
            "limits_nofile_ceiling": nofile_ceiling,
            "limits_proc_nofile": proc_nofile,
            "limits_sysctl_plan": sysctl_plan,
        }
