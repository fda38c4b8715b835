"""The orchestrator's own HTTP server (aiohttp): the visitor's page, spawns, stats, admin, health.

Behind nginx and CHP it is CHP's default target: every path no user route matches lands here.
Malformed, oversized or unknown requests get a 4xx, never a 5xx. Health, metrics, stats and the
admin drain answer only the host itself (and ``admin_networks``): to anyone else they do not exist.
Spawns refuse cross-site requests, so no other web page can spend the pool through its visitors.
"""

from __future__ import annotations

import hmac
import html
import logging
import string
from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

from tmpnb.clients import client_address, cross_site, is_admin
from tmpnb.ids import redact
from tmpnb.metrics import CONTENT_TYPE
from tmpnb.orchestrator import Full, NotRecorded, Orchestrator, RateLimited

log = logging.getLogger("tmpnb.web")

MAX_BODY = 16 * 1024
# Served only to the host itself and admin_networks; 404 (as an unknown path) to everyone else.
LOCAL_ONLY = frozenset({"/healthz", "/metrics", "/api/stats", "/api/pool"})
ORCH: web.AppKey[Orchestrator] = web.AppKey("orchestrator", Orchestrator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _template(name: str) -> string.Template:
    return string.Template(files("tmpnb").joinpath("templates", name).read_text(encoding="utf-8"))


PAGE = _template("page.html")
FULL = _template("full.html")
GONE = _template("gone.html")


def _page(template: string.Template, status: int, title: str, **values: object) -> web.Response:
    body = template.safe_substitute({k: html.escape(str(v)) for k, v in values.items()})
    text = PAGE.safe_substitute(title=html.escape(title), body=body)
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


INDEX = _page(_template("index.html"), 200, "Your temporary Jupyter notebook").text


def _wants_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")


def _error(request: web.Request, status: int, message: str, api: bool | None = None) -> web.Response:
    if _wants_api(request) if api is None else api:
        return web.json_response({"error": message, "status": status}, status=status)
    title = "Not found" if status == 404 else f"Error {status}"
    return _page(GONE, status, title=title, message=message)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bounded bodies, 4xx for whatever aiohttp rejects, 500 (logged) only for our own bugs."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _error(request, 413, f"request body larger than {MAX_BODY} bytes")
    if request.can_read_body and request.content_length is None:  # chunked: count as it comes
        size = 0
        while chunk := await request.content.read(MAX_BODY + 1 - size):
            size += len(chunk)
            if size > MAX_BODY:
                return _error(request, 413, f"request body larger than {MAX_BODY} bytes")
    if request.path in LOCAL_ONLY and not is_admin(request, request.app[ORCH].config):
        return _error(request, 404, "Not Found", api=request.path.startswith("/api/"))  # as if unknown
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.text and exc.text.startswith(f"{exc.status}:"):  # aiohttp's stock text
            resp = _error(request, exc.status, exc.reason)
            if "Allow" in exc.headers:  # 405: which methods the path takes
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        return _error(request, 500, "internal error (logged)")


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _spawn(request: web.Request) -> str | web.Response:
    orch = request.app[ORCH]
    c = orch.config
    client = client_address(request, c.client_address_header, c.trusted_proxy_hops)
    api = _wants_api(request)
    refused = cross_site(request, c.public_url)
    if refused:
        orch.metrics.spawns.labels("cross_site").inc()
        log.info("refused a cross-site spawn from %s: %s", client, refused)
        msg = f"notebooks are started from this site's own page only ({refused})"
        if api:
            return web.json_response({"error": "cross_site", "message": msg}, status=403)
        return _page(GONE, 403, title="Start your notebook here", message=msg)
    headers = {"Retry-After": str(c.retry_after), "Cache-Control": "no-store"}
    try:
        return await orch.spawn(client)
    except RateLimited:
        msg = f"too many notebooks started from your address (limit {c.spawn_limit_per_minute} per minute)"
        if api:
            return web.json_response({"error": "rate_limited", "message": msg}, status=429, headers=headers)
        resp = _page(FULL, 429, title="Slow down", message=msg, retry_after=c.retry_after)
    except Full:
        msg = "every notebook on this server is in use right now"
        if api:
            return web.json_response({"error": "full", "message": msg}, status=429, headers=headers)
        resp = _page(FULL, 429, title="All notebooks are in use", message=msg, retry_after=c.retry_after)
    except NotRecorded:
        msg = "the proxy did not take your notebook's route; nothing was started for you, please try again"
        if api:
            return web.json_response({"error": "try_again", "message": msg}, status=503, headers=headers)
        resp = _page(FULL, 503, title="Please try again", message=msg, retry_after=c.retry_after)
    resp.headers.update(headers)
    return resp


async def spawn(request: web.Request) -> web.Response:
    result = await _spawn(request)
    if isinstance(result, web.Response):
        return result
    raise web.HTTPSeeOther(location=result, headers={"Cache-Control": "no-store"})


async def api_spawn(request: web.Request) -> web.Response:
    result = await _spawn(request)
    if isinstance(result, web.Response):
        return result
    return web.json_response({"url": result}, headers={"Cache-Control": "no-store"})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[ORCH].stats())


def _bearer(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") else ""


async def drain_pool(request: web.Request) -> web.Response:
    orch = request.app[ORCH]
    token = orch.config.admin_token
    if not token:
        return _error(request, 403, "DELETE /api/pool is disabled: TMPNB_ADMIN_TOKEN is not set")
    given = _bearer(request)
    # header bytes that are not UTF-8 arrive as surrogates (aiohttp decodes with surrogateescape):
    # encode them back the same way, so they compare unequal instead of raising
    if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
        resp = _error(request, 401, "admin token required: Authorization: token <TMPNB_ADMIN_TOKEN>")
        resp.headers["WWW-Authenticate"] = "Bearer"
        return resp
    drained = await orch.drain()
    return web.json_response({"drained": drained, "image": orch.config.image}, status=202)


async def healthz(request: web.Request) -> web.Response:
    checks = await request.app[ORCH].health()
    ok = all(checks.values())
    return web.json_response({"ok": ok, **checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[ORCH].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def gone(request: web.Request) -> web.Response:
    """CHP sends a user path here when it has no route for it: culled, never existed, or CHP lost
    the route (it restarted): then the route is re-added and the visitor sent back (307)."""
    user_id = request.match_info.get("tail", "").split("/", 1)[0]
    if await request.app[ORCH].restore_route(user_id):
        raise web.HTTPTemporaryRedirect(location=request.path_qs, headers={"Retry-After": "1"})
    return _page(
        GONE,
        404,
        title="This notebook is gone",
        message="It was removed after a while without activity, or the link is wrong.",
    )


def make_app(orch: Orchestrator) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[ORCH] = orch
    prefix = orch.config.user_path_prefix
    app.router.add_get("/", index)
    app.router.add_post("/spawn", spawn)
    app.router.add_post("/api/spawn", api_spawn)
    app.router.add_get("/api/stats", stats)
    app.router.add_delete("/api/pool", drain_pool)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", prefix + "/{tail:.*}", gone)
    return app
