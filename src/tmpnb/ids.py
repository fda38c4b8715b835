"""User ids: the only credential a visitor holds, so they are unguessable."""

from __future__ import annotations

import re
import secrets

ID_BYTES = 12  # 96 random bits (>= 64 required)
ID_RE = re.compile(r"^[A-Za-z0-9_-]{16}$")  # token_urlsafe(12) is exactly 16 characters


def new_user_id() -> str:
    """A cryptographically random, URL-safe id of 96 bits."""
    return secrets.token_urlsafe(ID_BYTES)


def is_user_id(value: str) -> bool:
    return bool(ID_RE.match(value))


SHOWN = 4  # characters of an id a log line keeps: enough to tell visitors apart, useless to reach one
# a user id as a path segment: its first SHOWN characters kept (group 1), the other 12 cut
_IN_PATH = re.compile(r"(?<=/)([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{12}(?![A-Za-z0-9_-])")


def redact(text: str) -> str:
    """``text`` (an id, or anything holding user paths: a path, a URL, an error message) with every
    user id cut to its first characters, for logs: the path is a visitor's only credential."""
    if is_user_id(text):
        return text[:SHOWN] + "\u2026"
    return _IN_PATH.sub("\\1\u2026", text)
