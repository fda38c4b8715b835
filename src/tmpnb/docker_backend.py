"""Docker Engine API through aiodocker: this instance's network and containers, and its events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.docker import DockerEvents

from tmpnb.config import Config
from tmpnb.reconcile import (
    LABEL_CREATED,
    LABEL_IMAGE,
    LABEL_INSTANCE,
    LABEL_PORT,
    LABEL_USER_ID,
    LABEL_USER_PATH,
    ContainerInfo,
    parse_container,
)

log = logging.getLogger("tmpnb.docker")

ICC_OPTION = "com.docker.network.bridge.enable_icc"


class DockerError(RuntimeError):
    """A Docker call failed; the message says which and why."""


@dataclass(frozen=True)
class Started:
    container_id: str
    target: str  # http://ip:port


def container_name(instance: str, user_id: str) -> str:
    return f"tmpnb-{instance}-{user_id}"


def container_spec(config: Config, user_id: str, created: float) -> dict[str, Any]:
    """The create body: non-root, no capabilities, no new privileges, bounded memory/pids/CPU share,
    on the dedicated network, no published ports (CHP routes to the container's address)."""
    memory = config.mem_limit_mb * 1024 * 1024
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
        "Env": [f"TMPNB_BASE_PATH={config.base_path(user_id)}", f"TMPNB_PORT={config.container_port}"],
        "HostConfig": {
            "Memory": memory,
            "MemorySwap": memory,  # swap limit = the memory limit: no swap beyond the slice
            "CpuShares": config.cpu_shares,
            "PidsLimit": config.pids_limit,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "NetworkMode": config.network_name,
            "RestartPolicy": {"Name": "no"},
            "Init": True,
        },
        "NetworkingConfig": {"EndpointsConfig": {config.network_name: {}}},
    }


class DockerBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self._docker: aiodocker.Docker | None = None

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.url)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def ping(self) -> bool:
        try:
            await self.docker.version()
        except (TimeoutError, aiodocker.DockerError, OSError) as exc:
            log.warning("docker unreachable at %s: %s", self.url, exc)
            return False
        return True

    async def ensure_network(self, name: str, instance: str) -> None:
        """Create the dedicated bridge network with inter-container traffic off, if missing."""
        try:
            info = await (await self.docker.networks.get(name)).show()
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise DockerError(f"inspecting network {name}: {exc.message}") from exc
        else:
            if (info.get("Options") or {}).get(ICC_OPTION, "true") != "false":
                log.warning(
                    "network %s exists with inter-container traffic ON (%s not false); "
                    "remove it so tmpnb recreates it isolated",
                    name,
                    ICC_OPTION,
                )
            return
        try:
            await self.docker.networks.create(
                {
                    "Name": name,
                    "Driver": "bridge",
                    "CheckDuplicate": True,
                    "Options": {ICC_OPTION: "false"},
                    "Labels": {LABEL_INSTANCE: instance},
                }
            )
            log.info("network created: %s (inter-container traffic off)", name)
        except aiodocker.DockerError as exc:
            if exc.status != 409:  # created by someone else meanwhile
                raise DockerError(f"creating network {name}: {exc.message}") from exc

    async def image_exists(self, image: str) -> bool:
        try:
            await self.docker.images.inspect(image)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return False
            raise DockerError(f"inspecting image {image}: {exc.message}") from exc
        return True

    async def list_containers(self, config: Config) -> list[ContainerInfo]:
        """Every container (running or not) labelled as this instance's."""
        try:
            raw = await self.docker._query_json(
                "containers/json",
                params={
                    "all": "1",
                    "filters": json.dumps({"label": [f"{LABEL_INSTANCE}={config.instance}"]}),
                },
            )
        except aiodocker.DockerError as exc:
            raise DockerError(f"listing containers: {exc.message}") from exc
        infos = (parse_container(c, config.instance, config.network_name, config.container_port) for c in raw)
        return [c for c in infos if c is not None]

    async def create_and_start(self, config: Config, user_id: str, created: float) -> Started:
        name = container_name(config.instance, user_id)
        try:
            container = await self.docker.containers.create(
                container_spec(config, user_id, created), name=name
            )
        except aiodocker.DockerError as exc:
            raise DockerError(f"creating {name} from image {config.image}: {exc.message}") from exc
        try:
            await container.start()
            info = await container.show()
        except aiodocker.DockerError as exc:
            await self.remove(container.id)
            raise DockerError(f"starting {name}: {exc.message}") from exc
        ip = (
            ((info.get("NetworkSettings") or {}).get("Networks") or {})
            .get(config.network_name, {})
            .get("IPAddress")
        )
        if not ip:
            await self.remove(container.id)
            raise DockerError(f"{name} has no address on network {config.network_name}")
        return Started(container.id, f"http://{ip}:{config.container_port}")

    async def remove(self, container_id: str) -> None:
        """Kill and remove; a container already gone is fine."""
        try:
            await self.docker.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):  # gone, or removal already in progress
                raise DockerError(f"removing {container_id[:12]}: {exc.message}") from exc

    async def events(self, instance: str) -> AsyncIterator[Mapping[str, Any]]:
        """Container die and oom events of this instance, until the stream ends."""
        events = DockerEvents(self.docker)
        filters = {"type": ["container"], "label": [f"{LABEL_INSTANCE}={instance}"], "event": ["die", "oom"]}
        subscriber = events.subscribe(filters=json.dumps(filters))
        try:
            while True:
                event = await subscriber.get()
                if event is None:
                    return
                yield event
        finally:
            await events.stop()
            if events.task is not None:
                events.task.cancel()
