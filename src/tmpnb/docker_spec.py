"""What tmpnb writes into Docker and reads back out of it: the labels and names of its containers,
the create body, the checks of a network fit for notebooks, and the parsing of Docker's answers.
Pure functions; the calls themselves are in tmpnb.docker_backend."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tmpnb.config import Config
from tmpnb.placement import instance_network
from tmpnb.reconcile import ContainerInfo

# Docker labels every container of ours carries (set at creation; labels are immutable).
LABEL_INSTANCE = "tmpnb.instance"
LABEL_USER_ID = "tmpnb.user_id"
LABEL_USER_PATH = "tmpnb.user_path"
LABEL_CREATED = "tmpnb.created"
LABEL_IMAGE = "tmpnb.image"
LABEL_PORT = "tmpnb.port"

ICC_OPTION = "com.docker.network.bridge.enable_icc"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
BRIDGE_PREFIX = "tmpnb-"  # the egress firewall matches `-i tmpnb-+`
CONTAINER_TMP = "/tmp"  # noqa: S108 - the notebook container's /tmp, a tmpfs of its own


def bridge_name(network: str) -> str:
    """The Linux bridge of a network tmpnb creates: "tmpnb-" + 8 hex digits of sha256(network name),
    14 characters (under IFNAMSIZ, 16). Deterministic, so a firewall rule can match `tmpnb-+`."""
    return BRIDGE_PREFIX + hashlib.sha256(network.encode()).hexdigest()[:8]


def network_problem(name: str, info: Mapping[str, Any], instance: str | None = None) -> str | None:
    """Why an existing network must not carry notebooks (None when it is fit): inter-container
    traffic on (notebooks have no token: one could drive another), a bridge the firewall does
    not cover, or (given ``instance``) a network tmpnb created for another instance (instance
    ``demo``'s ``tmpnb-demo-1`` is also instance ``demo-1``'s only network)."""
    options = info.get("Options") or {}
    owner = (info.get("Labels") or {}).get(LABEL_INSTANCE)
    if instance is not None and owner not in (None, instance):
        return (
            f"network {name} belongs to tmpnb instance {owner!r} (label {LABEL_INSTANCE}), not {instance!r}: "
            "refusing to share it; give one of the instances another `network` or `instance`"
        )
    fix = (
        f"remove it while no notebook runs on it (`docker network rm {name}`) and tmpnb recreates it, "
        f"or create it with -o {ICC_OPTION}=false -o {BRIDGE_NAME_OPTION}={bridge_name(name)}"
    )
    if info.get("Driver") not in (None, "bridge"):
        return f"network {name} uses driver {info.get('Driver')!r}, not bridge: refusing it; {fix}"
    if options.get(ICC_OPTION, "true") != "false":
        return (
            f"network {name} has inter-container traffic ON ({ICC_OPTION} is not false): any notebook "
            f"could reach another; refusing to start containers on it; {fix}"
        )
    if not str(options.get(BRIDGE_NAME_OPTION, "")).startswith(BRIDGE_PREFIX):
        return (
            f"network {name} has bridge name {options.get(BRIDGE_NAME_OPTION) or '(docker default)'!r}, "
            f"not {BRIDGE_PREFIX}*: the egress firewall (matching {BRIDGE_PREFIX}+) would not cover it; "
            f"refusing to start containers on it; {fix}"
        )
    return None


def container_name(instance: str, user_id: str) -> str:
    return f"tmpnb-{instance}-{user_id}"


def container_spec(config: Config, user_id: str, created: float, network: str = "") -> dict[str, Any]:
    """The create body: non-root, no capabilities, no new privileges, bounded memory/pids/CPU share,
    read-only root with size-bounded tmpfs for home, /tmp and /dev/shm, on ``network`` (one of the
    instance's dedicated networks; empty: the first), no published ports (CHP routes to the
    container's address)."""
    network = network or config.network_names[0]
    memory = config.mem_limit_mb * 1024 * 1024
    uid, gid = config.container_user.split(":")
    return {
        "Image": config.image,
        "Cmd": config.render_command(user_id),
        "User": config.container_user,
        "Labels": {
            LABEL_INSTANCE: config.instance,
            LABEL_USER_ID: user_id,
            LABEL_USER_PATH: config.base_path(user_id),
            LABEL_CREATED: f"{created:.3f}",
            LABEL_IMAGE: config.image,
            LABEL_PORT: str(config.container_port),
        },
        "Env": [
            f"TMPNB_BASE_PATH={config.base_path(user_id)}",
            f"TMPNB_PORT={config.container_port}",
            f"HOME={config.home_path}",
        ],
        "WorkingDir": config.home_path,
        "HostConfig": {
            "Memory": memory,
            "MemorySwap": memory,  # swap limit = the memory limit: no swap beyond the slice
            "CpuShares": config.cpu_shares,
            **({"NanoCpus": round(config.cpus * 1e9)} if config.cpus else {}),
            "PidsLimit": config.pids_limit,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "NetworkMode": network,
            "RestartPolicy": {"Name": "no"},
            "Init": True,
            # Disk: nothing writable but three tmpfs mounts bounded in size, whose pages count in
            # the memory slice; the image's root filesystem is read-only, so /var/lib/docker never
            # grows with what a visitor writes. exec: pip-installed extensions must load.
            "ReadonlyRootfs": True,
            "Tmpfs": {
                config.home_path: f"size={config.home_size_mb}m,uid={uid},gid={gid},mode=0700,exec",
                CONTAINER_TMP: f"size={config.tmp_size_mb}m,mode=1777,exec",
            },
            "ShmSize": config.shm_size_mb * 1024 * 1024,
        },
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }


def container_address(info: Mapping[str, Any], network: str) -> tuple[str, str]:
    """(network, IP address) of a container (an entry of ``GET /containers/json`` or an inspect)
    on ``network`` or any ``network-<n>`` of the instance (tmpnb.placement.instance_network);
    ("", "") when it has no address there."""
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    on = instance_network(network, (n for n, v in networks.items() if (v or {}).get("IPAddress")))
    return (on, networks[on]["IPAddress"]) if on is not None else ("", "")


def parse_container(raw: Mapping[str, Any], instance: str, network: str, port: int) -> ContainerInfo | None:
    """One entry of Docker's ``GET /containers/json`` (or None if it is not ours). ``network`` is
    the base name of the instance's networks: the address is the one on ``network`` or on any
    ``network-<n>`` (see tmpnb.placement.instance_network)."""
    labels = raw.get("Labels") or {}
    if labels.get(LABEL_INSTANCE) != instance or not labels.get(LABEL_USER_ID):
        return None
    on, ip = container_address(raw, network)
    label_port = labels.get(LABEL_PORT, "")
    port = int(label_port) if label_port.isdigit() else port  # the port it was started with
    try:
        created = float(labels.get(LABEL_CREATED, raw.get("Created", 0)))
    except ValueError:
        created = float(raw.get("Created", 0) or 0)
    user_id = labels[LABEL_USER_ID]
    return ContainerInfo(
        id=str(raw.get("Id", "")),
        user_id=user_id,
        path=labels.get(LABEL_USER_PATH, "").rstrip("/"),
        running=raw.get("State") == "running",
        target=f"http://{ip}:{port}" if ip else None,
        image=labels.get(LABEL_IMAGE, str(raw.get("Image", ""))),
        created=created,
        network=on,
    )


@dataclass(frozen=True)
class ContainerEvent:
    """One event of Docker's stream about a container of ours (``die`` or ``oom``)."""

    action: str
    container_id: str
    user_id: str  # "" when the container carries no user label
    path: str  # the user path label, without the trailing slash
    exit_code: str = "?"


def parse_event(raw: Mapping[str, Any]) -> ContainerEvent:
    """An entry of ``GET /events`` (current ``Action``/``Actor`` form, or the older ``status``/``id``)."""
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    return ContainerEvent(
        action=str(raw.get("Action") or raw.get("status") or ""),
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        user_id=str(attrs.get(LABEL_USER_ID, "")),
        path=str(attrs.get(LABEL_USER_PATH, "")).rstrip("/"),
        exit_code=str(attrs.get("exitCode", "?")),
    )
