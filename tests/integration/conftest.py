"""Fixtures for integration tests: the real Docker engine, a real CHP, the orchestrator process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from testsupport.stack import (
    CHP,
    OrchestratorProcess,
    cleanup_instance,
    docker_client,
    free_port,
    new_instance,
    tiny_image,
)


@pytest.fixture(scope="session")
def dclient() -> docker.DockerClient:
    return docker_client()


@pytest.fixture(scope="session")
def image(dclient: docker.DockerClient) -> str:
    return tiny_image(dclient)


Stack = tuple[CHP, OrchestratorProcess]
StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path: Path, dclient: docker.DockerClient, image: str) -> Iterator[StackFactory]:
    """make_stack(**options) -> (chp, orchestrator), both started; all removed afterwards."""
    made: list[tuple[CHP, OrchestratorProcess]] = []

    def factory(start: bool = True, wait_pool: bool = True, **options: Any) -> Stack:
        instance = new_instance()
        port = free_port()
        chp = CHP(tmp_path, port)
        chp.start()
        orch = OrchestratorProcess(tmp_path, instance, chp, port, image=image, **options)
        made.append((chp, orch))
        if start:
            orch.start(wait_pool=wait_pool)
        return chp, orch

    yield factory
    for chp, orch in made:
        orch.stop()
        chp.stop()
        cleanup_instance(dclient, orch.instance)
