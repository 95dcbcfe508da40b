"""What the publisher is given and what it shows, without paho: settings, row source, status.

:class:`LinkSettings` (and :class:`TlsSettings`) say which broker and how
(docs/spec.md §5); :class:`RowSource` is what the publisher reads rows from and acks them
to (the outbox through ``agent/outbox/source.py``); :class:`LinkStatus` is the frozen
snapshot of the link that ``status`` and heartbeats read, kept on a :class:`StatusBoard`
that only the publisher's thread changes. Config and ``status`` import this module, not
paho (reason codes by name: ``agent/delivery/reasons.py``).
"""
from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AbstractSet, Any, Optional, Protocol, Sequence, Tuple

from agent.delivery.endpoints import Endpoint
from agent.delivery.window import BackoffSettings, WindowSettings

#: the MQTT versions ``mqtt.protocol`` may name
PROTOCOLS = ("3.1.1", "5")


class RowLike(Protocol):
    @property
    def row_id(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


class RowSource(Protocol):
    """What the publisher needs of the outbox (it is thread-safe through its owner)."""

    def next_batch(self, limit: int, exclude: AbstractSet[int]) -> Sequence[RowLike]: ...

    def ack(self, row_ids: Sequence[int]) -> None: ...


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Optional[Path] = None        # None: the system's CAs
    cert_file: Optional[Path] = None
    key_file: Optional[Path] = None
    verify: bool = True                   # False only when asked for explicitly

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file),
                                str(self.key_file) if self.key_file else None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class LinkSettings:
    """Everything the publisher needs to know about the broker (docs/spec.md §5).

    ``host:port`` is the first endpoint; ``more_endpoints`` the others of ``mqtt.host``,
    in order (docs/spec.md §12.1); TLS, credentials and client id are shared by all.
    """

    host: str
    port: int
    client_id: str
    topic_prefix: str
    protocol: str = "5"
    keepalive_s: int = 30
    tls: Optional[TlsSettings] = None
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    subscribe_commands: bool = True
    window: WindowSettings = WindowSettings()
    connect_timeout_s: float = 5.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    #: a connection that lasted this long (or saw a PUBACK) resets the back-off
    healthy_after_s: float = 10.0
    #: a critical event cuts a back-off wait short at most once per this many seconds
    critical_retry_gap_s: float = 5.0
    more_endpoints: Tuple[Endpoint, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, not {self.protocol!r}")
        self.backoff  # checks the back-off values
        if len(set(self.endpoints)) != len(self.endpoints):
            raise ValueError(f"broker endpoints repeat: {', '.join(map(str, self.endpoints))}")

    @property
    def endpoints(self) -> Tuple[Endpoint, ...]:
        """Every endpoint, in the order they are tried."""
        return (Endpoint(self.host, self.port),) + self.more_endpoints

    @property
    def backoff(self) -> BackoffSettings:
        return BackoffSettings(base_s=self.backoff_base_s, max_s=self.backoff_max_s,
                               healthy_after_s=self.healthy_after_s,
                               critical_gap_s=self.critical_retry_gap_s)

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/status"

    @property
    def commands_topic(self) -> str:
        return f"{self.topic_prefix}/commands"


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of the link, for ``status`` and heartbeats."""

    connected: bool = False
    #: ``host:port`` of the endpoint connected to, or being tried while not connected
    endpoint: Optional[str] = None
    since: Optional[float] = None          # wall-clock time of the last change
    connects: int = 0
    attempts: int = 0                      # connection attempts (dials) made
    retry_in_s: Optional[float] = None     # the back-off wait being served, while not connected
    reconnects: int = 0
    stalls: int = 0
    oversized: int = 0                     # incoming packets over MAX_INCOMING_PACKET, dropped
    last_error: Optional[str] = None
    delivered: int = 0
    rejected: int = 0                      # publishes the broker refused (reason >= 0x80)
    last_rejected_reason: Optional[int] = None
    last_rejected_at: Optional[float] = None   # wall-clock time of the last refusal
    inflight: int = 0


class StatusBoard:
    """Where the publisher's thread posts the current :class:`LinkStatus`; other threads
    read ``current``, a frozen snapshot (replaced whole, never changed in place)."""

    def __init__(self) -> None:
        self.current = LinkStatus()

    def update(self, **changes: Any) -> None:
        self.current = replace(self.current, **changes)


def status_payload(client_id: str, version: str, state: str, at: float) -> bytes:
    """The retained ``status`` message: online at connect, offline as the will and at stop."""
    body = {"state": state, "client_id": client_id, "version": version, "at": int(at)}
    return json.dumps(body, separators=(",", ":")).encode("ascii")

