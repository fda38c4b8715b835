"""The range and shape of every option of the orchestrator, checked in one place.

``RANGES`` is the one source of truth for numeric bounds: ``config`` checks a file with it and the
Ansible role's preflight checks inventory values with a copy in ``roles/tmpnb/vars/main.yml``
(``__tmpnb_ranges``), kept equal by ``tests/test_option_ranges.py``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from ipaddress import ip_network
from typing import Any
from urllib.parse import urlsplit

from tmpnb.placement import BRIDGE_PORTS, networks_needed


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the option and what is expected."""


# Placeholders a command template may use.
PLACEHOLDERS = frozenset({"base_path", "port", "user_id"})

# Docker's default address pools hold about 31 bridge networks (shared with everything else on the
# host); more than this many networks per instance is a mistake in capacity or containers_per_network.
MAX_NETWORKS = 64
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
NETWORK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
USER_RE = re.compile(r"^([a-z_][a-z0-9_-]{0,31}|[0-9]+)(:([a-z_][a-z0-9_-]{0,31}|[0-9]+))?$")
CONTAINER_TMPFS = ("/tmp", "/dev/shm")  # noqa: S108 - paths inside the notebook container
NUMERIC_USER_RE = re.compile(r"^[0-9]+:[0-9]+$")
PATH_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
CLIENT_HEADERS = ("", "X-Real-IP", "X-Forwarded-For")
LOG_LEVELS = ("debug", "info", "warning", "error")

# Inclusive bounds of the numeric options. Options in SECONDS take floats, the others integers.
# pool_size's upper bound is the capacity, and cpus (0 = no cap) is checked on its own.
RANGES: dict[str, tuple[float, float]] = {
    "listen_port": (1, 65535),
    "container_port": (1, 65535),
    # A Jupyter server with a kernel needs more than 128 MB; below that it is a typo, not a plan.
    "mem_limit_mb": (128, 1024 * 1024),
    "cpu_shares": (2, 262144),  # Docker's (the kernel's cpu.shares) bounds
    "pids_limit": (16, 4194304),
    "home_size_mb": (1, 1024 * 1024),
    "tmp_size_mb": (1, 1024 * 1024),
    "shm_size_mb": (1, 1024 * 1024),
    "capacity": (1, 100000),
    # A bridge's ports, less a margin for the bridge's own needs and containers being removed.
    "containers_per_network": (1, BRIDGE_PORTS - 24),
    "max_concurrent_starts": (1, 1000),
    "boot_timeout": (1, 3600),
    "spawn_wait": (0, 3600),
    "cull_timeout": (1, 30 * 86400),
    "cull_max_age": (1, 365 * 86400),
    "cull_interval": (0.1, 3600),
    "reconcile_interval": (0.1, 3600),
    "spawn_limit_per_minute": (0, 1000000),
    "trusted_proxy_hops": (1, 10),
    "retry_after": (1, 3600),
}
SECONDS = frozenset(
    {"boot_timeout", "spawn_wait", "cull_timeout", "cull_max_age", "cull_interval", "reconcile_interval"}
)


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: expected an integer between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: expected an integer between {lo} and {hi}, got {value}")
    return value


def _seconds(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: expected a number of seconds between {lo:g} and {hi:g}, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: expected a number of seconds between {lo:g} and {hi:g}, got {value}")
    return float(value)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def _url(name: str, value: Any, schemes: tuple[str, ...]) -> str:
    text = _str(name, value)
    parts = urlsplit(text)
    if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
        raise ConfigError(f"{name}: expected a URL with scheme {' or '.join(schemes)}, got {text!r}")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"{name}: expected unix:///path/to/docker.sock, got {text!r}")
    return text.rstrip("/")


