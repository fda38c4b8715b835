"""Fixtures for integration tests: the real Docker engine, a real CHP, the orchestrator process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from stack import CHP, Orchestrator, cleanup_instance, docker_client, free_port, new_instance, tiny_image


@pytest.fixture(scope="session")
def dclient() -> docker.DockerClient:
    return docker_client()


@pytest.fixture(scope="session")
def image(dclient: docker.DockerClient) -> str:
    return tiny_image(dclient)


StackFactory = Callable[..., tuple[CHP, Orchestrator]]


@pytest.fixture
def make_stack(tmp_path: Path, dclient: docker.DockerClient, image: str) -> Iterator[StackFactory]:
    """make_stack(**options) -> (chp, orchestrator), both started; all removed afterwards."""
    made: list[tuple[CHP, Orchestrator]] = []

    def factory(start: bool = True, wait_pool: bool = True, **options: Any) -> tuple[CHP, Orchestrator]:
        instance = new_instance()
        port = free_port()
        chp = CHP(tmp_path, port)
        chp.start()
        orch = Orchestrator(tmp_path, instance, chp, port, image=image, **options)
        made.append((chp, orch))
        if start:
            orch.start(wait_pool=wait_pool)
        return chp, orch

    yield factory
    for chp, orch in made:
        orch.stop()
        chp.stop()
        cleanup_instance(dclient, orch.instance)
