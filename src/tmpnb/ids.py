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
