"""A light stand-in for notebook servers, for the Strata benchmark's websocket counts that a few real
Jupyter servers cannot hold on 2 cores: NOT Jupyter. One Tornado process (the notebook image has
Tornado) answers, for every user path CHP routes to it, what tmpnb-crowd asks of a notebook server:

    POST /spawn                                 303 to the next /user/<id>/tree (round robin over the ids)
    GET  /user/<id>/...                         a page without assets, setting the _xsrf cookie
    POST /user/<id>/api/kernels                 201 {"id": ...}
    DELETE /user/<id>/api/kernels/<kernel>      204
    WS   /user/<id>/api/kernels/<kernel>/channels
         each execute_request gets status busy, execute_reply (ok) and status idle, on that socket only

    python3 echo_kernel.py --port 8888 --users 1000     (ids echo-0 ... echo-999)
    python3 echo_kernel.py --port 8888 --users 0 --spawn-ids=ID,ID   (only /spawn, to those users)

Runs inside the test host in a container of the notebook image (bench/strata.py starts it); it is
not part of the kit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.process
import tornado.web
import tornado.websocket

ID_PREFIX = "echo-"
PAGE = b"<!doctype html><title>echo kernel (tmpnb bench)</title><p>not Jupyter: a websocket echo</p>"


class Spawn(tornado.web.RequestHandler):
    def initialize(self, ids: itertools.cycle[str], prefix: str) -> None:
        self.ids = ids
        self.prefix = prefix

    def check_xsrf_cookie(self) -> None:
        pass  # the kit's /spawn is a plain form POST

    def post(self) -> None:
        self.redirect(f"{self.prefix}/{next(self.ids)}/tree", status=303)


class Page(tornado.web.RequestHandler):
    def get(self, user_id: str = "", rest: str = "") -> None:
        self.set_cookie("_xsrf", secrets.token_hex(16), path="/")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(PAGE)


class Kernels(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    def post(self, user_id: str) -> None:
        self.set_status(201)
        self.finish({"id": str(uuid.uuid4()), "name": "echo"})


class Kernel(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    def delete(self, user_id: str, kernel_id: str) -> None:
        self.set_status(204)
        self.finish()


def _message(parent: dict[str, Any], msg_type: str, channel: str, content: dict[str, Any]) -> str:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "echo",
        "session": parent.get("session", ""),
        "date": datetime.now(UTC).isoformat(),
        "version": "5.3",
    }
    return json.dumps(
        {"header": header, "msg_type": msg_type, "parent_header": parent, "metadata": {},
         "content": content, "channel": channel, "buffers": []}
    )  # fmt: skip


class Channels(tornado.websocket.WebSocketHandler):
    count = 0

    def open(self, user_id: str, kernel_id: str) -> None:
        Channels.count += 1
        self.executions = 0

    def on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
            header = msg["header"]
        except (ValueError, KeyError, TypeError):
            return
        if header.get("msg_type") != "execute_request":
            return
        self.executions += 1
        self.write_message(_message(header, "status", "iopub", {"execution_state": "busy"}))
        reply = {"status": "ok", "execution_count": self.executions, "user_expressions": {}}
        self.write_message(_message(header, "execute_reply", "shell", reply))
        self.write_message(_message(header, "status", "iopub", {"execution_state": "idle"}))

    def on_close(self) -> None:
        Channels.count -= 1


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"websockets_of_this_process": Channels.count})


def app(ids: list[str], prefix: str) -> tornado.web.Application:
    cycle = itertools.cycle(ids)
    user = prefix + r"/([^/]+)"
    return tornado.web.Application(
        [
            (r"/spawn", Spawn, {"ids": cycle, "prefix": prefix}),
            (r"/_echo/health", Health),
            (user + r"/api/kernels/?", Kernels),
            (user + r"/api/kernels/([^/]+)/channels", Channels),
            (user + r"/api/kernels/([^/]+)", Kernel),
            (user + r"(/.*)?", Page),
            (r"/", Page),  # only reached when run on its own: behind CHP, / is the orchestrator's
        ],
        websocket_ping_interval=0,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--prefix", default="/user")
    p.add_argument("--users", type=int, required=True, help="user ids echo-0 ... echo-<N-1>")
    p.add_argument("--processes", type=int, default=1, help="processes sharing the port")
    p.add_argument("--spawn-ids", default="", help="comma-separated: /spawn sends visitors to these")
    args = p.parse_args()
    ids = [f"{ID_PREFIX}{i}" for i in range(args.users)]
    spawn_ids = [i for i in args.spawn_ids.split(",") if i] or ids
    if not spawn_ids:
        p.error("give --users N > 0 or --spawn-ids")
    sockets = tornado.netutil.bind_sockets(args.port, address="0.0.0.0")  # inside its container
    if args.processes > 1:
        tornado.process.fork_processes(args.processes)  # they share the listening socket
    server = tornado.httpserver.HTTPServer(app(spawn_ids, args.prefix))
    server.add_sockets(sockets)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