def _command(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        raise ConfigError(f"command: expected a non-empty list of non-empty strings, got {value!r}")
    for part in value:
        try:
            names = {f[1] for f in string.Formatter().parse(part) if f[1] is not None}
        except ValueError as exc:
            raise ConfigError(
                f"command: bad placeholder in {part!r}: {exc} (write {{{{ }}}} for literal braces)"
            ) from exc
        unknown = {n for n in names if n not in PLACEHOLDERS}
        if unknown:
            raise ConfigError(
                f"command: unknown placeholder(s) {sorted(unknown)} in {part!r}; "
                f"allowed: {{base_path}}, {{port}}, {{user_id}}"
            )
    if not any("{base_path}" in p for p in value):
        raise ConfigError(
            "command: no part uses {base_path}; the notebook must serve at its user path, "
            "e.g. --ServerApp.base_url={base_path} (notebook 6: --NotebookApp.base_url={base_path})"
        )
    return tuple(value)


def _disk(v: Mapping[str, Any], user: str, mem_limit_mb: int) -> dict[str, Any]:
    """A visitor's writable space: tmpfs at home_path and /tmp and /dev/shm, all in the memory slice."""
    out: dict[str, Any] = {}
    home = _str("home_path", v["home_path"]).rstrip("/")
    if not home.startswith("/") or home in CONTAINER_TMPFS or ".." in home.split("/"):
        raise ConfigError(f"home_path: expected an absolute directory such as '/home/jovyan', got {home!r}")
    if not all(PATH_SEGMENT_RE.match(s) for s in home[1:].split("/")):
        raise ConfigError(f"home_path: expected an absolute directory such as '/home/jovyan', got {home!r}")
    out["home_path"] = home
    for name in ("home_size_mb", "tmp_size_mb", "shm_size_mb"):
        out[name] = _ranged(name, v[name])
    total = out["home_size_mb"] + out["tmp_size_mb"] + out["shm_size_mb"]
    if total >= mem_limit_mb:
        raise ConfigError(
            f"home_size_mb + tmp_size_mb + shm_size_mb = {total} MB must be less than mem_limit_mb = "
            f"{mem_limit_mb} MB: files in these tmpfs mounts are held in the container's memory slice"
        )
    if not NUMERIC_USER_RE.match(user):
        raise ConfigError(
            f"container_user: expected numeric 'uid:gid' (e.g. '1000:1000'), got {user!r}: the home "
            "directory is a tmpfs mounted with that owner"
        )
    return out


def _networks(value: Any) -> tuple[str, ...]:
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"admin_networks: expected a list of CIDRs such as ['10.1.0.0/16'], got {value!r}")
    out = []
    for text in value:
        try:
            net = ip_network(text.strip())
        except ValueError as exc:
            raise ConfigError(f"admin_networks: {text!r} is not a network in CIDR form ({exc})") from None
        if net.overlaps(ip_network("127.0.0.0/8") if net.version == 4 else ip_network("::1/128")):
            raise ConfigError(
                f"admin_networks: {text!r} includes loopback: behind nginx and CHP every request comes "
                "from loopback (direct requests from the host itself are always served)"
            )
        out.append(str(net))
    return tuple(out)


def _containers_per_network(v: Mapping[str, Any], capacity: int) -> int:
    """At most a bridge's ports with a margin, and few enough networks for Docker's address pools."""
    limit = RANGES["containers_per_network"][1]
    per = _ranged("containers_per_network", v["containers_per_network"])
    count = networks_needed(capacity, per)
    if count > MAX_NETWORKS:
        raise ConfigError(
            f"containers_per_network: capacity = {capacity} containers at {per} "
            f"per network needs {count} Docker networks, more than {MAX_NETWORKS}; raise "
            f"containers_per_network (up to {limit}) or lower capacity"
        )
    return per


def _ranged(name: str, value: Any) -> Any:
    """``value`` checked against RANGES[name]: an integer, or a number of seconds (a float)."""
    lo, hi = RANGES[name]
    if name in SECONDS:
        return _seconds(name, value, lo, hi)
    return _int(name, value, int(lo), int(hi))


