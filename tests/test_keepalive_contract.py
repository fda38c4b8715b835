"""nginx -> CHP keep-alive: nginx must drop an idle upstream connection before CHP (Node) closes it.
Otherwise a request nginx sends on a connection CHP is just closing is answered with a reset, and
with request buffering off nginx cannot retry it: the visitor gets a 502. bench/strata.py saw 21 to
227 such 502s (`recv() failed (104: Connection reset by peer) while reading response header from
upstream`) at ~3,000 websockets with nginx's default upstream keepalive_timeout (60 s)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NGINX_SITE = ROOT / "roles/nginx_static/templates/etc/nginx/conf.d/tmpnb.conf.j2"
NGINX_DEFAULT_UPSTREAM_KEEPALIVE_S = 60.0  # nginx docs: keepalive_timeout in upstream, default 60s
# CHP 5.x: `keepAliveTimeout: this.options.keepAliveTimeout || 5000` (lib/configproxy.js)
CHP_DEFAULT_KEEPALIVE_S = 5.0
UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0}


def upstream_keepalive_timeout(conf: str) -> float:
    block = re.search(r"upstream tmpnb_chp \{(.*?)^\}", conf, re.S | re.M)
    assert block, "no upstream tmpnb_chp block"
    found = re.search(r"^\s*keepalive_timeout\s+(\d+)(ms|s|m|)\s*;", block.group(1), re.M)
    if not found:
        return NGINX_DEFAULT_UPSTREAM_KEEPALIVE_S
    return int(found.group(1)) * UNITS[found.group(2)]


def test_nginx_drops_idle_chp_connections_before_chp_does() -> None:
    assert upstream_keepalive_timeout(NGINX_SITE.read_text()) < CHP_DEFAULT_KEEPALIVE_S


def test_chp_keepalive_default_is_what_this_test_assumes() -> None:
    """The figure above, read from the CHP the kit pins (when `make chp` installed it here)."""
    source = ROOT / ".cache/chp/node_modules/configurable-http-proxy/lib/configproxy.js"
    if not source.exists():
        pytest.skip("CHP is not installed here (make chp)")
    assert re.search(r"keepAliveTimeout:\s*this\.options\.keepAliveTimeout\s*\|\|\s*5000", source.read_text())


def test_the_parser_sees_a_missing_or_long_timeout() -> None:
    assert upstream_keepalive_timeout("upstream tmpnb_chp {\n    keepalive 64;\n}") == 60.0
    assert upstream_keepalive_timeout("upstream tmpnb_chp {\n    keepalive_timeout 4500ms;\n}") == 4.5
