"""The client's address: the socket's peer, or, when that peer is a trusted proxy, ``X-Forwarded-For``.

Each proxy appends the address it received the request from, so the header is read from the right: past
every address that is a trusted proxy, the first one that is not is the client (as uvicorn's
``ProxyHeadersMiddleware`` and werkzeug's ``ProxyFix`` read it). From any other peer the header is
ignored: a client could write anything in it. ``Forwarded`` (RFC 7239) is not read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address

from ..config import Network

__all__ = ["client_address"]

MAX_HOPS = 32
"""Entries of ``X-Forwarded-For`` looked at, from the right; no real chain of proxies is longer."""


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str | None:
    """The client's address, given the socket's ``peer``, the ``X-Forwarded-For`` headers in order, and
    the trusted proxies. ``None`` when the server knows no peer (a Unix socket)."""
    if peer is None or not trusted:
        return peer
    peer_ip = _ip(peer)
    if peer_ip is None or not _within(peer_ip, trusted):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")][-MAX_HOPS:]
    nearest = peer_ip
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break  # a trusted proxy wrote no address ("unknown"): the nearest known one stands
        if not _within(ip, trusted):
            return str(ip)
        nearest = ip
    # Every hop is a trusted proxy (or the chain broke): the request comes from the farthest one known.
    return str(nearest)


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    """An address as proxies write it: ``192.0.2.1``, ``192.0.2.1:443``, ``2001:db8::1`` or
    ``[2001:db8::1]:443``; ``None`` for anything else."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _within(ip: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(ip in network for network in trusted)