def check(v: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``v`` (the file's values over the defaults) checked; the values to use."""
    out: dict[str, Any] = {}

    image = _str("image", v["image"]).strip()
    if not image or any(c.isspace() for c in image):
        raise ConfigError(f"image: expected an image reference such as 'name:tag', got {v['image']!r}")
    out["image"] = image
    instance = _str("instance", v["instance"])
    if not NAME_RE.match(instance):
        raise ConfigError(
            "instance: expected 1-32 characters of [a-z0-9-] not starting or ending with '-', "
            f"got {instance!r}"
        )
    out["instance"] = instance
    out["listen_host"] = _str("listen_host", v["listen_host"])
    if not out["listen_host"]:
        raise ConfigError("listen_host: expected an address such as '127.0.0.1'")
    out["listen_port"] = _ranged("listen_port", v["listen_port"])
    out["chp_api_url"] = _url("chp_api_url", v["chp_api_url"], ("http", "https"))
    out["docker_url"] = _url("docker_url", v["docker_url"], ("unix", "http", "https", "tcp"))
    out["command"] = _command(list(v["command"]) if isinstance(v["command"], tuple) else v["command"])
    out["container_port"] = _ranged("container_port", v["container_port"])
    user = _str("container_user", v["container_user"])
    if not USER_RE.match(user):
        raise ConfigError(f"container_user: expected 'uid:gid' or 'name', got {user!r}")
    if user.split(":")[0] in ("0", "root") or user.split(":")[-1] in ("0", "root"):
        raise ConfigError(f"container_user: notebooks never run as root (uid or gid 0); got {user!r}")
    out["container_user"] = user
    network = _str("network", v["network"])
    if network and not NETWORK_RE.match(network):
        raise ConfigError(f"network: expected a Docker network name ([a-zA-Z0-9_.-]), got {network!r}")
    if network in ("bridge", "host", "none", "default"):
        raise ConfigError(
            f"network: {network!r} is shared; use a dedicated network (empty = tmpnb-<instance>)"
        )
    out["network"] = network
    out["mem_limit_mb"] = _ranged("mem_limit_mb", v["mem_limit_mb"])
    out["cpu_shares"] = _ranged("cpu_shares", v["cpu_shares"])
    cpus = v["cpus"]
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not (cpus == 0 or 0.01 <= cpus <= 1024):
        raise ConfigError(
            f"cpus: expected 0 (no cap) or a number of cores between 0.01 and 1024, got {cpus!r}"
        )
    out["cpus"] = float(cpus)
    out["pids_limit"] = _ranged("pids_limit", v["pids_limit"])
    out.update(_disk(v, user, out["mem_limit_mb"]))
    out["capacity"] = _ranged("capacity", v["capacity"])
    out["pool_size"] = _int("pool_size", v["pool_size"], 0, out["capacity"])
    out["containers_per_network"] = _containers_per_network(v, out["capacity"])
    out["max_concurrent_starts"] = _ranged("max_concurrent_starts", v["max_concurrent_starts"])
    out["boot_timeout"] = _ranged("boot_timeout", v["boot_timeout"])
    out["spawn_wait"] = _ranged("spawn_wait", v["spawn_wait"])
    out["cull_timeout"] = _ranged("cull_timeout", v["cull_timeout"])
    out["cull_max_age"] = _ranged("cull_max_age", v["cull_max_age"])
    if out["cull_max_age"] < out["cull_timeout"]:
        raise ConfigError(
            f"cull_max_age: {v['cull_max_age']} s is less than cull_timeout = {v['cull_timeout']} s; "
            "a notebook is culled at cull_max_age even when busy, so it must be at least cull_timeout"
        )
    out["cull_interval"] = _ranged("cull_interval", v["cull_interval"])
    out["reconcile_interval"] = _ranged("reconcile_interval", v["reconcile_interval"])
    redirect = _str("redirect_path", v["redirect_path"]).strip("/")
    if redirect and not all(PATH_SEGMENT_RE.match(s) for s in redirect.split("/")):
        raise ConfigError(
            f"redirect_path: expected URL path segments such as 'tree' or 'lab', got {redirect!r}"
        )
    out["redirect_path"] = redirect
    out["spawn_limit_per_minute"] = _ranged("spawn_limit_per_minute", v["spawn_limit_per_minute"])
    prefix = _str("user_path_prefix", v["user_path_prefix"]).rstrip("/")
    if not prefix.startswith("/") or not all(PATH_SEGMENT_RE.match(s) for s in prefix[1:].split("/")):
        raise ConfigError(f"user_path_prefix: expected a path such as '/user', got {v['user_path_prefix']!r}")
    out["user_path_prefix"] = prefix
    header = _str("client_address_header", v["client_address_header"])
    match = [h for h in CLIENT_HEADERS if h.lower() == header.lower()]
    if not match:
        raise ConfigError(
            "client_address_header: expected '' (peer address), 'X-Real-IP' or 'X-Forwarded-For', "
            f"got {header!r}"
        )
    out["client_address_header"] = match[0]
    out["trusted_proxy_hops"] = _ranged("trusted_proxy_hops", v["trusted_proxy_hops"])
    public = _str("public_url", v["public_url"]).rstrip("/")
    if public:
        _url("public_url", public, ("http", "https"))
    out["public_url"] = public
    out["admin_networks"] = _networks(v["admin_networks"])
    out["retry_after"] = _ranged("retry_after", v["retry_after"])
    level = _str("log_level", v["log_level"]).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {v['log_level']!r}")
    out["log_level"] = level
    return out
