"""Docker Engine API through aiodocker: this instance's network and containers, and its events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiodocker
import aiohttp
from aiodocker.docker import DockerEvents

from tmpnb.config import Config
from tmpnb.docker_spec import (
    BRIDGE_NAME_OPTION,
    ICC_OPTION,
    LABEL_INSTANCE,
    ContainerEvent,
    bridge_name,
    container_address,
    container_name,
    container_spec,
    network_problem,
    parse_container,
    parse_event,
)
from tmpnb.reconcile import ContainerInfo

log = logging.getLogger("tmpnb.docker")

# What parse_container reads of each entry of Docker's container list.
LISTED_FIELDS = ("Id", "Labels", "NetworkSettings", "State", "Image", "Created")

# Every Docker call is bounded (a hung dockerd must not hang the orchestrator): metadata calls
# (inspect, list, ping) get DOCKER_TIMEOUT, container create/start/remove DOCKER_SLOW_TIMEOUT (a
# busy engine is slow to start containers), /healthz's ping PING_TIMEOUT. The event stream has no
# total timeout (it is meant to last), only DOCKER_CONNECT_TIMEOUT for reaching the socket.
DOCKER_TIMEOUT = 10.0
DOCKER_SLOW_TIMEOUT = 60.0
DOCKER_CONNECT_TIMEOUT = 5.0
PING_TIMEOUT = 3.0


class DockerError(RuntimeError):
    """A Docker call failed; the message says which and why."""


class NetworkRefused(DockerError):
    """The notebooks' network exists but is not isolated: no container may start on it."""


@dataclass(frozen=True)
class Started:
    container_id: str
    target: str  # http://ip:port


@contextlib.asynccontextmanager
async def bounded(what: str, seconds: float) -> AsyncIterator[None]:
    """A Docker call that takes longer than `seconds`, or whose connection fails, is a DockerError."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise DockerError(f"{what}: no answer from the Docker engine within {seconds:g}s (hung?)") from exc
    except aiohttp.ClientError as exc:
        raise DockerError(f"{what}: {exc}") from exc


class DockerBackend:
    def __init__(
        self,
        url: str,
        timeout: float = DOCKER_TIMEOUT,
        slow_timeout: float = DOCKER_SLOW_TIMEOUT,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.slow_timeout = slow_timeout
        self.ping_timeout = ping_timeout
        self._docker: aiodocker.Docker | None = None

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            # No total timeout at this level (the event stream must last); each call is bounded below.
            self._docker = aiodocker.Docker(
                url=self.url, timeout=aiohttp.ClientTimeout(total=None, sock_connect=DOCKER_CONNECT_TIMEOUT)
            )
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def ping(self) -> bool:
        try:
            async with bounded("ping", self.ping_timeout):
                await self.docker.version()
        except (DockerError, aiodocker.DockerError, OSError) as exc:
            log.warning("docker unreachable at %s: %s", self.url, exc)
            return False
        return True

    async def ensure_network(self, name: str, instance: str) -> None:
        """Create the dedicated bridge network (inter-container traffic off, bridge named by
        `bridge_name`) if missing; refuse (NetworkRefused) an existing one that is not like that."""
        try:
            async with bounded(f"inspecting network {name}", self.timeout):
                info = await (await self.docker.networks.get(name)).show()
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise DockerError(f"inspecting network {name}: {exc.message}") from exc
        else:
            problem = network_problem(name, info, instance)
            if problem:
                raise NetworkRefused(problem)
            return
        try:
            async with bounded(f"creating network {name}", self.timeout):
                await self.docker.networks.create(
                    {
                        "Name": name,
                        "Driver": "bridge",
                        "CheckDuplicate": True,
                        "Options": {ICC_OPTION: "false", BRIDGE_NAME_OPTION: bridge_name(name)},
                        "Labels": {LABEL_INSTANCE: instance},
                    }
                )
            log.info("network created: %s (bridge %s, inter-container traffic off)", name, bridge_name(name))
        except aiodocker.DockerError as exc:
            if exc.status != 409:  # created by someone else meanwhile: checked on the next pass
                raise DockerError(f"creating network {name}: {exc.message}") from exc

    async def image_id(self, image: str) -> str | None:
        """The image's id (sha256:<hex>); None when the engine does not have it."""
        try:
            async with bounded(f"inspecting image {image}", self.timeout):
                info = await self.docker.images.inspect(image)
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise DockerError(f"inspecting image {image}: {exc.message}") from exc
        return str(info.get("Id", "")) or None

    async def list_containers(self, config: Config) -> list[ContainerInfo]:
        """Every container (running or not) labelled as this instance's."""
        try:
            async with bounded("listing containers", self.timeout):
                listed = await self.docker.containers.list(
                    all="1", filters=json.dumps({"label": [f"{LABEL_INSTANCE}={config.instance}"]})
                )
        except aiodocker.DockerError as exc:
            raise DockerError(f"listing containers: {exc.message}") from exc
        raw = ({key: c[key] for key in LISTED_FIELDS if key in c} for c in listed)
        infos = (parse_container(c, config.instance, config.network_name, config.container_port) for c in raw)
        return [c for c in infos if c is not None]

    async def create_and_start(self, config: Config, user_id: str, created: float, network: str) -> Started:
        name = container_name(config.instance, user_id)
        try:
            async with bounded(f"creating {name}", self.slow_timeout):
                container = await self.docker.containers.create(
                    container_spec(config, user_id, created, network), name=name
                )
        except aiodocker.DockerError as exc:
            raise DockerError(f"creating {name} from image {config.image}: {exc.message}") from exc
        try:
            async with bounded(f"starting {name}", self.slow_timeout):
                await container.start()
                info = await container.show()
        except (aiodocker.DockerError, DockerError) as exc:
            await self.remove(container.id)
            message = exc.message if isinstance(exc, aiodocker.DockerError) else str(exc)
            raise DockerError(f"starting {name}: {message}") from exc
        on, ip = container_address(info, network)
        if on != network:
            await self.remove(container.id)
            raise DockerError(f"{name} has no address on network {network}")
        return Started(container.id, f"http://{ip}:{config.container_port}")

    async def remove(self, container_id: str) -> None:
        """Kill and remove; a container already gone is fine."""
        try:
            async with bounded(f"removing {container_id[:12]}", self.slow_timeout):
                await self.docker.containers.container(container_id).delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status not in (404, 409):  # gone, or removal already in progress
                raise DockerError(f"removing {container_id[:12]}: {exc.message}") from exc

    async def events(self, instance: str) -> AsyncIterator[ContainerEvent]:
        """Container die and oom events of this instance, until the stream ends."""
        events = DockerEvents(self.docker)
        filters = {"type": ["container"], "label": [f"{LABEL_INSTANCE}={instance}"], "event": ["die", "oom"]}
        subscriber = events.subscribe(filters=json.dumps(filters))
        try:
            while True:
                event = await subscriber.get()
                if event is None:
                    return
                yield parse_event(event)
        finally:
            await events.stop()
            if events.task is not None:
                events.task.cancel()
