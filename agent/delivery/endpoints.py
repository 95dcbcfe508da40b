"""Broker endpoints: ``host:port`` values and which one the next attempt dials (docs/spec.md §12.1).

Theory of operation
-------------------
``mqtt.host`` may name several endpoints (the nodes of a clustered broker, or a standby
broker). The publisher dials :attr:`EndpointRotation.current`; every attempt that fails
and every connection that is lost ends with :meth:`EndpointRotation.advance`, so the
next attempt goes to the next entry, wrapping around to the first. The back-off
(:class:`agent.delivery.window.ReconnectBackoff` with ``round_size`` = the number of
endpoints) keeps one step for a whole round, one try of each endpoint, and doubles it
only after the round failed; a critical event that cuts a wait short
(docs/spec.md §6) dials whatever endpoint is next, in this same order.

No I/O here; nothing in this module knows the time.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence, Tuple


@dataclass(frozen=True)
class Endpoint:
    """One broker address: a host name or IP address (IPv6 without brackets) and a port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not self.host or self.host != self.host.strip() or "/" in self.host:
            raise ValueError(f"{self.host!r} is not a host name or address")
        if self.host.startswith("[") or self.host.endswith("]"):
            raise ValueError(f"give the IPv6 address {self.host!r} without brackets")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is outside 1-65535")

    def __str__(self) -> str:
        """``host:port``, an IPv6 address in brackets (``[::1]:8883``), as the config writes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str, default_port: int) -> Endpoint:
    """``host``, ``host:port``, ``v6``, ``[v6]`` or ``[v6]:port`` -> :class:`Endpoint`.

    Raises ValueError with a message that says how to write it.
    """
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"{text!r} opens '[' without ']'; write an IPv6 address as "
                             f"[2001:db8::1] or [2001:db8::1]:8883")
        host, rest = text[1:close], text[close + 1:]
        if not _is_ipv6(host):
            raise ValueError(f"{host!r} in brackets is not an IPv6 address; only IPv6 "
                             f"addresses go in brackets")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} has {rest!r} after ']'; only ':port' may follow")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        # a bare IPv6 address is a host without a port; with a port it needs the brackets
        if not _is_ipv6(text):
            raise ValueError(f"{text!r} is neither a host name nor an IPv6 address; write an "
                             f"IPv6 address with a port as [2001:db8::1]:8883")
        host, port_text = text, None
    else:
        host, _, port_text_raw = text.partition(":")
        port_text = port_text_raw if ":" in text else None
    if not host or "]" in host:
        raise ValueError(f"{text!r} has no host name before the port")
    return Endpoint(host, default_port if port_text is None else _port(port_text, text))


def _port(port_text: str, text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} in {text!r} is not a port; a port is a number "
                         f"1-65535 (e.g. node2.example.org:8883)")
    return int(port_text)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


class EndpointRotation:
    """Which endpoint the next connection attempt dials: the first, then each next one
    after a failed attempt or a lost connection, wrapping around."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        if not endpoints:
            raise ValueError("at least one broker endpoint is needed")
        self.endpoints: Tuple[Endpoint, ...] = tuple(endpoints)
        self.index = 0

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self.index]

    def advance(self) -> Endpoint:
        """The attempt on :attr:`current` failed or its connection was lost: move on."""
        self.index = (self.index + 1) % len(self.endpoints)
        return self.current
