"""The publisher: the only module that talks to paho-mqtt.

Theory of operation
-------------------
One thread ("mqtt-link") owns the paho client and drives it with paho's external-loop
API (``loop_read`` / ``loop_write`` / ``loop_misc`` around our own ``select``), never
``loop_start``/``loop_stop`` — so paho never runs a thread of its own, its callbacks
run in our thread, and there is no ``loop_stop()`` to hang while messages are
unacknowledged. Callbacks only note what happened; the loop acts on it afterwards.

Each connection gets a fresh client; the broker keeps our session (so commands sent
while we were offline are queued for us), but publishes are tracked by us alone. Rows
come from the outbox in its order (critical first, then ``seq``) into a bounded in-flight window
(:class:`agent.delivery.window.DeliveryWindow`); a PUBACK with a success reason code deletes
the row from the outbox; anything unacknowledged when a connection ends is simply sent
again on the next one, because it is still in the outbox. ``wait_for_publish`` is never
used (it raises forever for a message published while offline).

Failures and how they are noticed:

* refused TCP / TLS / CONNACK: the attempt fails and the publisher waits (exponential
  back-off with full jitter, :class:`agent.delivery.window.ReconnectBackoff`) before the next
  one, forever. A critical event recorded meanwhile (``wake(critical=True)``) ends the
  wait, at most once every 5 s; a session that stayed up ``healthy_after_s`` or saw a
  PUBACK resets the back-off (docs/spec.md §6);
* a silent peer before CONNACK: ``connect_timeout_s``;
* a half-open link: MQTT keepalive (paho's ``loop_misc`` pings and gives up);
* a broker that accepts publishes but never acknowledges: no PUBACK progress for
  ``ack_timeout_s`` -> drop the connection and start afresh.

Other threads talk to the publisher only through :meth:`wake` (a byte on a pipe that the
select loop watches) and :meth:`stop`.
"""
from __future__ import annotations

import json
import logging
import os
import random
import select
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import (TYPE_CHECKING, AbstractSet, Any, Callable, Deque, List, Optional, Protocol,
                    Sequence, Tuple)

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.delivery.window import (BackoffSettings, DeliveryWindow, IncomingSizeGuard, OversizePacket,
                            ReconnectBackoff, WindowSettings)

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

log = logging.getLogger("agent.publisher")

_PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
#: bytes on the wake-up pipe: new rows; new rows including a critical event
_WAKE_ROWS, _WAKE_CRITICAL = b"!", b"C"

#: MQTT 5 session expiry: the broker keeps our subscription (and queues commands sent
#: while we are offline) this long; a command lives at most 10 minutes (docs/spec.md §7).
COMMAND_SESSION_S = 600
#: the largest packet we accept: bounds memory on a Pi Zero. MQTT 5 tells the broker; on
#: 3.1.1 (and against a broker that ignores it) :class:`_GuardedSocket` drops the
#: connection when a larger packet's header arrives. Commands over 4096 bytes still
#: arrive up to this size, so they are reported as too_large.
MAX_INCOMING_PACKET = 65536
#: after a retained oversized command came twice in a row, stay unsubscribed this long
OVERSIZE_UNSUBSCRIBED_S = 600.0
#: rows read from the outbox at most at once. A read also reads every row it must skip
#: (in flight or refused), so reading no fewer rows than it skips keeps thousands of
#: refused rows from making each refill cost as much as the whole backlog.
PREFETCH_ROWS = 500


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
    """Everything the publisher needs to know about the broker (docs/spec.md §5)."""

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

    def __post_init__(self) -> None:
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(_PROTOCOLS)}, not {self.protocol!r}")
        self.backoff  # checks the back-off values

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


class _GuardedSocket:
    """The socket paho reads from, with an :class:`IncomingSizeGuard` on what it receives.

    paho reads a packet's fixed header first and then buffers the whole body; this
    refuses the read that completes an oversized header (an OSError, which paho treats
    as a lost connection), so not one byte of the body is buffered (docs/spec.md §7).
    Everything else is the wrapped (TCP or TLS) socket's.
    """

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


