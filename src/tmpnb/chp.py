"""configurable-http-proxy's admin API (aiohttp client, token auth)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from tmpnb.ids import redact

log = logging.getLogger("tmpnb.chp")


class CHPError(RuntimeError):
    """CHP's admin API failed or is unreachable."""


class CHPClient:
    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": f"token {self._token}"},
                connector=aiohttp.TCPConnector(limit=32),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str = "") -> str:
        return f"{self.api_url}/api/routes{quote(path)}"

    async def _call(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a GET, else None; a route that is not there (GET, DELETE) is None."""
        try:
            async with self.session.request(method, self._url(path), json=body) as resp:
                if resp.status == 403:
                    raise CHPError("CHP refused the admin token (403): check CONFIGPROXY_AUTH_TOKEN")
                if resp.status == 404 and path and method in ("GET", "DELETE"):
                    return None
                if resp.status >= 400:
                    text = redact((await resp.text())[:200])
                    raise CHPError(
                        f"CHP {method} {redact(path) or '/api/routes'} answered {resp.status}: {text}"
                    )
                if method == "GET":
                    return await resp.json(content_type=None)
                return None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CHPError(f"CHP admin API at {self.api_url} unreachable: {exc!r}") from exc

    async def has_route(self, path: str) -> bool:
        """Whether CHP has a route at ``path`` (one cheap call: the CHP-restart watch)."""
        return await self._call("GET", path) is not None

    async def get_routes(self) -> dict[str, Any]:
        routes = await self._call("GET")
        if not isinstance(routes, dict):
            raise CHPError("CHP answered GET /api/routes with something other than a JSON object")
        return routes

    async def add_route(self, path: str, target: str, data: dict[str, Any]) -> None:
        """Add or replace a route (CHP resets its last_activity to now)."""
        await self._call("POST", path, {**data, "target": target})

    async def delete_route(self, path: str) -> None:
        await self._call("DELETE", path)

    async def ping(self) -> bool:
        try:
            await self.get_routes()
        except CHPError as exc:
            log.warning("%s", exc)
            return False
        return True
