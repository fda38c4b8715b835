"""What the orchestrator's parts share: the configuration, the clients, the pool and metrics, the
health flags, the wake-up events and the set of background tasks. No decisions live here."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from tmpnb.chp import CHPClient
from tmpnb.config import Config
from tmpnb.docker_backend import DockerBackend
from tmpnb.metrics import Metrics
from tmpnb.pool import Pool
from tmpnb.recent import History, SpawnWindow


class Runtime:
    def __init__(self, config: Config) -> None:
        self.config = config  # replaced (never mutated) by a reload: read it at each use
        self.pool = Pool()
        self.docker = DockerBackend(config.docker_url)
        self.chp = CHPClient(config.chp_api_url, config.chp_auth_token)
        self.metrics = Metrics(self.pool.counts, lambda: self.config.capacity)
        self.recent_spawns = SpawnWindow()  # hand-outs and failures of the last minutes (stats)
        self.in_use_history = History()  # in use, sampled by the orchestrator's history loop
        self.refill_now = asyncio.Event()  # set by wake(): the refill loop looks at once
        self.reconcile_now = asyncio.Event()  # the reconcile loop runs at once
        self.tasks: set[asyncio.Task[Any]] = set()  # boots, removals, checks under way
        self.chp_ok = False
        self.docker_ok = False
        self.network_error: str | None = "not checked yet"  # None: the network is fit for notebooks
        self.network_checked_at = 0.0
        # first hex characters of config.image's id (tmpnb.ids.image_key), looked up at start and at
        # each reload: every new user id carries it, so nginx serves that image's static copy.
        # None (image not there yet): ids without key, static files through CHP.
        self.image_key: str | None = None

    def spawn_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def wake(self) -> None:
        self.refill_now.set()

    def pooled_in_use(self) -> tuple[int, int]:
        n = self.pool.counts()
        return n.pooled, n.in_use