class _Client(mqtt.Client):
    """paho's client on a :class:`_GuardedSocket`; paho stays the only MQTT code."""

    guarded: Optional[_GuardedSocket] = None

    def _create_socket(self) -> "SocketLike":
        # paho 2.x makes every socket (TCP, then TLS) here; setup.py pins paho < 3
        self.guarded = _GuardedSocket(super()._create_socket(), MAX_INCOMING_PACKET)
        return self.guarded


class LinkDown(Exception):
    """This connection attempt or session is over; the reason is the message."""


class _Connection:
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


class Publisher:
    """Drains a :class:`RowSource` to an MQTT broker, deleting rows only on PUBACK.

    ``on_delivered(row_ids)`` and ``on_command(payload)`` are called from the
    publisher's thread; they must only hand the work over (e.g. put it on a queue).
    """

    def __init__(self, settings: LinkSettings, source: RowSource, *,
                 on_delivered: Optional[Callable[[Sequence[int]], None]] = None,
                 on_command: Optional[Callable[[bytes], None]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self._source = source
        self._on_delivered = on_delivered
        self._on_command = on_command
        self._clock = clock
        self._wall = wall_clock
        self._window = DeliveryWindow(settings.window)
        self._backoff = ReconnectBackoff(settings.backoff, rand)
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._flushed = threading.Event()
        self._rows_maybe_waiting = True
        self._queue: Deque[RowLike] = deque()   # read from the outbox, not yet published
        # an oversized incoming packet: start the next session afresh (see _oversize_dropped)
        self._clean_next = False
        self._oversize_streak = 0
        self._unsubscribed_until = float("-inf")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: Optional[threading.Thread] = None
        self.status = LinkStatus()

    # --- API for other threads ------------------------------------------------------
    def start(self) -> None:
        if self.settings.protocol == "3.1.1":
            log.warning("MQTT 3.1.1: a PUBACK proves nothing (a broker may acknowledge a publish "
                        "its ACL refused, and the event is then deleted); use protocol \"5\" "
                        "if the broker supports it (docs/brokers.md)")
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def wake(self, critical: bool = False) -> None:
        """New rows are in the outbox; ``critical``: one of them is a critical event,
        which ends a back-off wait (docs/spec.md §6)."""
        try:
            os.write(self._wake_w, _WAKE_CRITICAL if critical else _WAKE_ROWS)
        except OSError:
            pass  # the pipe is full of wake-ups already, or we have stopped

    def stop(self, flush_timeout_s: float = 3.0) -> bool:
        """Send what can be sent within ``flush_timeout_s``, say offline, disconnect.

        Returns True when nothing was left unacknowledged.
        """
        self._flush_deadline = self._clock() + flush_timeout_s
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            # a connect() in progress cannot be interrupted; do not wait for it for long
            # (the thread is a daemon thread and nothing it holds needs closing)
            self._thread.join(flush_timeout_s + 2.0)
            if not self._thread.is_alive() and self._wake_r >= 0:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
        return self._flushed.is_set()

    # --- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._backoff.due(self._clock()):
                self._wait_for_retry()
                continue
            self._backoff.attempt_started(self._clock())
            self.status = replace(self.status, attempts=self.status.attempts + 1, retry_in_s=None)
            try:
                self._one_connection()
            except Exception:  # a bug here must not end delivery for good
                log.exception("publisher error; starting a new connection")
                self._backoff.attempt_failed(self._clock())
            if self._backoff.next_deadline() is None and not self._stopping.is_set():
                self._backoff.attempt_failed(self._clock())  # never spin without a wait

    def _wait_for_retry(self) -> None:
        """Serve the back-off wait; stop() ends it, a critical wake-up may (docs/spec.md §6)."""
        deadline = self._backoff.next_deadline()
        timeout = 0.0 if deadline is None else max(deadline - self._clock(), 0.0)
        try:
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
        except (OSError, ValueError):  # the pipe is gone: we are stopping
            self._stopping.wait(timeout)
            return
        if readable and self._drain_wakes() and self._backoff.critical(self._clock()):
            log.info("critical event recorded: trying the broker %s:%d now",
                     self.settings.host, self.settings.port)

    def _drain_wakes(self) -> bool:
        """Empty the wake-up pipe; True if a critical event was among the wake-ups."""
        critical = False
        try:
            while True:
                chunk = os.read(self._wake_r, 4096)
                if not chunk:
                    break
                critical = critical or _WAKE_CRITICAL in chunk
        except OSError:  # BlockingIOError: empty now
            pass
        return critical

    def _one_connection(self) -> None:
        """Connect, deliver until the link ends, and tell the back-off how it went."""
        if self._stopping.is_set():
            return
        conn = _Connection()
        client = self._new_client(conn)
        connected = False
        try:
            self._connect(client, conn)
            connected = True
            self._backoff.connected(self._clock())
            self._session(client, conn)
        except LinkDown as exc:
            over = client.guarded.oversize if client.guarded is not None else None
            if over is not None:
                exc = LinkDown(self._oversize_dropped(over))
            else:
                self._oversize_streak = 0
            self._mark_down(str(exc))
            now = self._clock()
            wait = self._backoff.session_ended(now) if connected else self._backoff.attempt_failed(now)
            self.status = replace(self.status, retry_in_s=wait)
            if wait > 0 and not self._stopping.is_set():
                log.warning("broker %s:%d unavailable (%s); retry %d in %.1f s",
                            self.settings.host, self.settings.port, exc,
                            self._backoff.failures, wait)
        finally:
            self._close(client)
            self._window.reset()
            self._queue.clear()

    def _oversize_dropped(self, over: OversizePacket) -> str:
        """The guard dropped the connection at an oversized packet's header. A kept session
        would make the broker send the same queued QoS 1 message on every reconnect, so
        the next session starts afresh (commands queued meanwhile are lost; they would
        have expired). A retained one comes again with every subscription: after the second
        time in a row, commands stay off for a while, events still flow."""
        self._oversize_streak += 1
        self._clean_next = True
        self.status = replace(self.status, oversized=self.status.oversized + 1)
        what = f"incoming packet of {over.length} bytes over {MAX_INCOMING_PACKET} dropped unread"
        if over.retain and self._oversize_streak >= 2:
            self._unsubscribed_until = self._clock() + OVERSIZE_UNSUBSCRIBED_S
            log.error("a retained message of %d bytes on %s comes with every subscription: "
                      "commands are off for %.0f s. Clear it on the broker (publish an empty "
                      "retained message to that topic)", over.length,
                      self.settings.commands_topic, OVERSIZE_UNSUBSCRIBED_S)
        else:
            log.error("the broker sent a packet of %d bytes (over %d): the connection was "
                      "dropped before reading it, and the next one starts a fresh session so "
                      "the broker forgets it", over.length, MAX_INCOMING_PACKET)
        return what

    def _new_client(self, conn: _Connection) -> _Client:
        s = self.settings
        protocol = _PROTOCOLS[s.protocol]
        client = _Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                         protocol=protocol,
                         # a kept session: commands sent while we were away are queued
                         # by the broker (3.1.1 here; MQTT 5 in connect())
                         clean_session=self._clean_next if protocol == mqtt.MQTTv311 else None)
        # our window is the limit; paho's own must never hold a publish back
        client.max_inflight_messages_set(s.window.max_inflight + 2)
        client.max_queued_messages_set(0)
        client.connect_timeout = s.connect_timeout_s
        client.will_set(s.status_topic, self._status_payload("offline"), qos=1, retain=True)
        if s.tls is not None:
            client.tls_set_context(s.tls.context())
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.on_connect = conn.on_connect
        client.on_disconnect = conn.on_disconnect
        client.on_publish = conn.on_publish
        client.on_message = conn.on_message
        return client

    def _connect(self, client: mqtt.Client, conn: _Connection) -> None:
        s = self.settings
        try:
            if s.protocol == "5":
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = COMMAND_SESSION_S
                props.MaximumPacketSize = MAX_INCOMING_PACKET
                client.connect(s.host, s.port, s.keepalive_s, clean_start=self._clean_next,
                               properties=props)
            else:
                client.connect(s.host, s.port, s.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:  # ssl.CertificateError is a ValueError
            raise LinkDown(f"connect failed: {exc}") from exc
        deadline = self._clock() + s.connect_timeout_s
        while conn.connack is None:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise LinkDown(f"no CONNACK within {s.connect_timeout_s:g} s")
            self._pump(client, conn, min(remaining, 1.0))
            if conn.lost and conn.connack is None:
                raise LinkDown(f"connection closed before CONNACK ({conn.lost})")
        if conn.connack >= 0x80 or (s.protocol == "3.1.1" and conn.connack != 0):
            raise LinkDown(f"broker refused the connection: {mqtt.connack_string(conn.connack) if s.protocol == '3.1.1' else reason_name(conn.connack)}")
        self.status = replace(self.status, connected=True, since=self._wall(),
                              connects=self.status.connects + 1, last_error=None)
        log.info("connected to %s:%d (MQTT %s%s)", s.host, s.port, s.protocol,
                 ", TLS" if s.tls else "")
        info = client.publish(s.status_topic, self._status_payload("online"), qos=1, retain=True)
        conn.status_mids.add(info.mid)
        self._clean_next = False
        if s.subscribe_commands and self._clock() >= self._unsubscribed_until:
            client.subscribe(s.commands_topic, qos=1)
        self._rows_maybe_waiting = True

    def _session(self, client: mqtt.Client, conn: _Connection) -> None:
        while True:
            now = self._clock()
            if self._stopping.is_set() and self._finish_if_done(client, conn, now):
                return
            self._fill_window(client, now)
            if self._window.stalled(now):
                self.status = replace(self.status, stalls=self.status.stalls + 1)
                raise LinkDown(f"no PUBACK for {self.settings.window.ack_timeout_s:g} s with "
                               f"{self._window.inflight} publishes outstanding (silent broker)")
            self._pump(client, conn, self._timeout(now))
            self._handle_callbacks(conn)
            self._report_refusals(self._clock())
            if conn.lost:
                raise LinkDown(conn.lost)

    def _finish_if_done(self, client: mqtt.Client, conn: _Connection, now: float) -> bool:
        """While stopping: True once flushed (or out of time) and disconnected cleanly."""
        nothing_left = self._window.inflight == 0 and not self._rows_maybe_waiting
        if not nothing_left and now < self._flush_deadline:
            return False
        if nothing_left:
            self._flushed.set()
        # a clean disconnect suppresses the will, so say "offline" ourselves
        info = client.publish(self.settings.status_topic, self._status_payload("offline"),
                              qos=1, retain=True)
        conn.status_mids.add(info.mid)
        deadline = self._clock() + 1.0
        while info.mid in conn.status_mids and not conn.lost and self._clock() < deadline:
            self._pump(client, conn, 0.1)
            self._handle_callbacks(conn)
        client.disconnect()
        self._mark_down("stopped")
        return True

    def _timeout(self, now: float) -> float:
        timeout = 1.0  # loop_misc (keepalive) wants a call about every second
        deadline = self._window.next_deadline(now)
        if deadline is not None:
            timeout = min(timeout, max(deadline - now, 0.0))
        if self._stopping.is_set():
            timeout = min(timeout, max(self._flush_deadline - now, 0.0), 0.1)
        return timeout

    def _fill_window(self, client: mqtt.Client, now: float) -> None:
        if self._window.released(now):
            self._rows_maybe_waiting = True
        room = self._window.room(now)
        if room <= 0:
            return
        if not self._queue and self._rows_maybe_waiting:
            busy = self._window.busy_rows(now)
            want = max(room, min(len(busy), PREFETCH_ROWS))
            rows = self._source.next_batch(want, busy)
            if len(rows) < want:
                self._rows_maybe_waiting = False
            self._queue.extend(rows)
        while room > 0 and self._queue:
            row = self._queue.popleft()
            info = client.publish(row.topic, row.payload, qos=1, retain=False)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise LinkDown(f"publish failed: {mqtt.error_string(info.rc)}")
            self._window.sent(info.mid, row.row_id, now)
            room -= 1

    def _handle_callbacks(self, conn: _Connection) -> None:
        if conn.acks:
            now = self._clock()
            done: List[int] = []
            for mid, reason in conn.acks:
                self._backoff.acked(now)  # any PUBACK: the broker works (docs/spec.md §6)
                if mid in conn.status_mids:
                    conn.status_mids.discard(mid)
                    continue
                result = self._window.acked(mid, reason, now)
                if result.delivered and result.row_id is not None:
                    done.append(result.row_id)
                elif result.row_id is not None:
                    self.status = replace(self.status, last_rejected_reason=reason,
                                          last_rejected_at=self._wall())
            conn.acks.clear()
            self._rows_maybe_waiting = True
            if done:
                self._source.ack(done)
                if self._on_delivered is not None:
                    self._on_delivered(done)
            self.status = replace(self.status, delivered=self._window.delivered_total,
                                  rejected=self._window.rejected_total,
                                  inflight=self._window.inflight)
        if conn.messages:
            for payload in conn.messages:
                if self._on_command is not None:
                    try:
                        self._on_command(payload)
                    except Exception:  # a bad handler must not end delivery
                        log.exception("command handler failed")
            conn.messages.clear()

    def _report_refusals(self, now: float) -> None:
        """One line per ``retry_rejected_s`` however many rows the broker refused."""
        report = self._window.refusal_report(now)
        if report is None:
            return
        log.error("broker refused %d event publish%s (last: row %d, reason %s (0x%02x)); they "
                  "stay in the outbox, the last is offered again in %.0f s: check the broker's "
                  "ACL or policy for %s/events/#", report.count, "" if report.count == 1 else "es",
                  report.last_row_id, reason_name(report.last_reason), report.last_reason,
                  report.held_for_s, self.settings.topic_prefix)

    def _pump(self, client: mqtt.Client, conn: _Connection, timeout: float) -> None:
        """One turn of the external loop: wait for the socket or a wake-up, then let paho work."""
        sock: Any = client.socket()
        if sock is None:
            conn.lost = conn.lost or "socket closed"
            return
        pending = sock.pending() if hasattr(sock, "pending") else 0
        wlist = [sock] if client.want_write() else []
        try:
            readable, writable, _ = select.select([sock, self._wake_r], wlist, [],
                                                  0.0 if pending else max(timeout, 0.0))
        except (OSError, ValueError) as exc:
            conn.lost = f"select failed: {exc}"
            return
        if self._wake_r in readable:
            self._drain_wakes()
            self._rows_maybe_waiting = True
            self._queue.clear()  # new rows (a critical one, maybe) go first: read afresh
        if sock in readable or pending:
            client.loop_read()
        if client.socket() is not None and client.want_write():
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()

    def _close(self, client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _mark_down(self, reason: str) -> None:
        was_up = self.status.connected
        if was_up:
            log.log(logging.INFO if reason == "stopped" else logging.WARNING,
                    "connection to %s:%d ended: %s", self.settings.host, self.settings.port, reason)
        self.status = replace(self.status, connected=False,
                              since=self._wall() if was_up else self.status.since,
                              reconnects=self.status.reconnects + (1 if was_up else 0),
                              last_error=reason, inflight=0)

    def _status_payload(self, state: str) -> bytes:
        body = {"state": state, "client_id": self.settings.client_id, "version": __version__,
                "at": int(self._wall())}
        return json.dumps(body, separators=(",", ":")).encode("ascii")


def reason_name(code: int) -> str:
    """The MQTT 5 name of a failure reason code, for logs and ``status``."""
    names = {0x80: "unspecified error", 0x83: "implementation specific error",
             0x84: "unsupported protocol version", 0x85: "client identifier not valid",
             0x86: "bad user name or password", 0x87: "not authorized",
             0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
             0x90: "topic name invalid", 0x97: "quota exceeded", 0x99: "payload format invalid"}
    return names.get(code, f"reason 0x{code:02x}")
