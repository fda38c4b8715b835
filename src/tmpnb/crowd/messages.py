"""Jupyter messaging (protocol 5.3, the JSON websocket format of Notebook 6 and jupyter-server): the
``execute_request`` a browser sends and the waiter that knows when its cell is done."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

PROTOCOL_VERSION = "5.3"
DEFAULT_CODE = "sum(range(1000))"


def execute_request(code: str, session: str, username: str = "tmpnb-crowd") -> dict[str, Any]:
    """An ``execute_request`` on the shell channel, as JupyterLab and Notebook send it."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": username,
            "session": session,
            "date": datetime.now(UTC).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


class CellWaiter:
    """Fed every message from a kernel's websocket; done when both the ``execute_reply`` and the
    ``status: idle`` whose parent is our request have arrived (messages of other requests, of
    other sockets on the same kernel, are ignored)."""

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        self.reply: dict[str, Any] | None = None
        self.idle = False

    def feed(self, text: str) -> bool:
        try:
            msg = json.loads(text)
        except ValueError:
            return self.done
        if not isinstance(msg, dict):
            return self.done
        parent = msg.get("parent_header") or {}
        if not isinstance(parent, dict) or parent.get("msg_id") != self.msg_id:
            return self.done
        msg_type = (msg.get("header") or {}).get("msg_type") or msg.get("msg_type")
        content = msg.get("content") or {}
        if msg_type == "execute_reply":
            self.reply = content
        elif msg_type == "status" and content.get("execution_state") == "idle":
            self.idle = True
        return self.done

    @property
    def done(self) -> bool:
        return self.reply is not None and self.idle

    @property
    def error(self) -> str | None:
        """Why the cell failed (the kernel's ``ename: evalue``), or None when it ran fine."""
        if self.reply is None or self.reply.get("status") == "ok":
            return None
        return f"{self.reply.get('ename', self.reply.get('status'))}: {self.reply.get('evalue', '')}".strip()
