"""The orchestrator's configuration: one flat TOML file plus two secrets from the environment.

Every option has a default except ``image``. A wrong value raises :class:`ConfigError` whose message
names the option and what is expected; ``tmpnb`` turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmpnb import options
from tmpnb.options import ConfigError
from tmpnb.placement import network_names, networks_needed

__all__ = ["DEFAULT_COMMAND", "Config", "ConfigError", "changed_options", "from_mapping", "load"]

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

ENV_CHP_TOKEN = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 - a variable name; CHP reads the same one
ENV_ADMIN_TOKEN = "TMPNB_ADMIN_TOKEN"  # noqa: S105 - a variable name


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


def _validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(FILE_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; known options: {', '.join(FILE_FIELDS)}")
    if "image" not in raw:
        raise ConfigError("image: required (the notebook image to run, e.g. 'jupyter/minimal-notebook:2024')")
    return options.check({**DEFAULTS, **raw})


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
