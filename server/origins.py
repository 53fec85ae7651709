"""Which browser origins may drive this server, and whether a request proves it came from one (pure, no I/O).

Browsers send `Origin` on every WebSocket upgrade and every POST; scripts cannot forge it, nor the
`Sec-Fetch-Site` header. A page on another port of the same host is same-site (its requests carry
a SameSite=Lax cookie) but not same-origin: only the origin tells it apart.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443}
PEER_MEMORY: Final[float] = 24 * 3600.0  # a node's origin stays allowed this long after it was last live
HOST_PATTERN: Final[re.Pattern[str]] = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Origin:
    """A web origin, normalised: lower-case scheme and host, the port always explicit."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{host}" if self.port == default else f"{self.scheme}://{host}:{self.port}"


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as an Origin; None for `null`, a path, credentials or a bad port."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return Origin(scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme])


def request_origin(scheme: str, host: str) -> Origin | None:
    """The origin a request was sent to: its scheme and its `Host` header (None unless a plain host[:port])."""
    # Strict, since the host is echoed into the Content-Security-Policy header.
    if not HOST_PATTERN.fullmatch(host):
        return None
    return parse_origin(f"{scheme}://{host}")


class OriginPolicy:
    """The origins besides a request's own that may use the cookie: configured ones and the public host."""

    def __init__(self, allowed: Iterable[str], *, public_host: str | None = None, port: int | None = None) -> None:
        self._allowed: set[Origin] = set()
        for text in allowed:
            origin = parse_origin(text)
            if origin is not None:
                self._allowed.add(origin)
        if public_host:
            # Behind a proxy the browser speaks to the public name on the proxy's port (default or
            # the server's own), whatever Host header the proxy passes on.
            for scheme, default in DEFAULT_PORTS.items():
                for candidate_port in {default, port or default}:
                    self._allowed.add(Origin(scheme, public_host.lower().strip("[]"), candidate_port))
        # The public origins of this deployment's nodes (server/nodes.py reports them with every
        # heartbeat): a page served by one node may reconnect through another. Only nodes that were
        # registered in the store, and for PEER_MEMORY after they were last live: a page whose node
        # died must still be let in by the survivors.
        self.peers: frozenset[Origin] = frozenset()
        self._peer_seen: dict[Origin, float] = {}

    def set_peers(self, urls: Iterable[str], now: float) -> None:
        """The public base URLs of the live nodes, as of their last heartbeat (`now`, monotonic seconds)."""
        for origin in map(parse_origin, urls):
            if origin is not None:
                self._peer_seen[origin] = now
        for origin in [o for o, seen in self._peer_seen.items() if now - seen > PEER_MEMORY]:
            del self._peer_seen[origin]
        self.peers = frozenset(self._peer_seen)

    def allows(self, origin: Origin, own: Origin | None) -> bool:
        """Whether a page of `origin` may act on a server that `own` names."""
        return origin == own or origin in self._allowed or origin in self.peers


def cross_origin_reason(
    origin_header: str | None,
    fetch_site: str | None,
    *,
    has_cookie: bool,
    own: Origin | None,
    policy: OriginPolicy,
) -> str | None:
    """Why a WebSocket upgrade or a state-changing request must be refused; None to accept it.

    - An `Origin` naming a real origin decides alone: it must be this server's or an allowed one.
    - `Origin: null` (our own `Referrer-Policy: no-referrer` makes Chromium send it on same-origin
      form posts) or none at all: `Sec-Fetch-Site`, which only the browser sets, must say
      `same-origin`.
    - Neither (or `null` from a browser too old for fetch metadata): such a client cannot be
      tricked into sending someone's cookie unless it has one, so it may act by token or log in;
      a request that carries the session cookie is refused.
    """
    if origin_header is not None and origin_header.strip() != "null":
        origin = parse_origin(origin_header)
        if origin is None:
            return f"malformed Origin {origin_header[:100]!r}"
        if policy.allows(origin, own):
            return None
        return f"origin {origin} is not this server's ({own}) nor an allowed one"
    if fetch_site is not None:
        return None if fetch_site.strip().lower() == "same-origin" else f"Sec-Fetch-Site {fetch_site[:20]!r} without an allowed Origin"
    if not has_cookie:
        return None
    return "a request with the session cookie must come from this server's own pages (no Origin sent)"


def trusted_address(address: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether `address` lies in one of the networks (False for anything that is not an IP address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(header: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str | None:
    """The client in an X-Forwarded-For chain: the rightmost hop that is not one of our proxies."""
    trusted = tuple(networks)
    for hop in reversed([h.strip() for h in header.split(",") if h.strip()]):
        if not trusted_address(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return None
    return None
