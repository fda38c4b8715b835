"""The orchestrator's configuration: one flat TOML file plus two secrets from the environment.

Every option has a default except ``image``. A wrong value raises :class:`ConfigError` whose message
names the option and what is expected; ``tmpnb`` turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tmpnb.placement import BRIDGE_PORTS, network_names, networks_needed

DEFAULT_COMMAND: tuple[str, ...] = (
    "jupyter",
    "notebook",
    "--no-browser",
    "--ip=0.0.0.0",
    "--port={port}",
    "--ServerApp.base_url={base_path}",
    "--ServerApp.token=",
    "--ServerApp.password=",
)

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

ENV_CHP_TOKEN = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 - a variable name; CHP reads the same one
ENV_ADMIN_TOKEN = "TMPNB_ADMIN_TOKEN"  # noqa: S105 - a variable name


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the option and what is expected."""


@dataclass(frozen=True)
class Config:
    image: str
    instance: str = "tmpnb"
    listen_host: str = "127.0.0.1"
    listen_port: int = 9999
    chp_api_url: str = "http://127.0.0.1:8001"
    docker_url: str = "unix:///var/run/docker.sock"
    command: tuple[str, ...] = DEFAULT_COMMAND
    container_port: int = 8888
    container_user: str = "1000:1000"
    network: str = ""  # empty: "tmpnb-<instance>"
    containers_per_network: int = 1000  # capacity above it: several networks (tmpnb.placement)
    mem_limit_mb: int = 512
    cpu_shares: int = 1024
    cpus: float = 0.0  # hard CPU cap per container in cores (Docker --cpus); 0 = none
    pids_limit: int = 256
    home_path: str = "/home/jovyan"
    home_size_mb: int = 128
    tmp_size_mb: int = 32
    shm_size_mb: int = 32
    pool_size: int = 4
    capacity: int = 16
    max_concurrent_starts: int = 4
    boot_timeout: float = 60.0
    spawn_wait: float = 30.0
    cull_timeout: float = 900.0
    cull_max_age: float = 14400.0
    cull_interval: float = 30.0
    reconcile_interval: float = 60.0
    redirect_path: str = "tree"
    spawn_limit_per_minute: int = 0
    user_path_prefix: str = "/user"
    client_address_header: str = ""
    trusted_proxy_hops: int = 1
    public_url: str = ""
    admin_networks: tuple[str, ...] = ()  # CIDRs whose clients may read /healthz, /metrics, /api/stats
    retry_after: int = 10
    log_level: str = "info"
    # Secrets: from the environment only, never from the file.
    chp_auth_token: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)

    @property
    def network_name(self) -> str:
        """The base name of the instance's networks (the network itself when one is enough)."""
        return self.network or f"tmpnb-{self.instance}"

    @property
    def network_names(self) -> tuple[str, ...]:
        """The networks containers are placed on (see tmpnb.placement)."""
        count = networks_needed(self.capacity, self.containers_per_network)
        return network_names(self.network_name, count)

    def base_path(self, user_id: str) -> str:
        return f"{self.user_path_prefix}/{user_id}/"

    def render_command(self, user_id: str) -> list[str]:
        values = {"base_path": self.base_path(user_id), "port": self.container_port, "user_id": user_id}
        return [part.format(**values) for part in self.command]


