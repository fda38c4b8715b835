"""Who is asking: a visitor's address behind nginx and CHP, whether a caller may use the admin
endpoints (the host itself, or ``admin_networks``), and whether a spawn comes from another site."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from aiohttp import web

from tmpnb.config import Config

# Any of these means the request came through a proxy (nginx sets X-Real-IP, CHP adds X-Forwarded-For).
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _valid_ip(value: str) -> str | None:
    try:
        return str(ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: web.Request, header: str, hops: int) -> str:
    """The visitor's address for rate limiting.

    Headers are read only when configured (a trusted proxy sets them); otherwise the TCP peer.
    X-Forwarded-For: the entry ``hops`` from the right, i.e. the one the outermost trusted proxy
    appended (each proxy appends the address it received the request from).
    """
    peer = request.remote or "unknown"
    if header == "X-Real-IP":
        return _valid_ip(request.headers.get("X-Real-IP", "")) or peer
    if header == "X-Forwarded-For":
        entries = [
            e for v in request.headers.getall("X-Forwarded-For", []) for e in v.split(",") if e.strip()
        ]
        if len(entries) >= hops:
            return _valid_ip(entries[-hops]) or peer
    return peer


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(c) for c in cidrs)


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_admin(request: web.Request, c: Config) -> bool:
    """Whether ``request`` may see health, metrics, stats and the admin drain: it came from the host
    itself and not through the proxy chain, or from one of ``admin_networks``."""
    if _is_loopback(request.remote) and not any(h in request.headers for h in PROXY_HEADERS):
        return True
    if not c.admin_networks:
        return False
    try:
        ip = ip_address(client_address(request, c.client_address_header, c.trusted_proxy_hops))
    except ValueError:
        return False
    return any(ip in net for net in _networks(c.admin_networks))


def _origin_key(url: str) -> tuple[str, int] | None:
    """(host, port) of an origin such as ``https://example.org`` (port defaulted from the scheme)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _same_host(origin: tuple[str, int], host: str) -> bool:
    """Whether a Host header (``name[:port]``, no port = the scheme's default) names ``origin``."""
    try:
        parts = urlsplit(f"//{host.strip()}")
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.hostname.lower() != origin[0]:
        return False
    return port == origin[1] or (port is None and origin[1] in DEFAULT_PORTS.values())


def cross_site(request: web.Request, public_url: str) -> str | None:
    """Why a spawn request is cross-site (None: it is not).

    With an ``Origin`` (browsers send one on every POST), it must name this site: the request's
    ``Host`` or ``public_url``'s origin; ``Origin: null`` (sandboxed frames, some redirects) never
    does. ``Sec-Fetch-Site: cross-site`` is refused whatever the Origin; ``same-site`` (another host
    of the same registrable domain) only passes with an Origin of ours. Neither header (curl,
    scripts, old browsers) is not a browser tricked by another page: allowed.
    """
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    origin = request.headers.get("Origin")
    if origin is None:
        return f"Sec-Fetch-Site: {site} without Origin" if site == "same-site" else None
    key = _origin_key(origin)
    if key is None:
        return f"Origin {origin[:100]!r} is not a web origin"
    if _same_host(key, request.headers.get("Host", "")):
        return None
    if public_url and key == _origin_key(public_url):
        return None
    return f"Origin {origin[:100]!r} is not this site"
