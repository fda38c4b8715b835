"""User ids: the only credential a visitor holds, so they are unguessable.

An id is ``<key>-<random>``: key = the first KEY_LEN hex characters of the Docker image id of the
image the visitor's container runs (nginx picks that image's copy of the static files from the URL,
roles/nginx_static), random = 96 bits. An id without key (made before keys, or when the image id was
not known) is still valid: nginx sends its static files to CHP, i.e. to the container itself.
"""

from __future__ import annotations

import re
import secrets

ID_BYTES = 12  # 96 random bits (>= 64 required)
KEY_LEN = 12  # hex characters of the image id (48 bits: tells a host's images apart)
_KEY_RE = re.compile(r"^[0-9a-f]{12}$")
# token_urlsafe(12) is exactly 16 characters; the key and its dash are optional (old-style ids)
ID_RE = re.compile(r"^(?:[0-9a-f]{12}-)?[A-Za-z0-9_-]{16}$")


def image_key(image_id: str) -> str:
    """The key of an image id (``sha256:<64 hex>`` or bare hex): its first KEY_LEN hex characters."""
    key = image_id.removeprefix("sha256:")[:KEY_LEN].lower()
    if not _KEY_RE.match(key):
        raise ValueError(f"not a Docker image id: {image_id!r}")
    return key


def new_user_id(key: str | None = None) -> str:
    """A cryptographically random, URL-safe id of 96 bits, after ``<key>-`` when a key is given."""
    random = secrets.token_urlsafe(ID_BYTES)
    if key is None:
        return random
    if not _KEY_RE.match(key):
        raise ValueError(f"image key must be {KEY_LEN} lowercase hex characters, got {key!r}")
    return f"{key}-{random}"


def is_user_id(value: str) -> bool:
    return bool(ID_RE.match(value))


def key_of(user_id: str) -> str | None:
    """The image key an id carries; None for an old-style id."""
    return user_id[:KEY_LEN] if len(user_id) > 16 and is_user_id(user_id) else None


SHOWN = 4  # random characters an id keeps in a log line: enough to tell visitors apart, useless to reach one
# a user id as a path segment: its key (not secret: an image id) and first SHOWN random characters
# kept (group 1), the other 12 cut
_IN_PATH = re.compile(r"(?<=/)((?:[0-9a-f]{12}-)?[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{12}(?![A-Za-z0-9_-])")


def redact(text: str) -> str:
    """``text`` (an id, or anything holding user paths: a path, a URL, an error message) with every
    user id cut to its key and first random characters, for logs: the path is a visitor's only credential."""
    if is_user_id(text):
        return text[: len(text) - 16 + SHOWN] + "\u2026"
    return _IN_PATH.sub("\\1\u2026", text)
