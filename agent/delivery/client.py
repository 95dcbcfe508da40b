"""paho's client as the publisher uses it: a size guard on what it reads, callbacks that only take notes.

paho reads a packet's fixed header first and then buffers the whole body;
:class:`GuardedSocket` refuses the read that completes an oversized header (an OSError,
which paho treats as a lost connection), so not one byte of the body is buffered
(docs/spec.md §7). :class:`GuardedClient` is paho's client on such a socket (paho stays
the only MQTT code). :class:`Notes` records what paho's callbacks said, for the session
(``agent/delivery/session.py``) to act on after paho returns. :func:`new_client` makes
the client of one connection from :class:`~agent.delivery.link.LinkSettings`.
"""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.delivery.link import LinkSettings
from agent.delivery.window import IncomingSizeGuard, OversizePacket

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

PAHO_PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}

#: the largest packet we accept: bounds memory on a Pi Zero. MQTT 5 tells the broker; on
#: 3.1.1 (and against a broker that ignores it) :class:`GuardedSocket` drops the
#: connection when a larger packet's header arrives. Commands over 4096 bytes still
#: arrive up to this size, so they are reported as too_large.
MAX_INCOMING_PACKET = 65536


class LinkDown(Exception):
    """This connection attempt or session is over; the reason is the message."""


class GuardedSocket:
    """The socket paho reads from, with an :class:`IncomingSizeGuard` on what it receives.
    Everything but ``recv`` is the wrapped (TCP or TLS) socket's."""

    def __init__(self, sock: "SocketLike", max_packet: int) -> None:
        self._sock = sock
        self._guard = IncomingSizeGuard(max_packet)
        self.oversize: Optional[OversizePacket] = None

    def recv(self, buffer_size: int) -> bytes:
        if self.oversize is not None:
            raise OSError("connection dropped: oversized packet")
        data = self._sock.recv(buffer_size)
        self.oversize = self._guard.feed(data)
        if self.oversize is not None:
            raise OSError(f"incoming packet of {self.oversize.length} bytes is over "
                          f"{self._guard.max_packet}")
        return data

    def send(self, buffer: "bytes | bytearray") -> int:
        return self._sock.send(buffer)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:  # pending() of a TLS socket, and the like
        return getattr(self._sock, name)


class GuardedClient(mqtt.Client):
    """paho's client on a :class:`GuardedSocket`, with ``TCP_NODELAY`` on."""

    guarded: Optional[GuardedSocket] = None

    def _create_socket(self) -> "SocketLike":
        # paho 2.x makes every socket (TCP, then TLS) here; setup.py pins paho < 3
        sock = super()._create_socket()
        # our packets are small and a care centre waits for each: Nagle would hold one
        # back for a delayed TCP ACK, ~40 ms a hop (docs/development.md, bench ack)
        setsockopt = getattr(sock, "setsockopt", None)
        if setsockopt is not None:
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.guarded = GuardedSocket(sock, MAX_INCOMING_PACKET)
        return self.guarded

    @property
    def oversize(self) -> Optional[OversizePacket]:
        """The oversized packet that ended this client's connection, if one did."""
        return self.guarded.oversize if self.guarded is not None else None


class Notes:
    """What paho's callbacks told us about one client (they run in our thread)."""

    def __init__(self) -> None:
        self.connack: Optional[int] = None
        self.lost: Optional[str] = None
        self.acks: List[Tuple[int, int]] = []
        self.messages: List[bytes] = []
        self.status_mids: set[int] = set()

    # paho callback signatures (CallbackAPIVersion.VERSION2)
    def on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = _code(reason)

    def on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.lost = f"disconnected ({reason})"

    def on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.acks.append((mid, _code(reason)))

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages.append(bytes(message.payload))


def _code(reason: Any) -> int:
    value = getattr(reason, "value", reason)
    return int(value) if isinstance(value, int) else 0


def new_client(s: LinkSettings, notes: Notes, *, clean: bool, will: bytes) -> GuardedClient:
    """The client of one connection; ``clean``: start a fresh session (3.1.1 here; MQTT 5
    says it at connect), ``will``: the retained ``offline`` status."""
    protocol = PAHO_PROTOCOLS[s.protocol]
    client = GuardedClient(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                           protocol=protocol,
                           # a kept session: commands sent while we were away are queued
                           # by the broker
                           clean_session=clean if protocol == mqtt.MQTTv311 else None)
    # our window is the limit; paho's own must never hold a publish back
    client.max_inflight_messages_set(s.window.max_inflight + 2)
    client.max_queued_messages_set(0)
    client.connect_timeout = s.connect_timeout_s
    client.will_set(s.status_topic, will, qos=1, retain=True)
    if s.tls is not None:
        client.tls_set_context(s.tls.context())
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    client.on_connect = notes.on_connect
    client.on_disconnect = notes.on_disconnect
    client.on_publish = notes.on_publish
    client.on_message = notes.on_message
    return client