SECRET_FIELDS = frozenset({"chp_auth_token", "admin_token"})
FILE_FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in SECRET_FIELDS)
DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(Config)
    if f.name not in SECRET_FIELDS and f.default is not dataclasses.MISSING
}
# Options that a SIGHUP reload applies at once; the others need a restart.
RELOADABLE = frozenset(
    {
        "image",
        "command",
        "container_port",
        "container_user",
        "mem_limit_mb",
        "cpu_shares",
        "cpus",
        "pids_limit",
        "home_path",
        "home_size_mb",
        "tmp_size_mb",
        "shm_size_mb",
        "pool_size",
        "capacity",
        "max_concurrent_starts",
        "boot_timeout",
        "spawn_wait",
        "cull_timeout",
        "cull_max_age",
        "cull_interval",
        "reconcile_interval",
        "redirect_path",
        "spawn_limit_per_minute",
        "client_address_header",
        "trusted_proxy_hops",
        "public_url",
        "admin_networks",
        "retry_after",
        "log_level",
    }
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
        out[name] = _int(name, v[name], 1, 1024 * 1024)
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
    limit = BRIDGE_PORTS - 24  # ports for the bridge's own needs and containers being removed
    per = _int("containers_per_network", v["containers_per_network"], 1, limit)
    count = networks_needed(capacity, per)
    if count > MAX_NETWORKS:
        raise ConfigError(
            f"containers_per_network: capacity = {capacity} containers at {per} "
            f"per network needs {count} Docker networks, more than {MAX_NETWORKS}; raise "
            f"containers_per_network (up to {limit}) or lower capacity"
        )
    return per


def _validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(FILE_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; known options: {', '.join(FILE_FIELDS)}")
    if "image" not in raw:
        raise ConfigError("image: required (the notebook image to run, e.g. 'jupyter/minimal-notebook:2024')")
    v: dict[str, Any] = {**DEFAULTS, **raw}
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
    out["listen_port"] = _int("listen_port", v["listen_port"], 1, 65535)
    out["chp_api_url"] = _url("chp_api_url", v["chp_api_url"], ("http", "https"))
    out["docker_url"] = _url("docker_url", v["docker_url"], ("unix", "http", "https", "tcp"))
    out["command"] = _command(list(v["command"]) if isinstance(v["command"], tuple) else v["command"])
    out["container_port"] = _int("container_port", v["container_port"], 1, 65535)
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
    out["mem_limit_mb"] = _int("mem_limit_mb", v["mem_limit_mb"], 32, 1024 * 1024)
    out["cpu_shares"] = _int("cpu_shares", v["cpu_shares"], 2, 262144)
    cpus = v["cpus"]
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not (cpus == 0 or 0.01 <= cpus <= 1024):
        raise ConfigError(
            f"cpus: expected 0 (no cap) or a number of cores between 0.01 and 1024, got {cpus!r}"
        )
    out["cpus"] = float(cpus)
    out["pids_limit"] = _int("pids_limit", v["pids_limit"], 16, 4194304)
    out.update(_disk(v, user, out["mem_limit_mb"]))
    out["capacity"] = _int("capacity", v["capacity"], 1, 100000)
    out["pool_size"] = _int("pool_size", v["pool_size"], 0, out["capacity"])
    out["containers_per_network"] = _containers_per_network(v, out["capacity"])
    out["max_concurrent_starts"] = _int("max_concurrent_starts", v["max_concurrent_starts"], 1, 1000)
    out["boot_timeout"] = _seconds("boot_timeout", v["boot_timeout"], 1, 3600)
    out["spawn_wait"] = _seconds("spawn_wait", v["spawn_wait"], 0, 3600)
    out["cull_timeout"] = _seconds("cull_timeout", v["cull_timeout"], 1, 30 * 86400)
    out["cull_max_age"] = _seconds("cull_max_age", v["cull_max_age"], 1, 365 * 86400)
    out["cull_interval"] = _seconds("cull_interval", v["cull_interval"], 0.1, 3600)
    out["reconcile_interval"] = _seconds("reconcile_interval", v["reconcile_interval"], 0.1, 3600)
    redirect = _str("redirect_path", v["redirect_path"]).strip("/")
    if redirect and not all(PATH_SEGMENT_RE.match(s) for s in redirect.split("/")):
        raise ConfigError(
            f"redirect_path: expected URL path segments such as 'tree' or 'lab', got {redirect!r}"
        )
    out["redirect_path"] = redirect
    out["spawn_limit_per_minute"] = _int("spawn_limit_per_minute", v["spawn_limit_per_minute"], 0, 1000000)
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
    out["trusted_proxy_hops"] = _int("trusted_proxy_hops", v["trusted_proxy_hops"], 1, 10)
    public = _str("public_url", v["public_url"]).rstrip("/")
    if public:
        _url("public_url", public, ("http", "https"))
    out["public_url"] = public
    out["admin_networks"] = _networks(v["admin_networks"])
    out["retry_after"] = _int("retry_after", v["retry_after"], 1, 3600)
    level = _str("log_level", v["log_level"]).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {v['log_level']!r}")
    out["log_level"] = level
    return out


def from_mapping(
    raw: Mapping[str, Any], env: Mapping[str, str] | None = None, *, need_secrets: bool = True
) -> Config:
    """Validate ``raw`` (the TOML's table) and the secrets in ``env`` (default: os.environ)."""
    env = os.environ if env is None else env
    values = _validate(raw)
    token = env.get(ENV_CHP_TOKEN, "").strip()
    if need_secrets and not token:
        raise ConfigError(
            f"{ENV_CHP_TOKEN} is not set: the orchestrator needs CHP's admin token in its environment "
            "(systemd: EnvironmentFile=/etc/configurable-http-proxy/auth.env)"
        )
    return Config(**values, chp_auth_token=token, admin_token=env.get(ENV_ADMIN_TOKEN, "").strip())


def load(path: str | Path, env: Mapping[str, str] | None = None, *, need_secrets: bool = True) -> Config:
    """Read and validate the TOML file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    nested = sorted(k for k, val in raw.items() if isinstance(val, dict))
    if nested:
        raise ConfigError(f"{p}: options are flat keys; unexpected table(s) {nested}")
    try:
        return from_mapping(raw, env, need_secrets=need_secrets)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def changed_options(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Options that differ between two configs: (applied live, needing a restart)."""
    diff = [n for n in FILE_FIELDS if getattr(old, n) != getattr(new, n)]
    return [n for n in diff if n in RELOADABLE], [n for n in diff if n not in RELOADABLE]
