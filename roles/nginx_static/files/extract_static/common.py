"""Constants and the one error type of extract_static."""

from __future__ import annotations

import re

DEFAULT_PATH_IN_IMAGE = "/usr/lib/python3/dist-packages/notebook/static"
DEFAULT_DEST = "/var/lib/tmpnb-static"
MANIFEST = "manifest.json"
FILES = "files"
CURRENT = "current"
LABEL = "org.jupyter.tmpnb.extract-static"
PREFETCH_WORKERS = 4  # docker cp calls at once while reading what the pending links go through
MAX_LINK_HOPS = 40  # links followed on one path before it is a loop, as Linux (ELOOP)
MAX_CYCLE_CHECK = 10_000  # links of the copy looked at to tell whether a new one closes a cycle
# Files nginx would otherwise compress on every request (gzip on): a .gz beside each, made once here,
# is sent as it is (gzip_static on in roles/nginx_static). Measured by `python -m bench static`.
PRECOMPRESS_SUFFIXES = frozenset({".js", ".css", ".json", ".map", ".svg", ".html", ".txt", ".xml", ".mjs"})
PRECOMPRESS_MIN_BYTES = 1024
_IMAGE_DIR = re.compile(r"^[0-9a-f]{64}$")


class ExtractError(Exception):
    """An error to report to the operator (one line: what was wrong, what to do)."""
