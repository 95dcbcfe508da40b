"""One connection to the broker, from CONNECT to its end, on the publisher's thread.

:class:`Session` drives paho's external-loop API (``loop_read`` / ``loop_write`` /
``loop_misc`` around our own ``select`` on the socket and the :class:`WakePipe`), so
paho's callbacks run in this thread and only take notes (``agent/delivery/client.py``);
the session acts on them after paho returns. Rows come from the row source in its order
(critical first, then ``seq``) into the bounded in-flight window
(:class:`agent.delivery.window.DeliveryWindow`); a PUBACK with a success reason code
acks the row (the outbox deletes it). A connection ends with :class:`LinkDown`: no
CONNACK within ``connect_timeout_s``, the socket lost, or no PUBACK progress for
``ack_timeout_s`` (a broker that accepts publishes but never acknowledges). While the
publisher stops, the session sends what it can until the flush deadline, says
``offline`` itself (a clean disconnect suppresses the will) and disconnects.
"""
from __future__ import annotations

import logging
import os
import select
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Optional, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.delivery.client import MAX_INCOMING_PACKET, GuardedClient, LinkDown, Notes
from agent.delivery.endpoints import Endpoint
from agent.delivery.link import LinkSettings, RowLike, RowSource, StatusBoard, status_payload
from agent.delivery.reasons import reason_name
from agent.delivery.window import DeliveryWindow, ReconnectBackoff

#: the publisher's journal lines, whichever of its modules writes them
log = logging.getLogger("agent.publisher")

#: MQTT 5 session expiry: the broker keeps our subscription (and queues commands sent
#: while we are offline) this long; a command lives at most 10 minutes (docs/spec.md §7).
COMMAND_SESSION_S = 600
#: rows read from the outbox at most at once. A read also reads every row it must skip
#: (in flight or refused), so reading no fewer rows than it skips keeps thousands of
#: refused rows from making each refill cost as much as the whole backlog.
PREFETCH_ROWS = 500
#: bytes on the wake-up pipe: new rows; new rows including a critical event
_WAKE_ROWS, _WAKE_CRITICAL = b"!", b"C"


class WakePipe:
    """How other threads wake the publisher's ``select``: a byte on a non-blocking pipe."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def wake(self, critical: bool) -> None:
        try:
            os.write(self._w, _WAKE_CRITICAL if critical else _WAKE_ROWS)
        except OSError:
            pass  # the pipe is full of wake-ups already, or we have stopped

    def drain(self) -> bool:
        """Empty the pipe; True if a critical event was among the wake-ups."""
        critical = False
        try:
            while True:
                chunk = os.read(self._r, 4096)
                if not chunk:
                    break
                critical = critical or _WAKE_CRITICAL in chunk
        except OSError:  # BlockingIOError: empty now
            pass
        return critical

    def fileno(self) -> int:
        return self._r

    def close(self) -> None:
        if self._r >= 0:
            os.close(self._r)
            os.close(self._w)
            self._r = self._w = -1


class StopRequest:
    """``Publisher.stop()`` as the session sees it: asked, until when, and whether all went."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.deadline = 0.0
        self.flushed = threading.Event()


@dataclass(frozen=True)
class SessionParts:
    """What every session of one publisher shares (all used on the publisher's thread)."""

    settings: LinkSettings
    source: RowSource
    window: DeliveryWindow
    backoff: ReconnectBackoff
    board: StatusBoard
    wake: WakePipe
    stop: StopRequest
    clock: Callable[[], float]
    wall: Callable[[], float]
    on_delivered: Optional[Callable[[Sequence[int]], None]]
    on_command: Optional[Callable[[bytes], None]]

    def status_payload(self, state: str) -> bytes:
        return status_payload(self.settings.client_id, __version__, state, self.wall())

    def mark_down(self, reason: str) -> None:
        """The link is down (or never came up): say so in the status and the journal."""
        status = self.board.current
        if status.connected:
            log.log(logging.INFO if reason == "stopped" else logging.WARNING,
                    "connection to %s ended: %s", status.endpoint, reason)
        self.board.update(connected=False,
                          since=self.wall() if status.connected else status.since,
                          reconnects=status.reconnects + (1 if status.connected else 0),
                          last_error=reason, inflight=0)


class Session:
    """One connection of ``client`` (made by ``client.new_client`` with ``notes``)."""

    def __init__(self, client: GuardedClient, notes: Notes, parts: SessionParts,
                 endpoint: Endpoint) -> None:
        self.client, self.notes, self.parts = client, notes, parts
        #: where this connection goes; paho checks the TLS certificate against its host
        self.endpoint = endpoint
        self._rows_maybe_waiting = True
        self._queue: Deque[RowLike] = deque()   # read from the source, not yet published

    def connect(self, *, clean: bool, subscribe: bool) -> None:
        """CONNECT and wait for the CONNACK; then say ``online`` and subscribe."""
        s, client, notes = self.parts.settings, self.client, self.notes
        host, port = self.endpoint.host, self.endpoint.port
        try:
            if s.protocol == "5":
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = COMMAND_SESSION_S
                props.MaximumPacketSize = MAX_INCOMING_PACKET
                client.connect(host, port, s.keepalive_s, clean_start=clean,
                               properties=props)
            else:
                client.connect(host, port, s.keepalive_s)
        except (OSError, ssl.SSLError, ValueError) as exc:  # ssl.CertificateError is a ValueError
            raise LinkDown(f"connect failed: {exc}") from exc
        self._await_connack()
        self.parts.board.update(connected=True, since=self.parts.wall(),
                                connects=self.parts.board.current.connects + 1, last_error=None)
        log.info("connected to %s (MQTT %s%s)", self.endpoint, s.protocol,
                 ", TLS" if s.tls else "")
        info = client.publish(s.status_topic, self.parts.status_payload("online"), qos=1,
                              retain=True)
        notes.status_mids.add(info.mid)
        if subscribe:
            client.subscribe(s.commands_topic, qos=1)
        self._rows_maybe_waiting = True

    def _await_connack(self) -> None:
        s, notes, clock = self.parts.settings, self.notes, self.parts.clock
        deadline = clock() + s.connect_timeout_s
        while notes.connack is None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise LinkDown(f"no CONNACK within {s.connect_timeout_s:g} s")
            self._pump(min(remaining, 1.0))
            if notes.lost and notes.connack is None:
                raise LinkDown(f"connection closed before CONNACK ({notes.lost})")
        code = notes.connack
        if code >= 0x80 or (s.protocol == "3.1.1" and code != 0):
            name = mqtt.connack_string(code) if s.protocol == "3.1.1" else reason_name(code)
            raise LinkDown(f"broker refused the connection: {name}")

    def run(self) -> None:
        """Deliver until the link ends (:class:`LinkDown`) or, while stopping, it is done."""
        p = self.parts
        while True:
            now = p.clock()
            if p.stop.asked.is_set() and self._finish_if_done(now):
                return
            self._fill_window(now)
            if p.window.stalled(now):
                p.board.update(stalls=p.board.current.stalls + 1)
                raise LinkDown(f"no PUBACK for {p.settings.window.ack_timeout_s:g} s with "
                               f"{p.window.inflight} publishes outstanding (silent broker)")
            self._pump(self._timeout(now))
            self._handle_notes()
            self._report_refusals(p.clock())
            if self.notes.lost:
                raise LinkDown(self.notes.lost)

    def _finish_if_done(self, now: float) -> bool:
        """While stopping: True once flushed (or out of time) and disconnected cleanly."""
        p, client, notes = self.parts, self.client, self.notes
        nothing_left = p.window.inflight == 0 and not self._rows_maybe_waiting
        if not nothing_left and now < p.stop.deadline:
            return False
        if nothing_left:
            p.stop.flushed.set()
        # a clean disconnect suppresses the will, so say "offline" ourselves
        info = client.publish(p.settings.status_topic, p.status_payload("offline"),
                              qos=1, retain=True)
        notes.status_mids.add(info.mid)
        deadline = p.clock() + 1.0
        while info.mid in notes.status_mids and not notes.lost and p.clock() < deadline:
            self._pump(0.1)
            self._handle_notes()
        client.disconnect()
        p.mark_down("stopped")
        return True

    def _timeout(self, now: float) -> float:
        p = self.parts
        timeout = 1.0  # loop_misc (keepalive) wants a call about every second
        deadline = p.window.next_deadline(now)
        if deadline is not None:
            timeout = min(timeout, max(deadline - now, 0.0))
        if p.stop.asked.is_set():
            timeout = min(timeout, max(p.stop.deadline - now, 0.0), 0.1)
        return timeout

    def _fill_window(self, now: float) -> None:
        window = self.parts.window
        if window.released(now):
            self._rows_maybe_waiting = True
        room = window.room(now)
        if room <= 0:
            return
        if not self._queue and self._rows_maybe_waiting:
            busy = window.busy_rows(now)
            want = max(room, min(len(busy), PREFETCH_ROWS))
            rows = self.parts.source.next_batch(want, busy)
            if len(rows) < want:
                self._rows_maybe_waiting = False
            self._queue.extend(rows)
        while room > 0 and self._queue:
            row = self._queue.popleft()
            info = self.client.publish(row.topic, row.payload, qos=1, retain=False)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise LinkDown(f"publish failed: {mqtt.error_string(info.rc)}")
            window.sent(info.mid, row.row_id, now)
            room -= 1

    def _handle_notes(self) -> None:
        notes = self.notes
        if notes.acks:
            self._handle_acks()
        if notes.messages:
            for payload in notes.messages:
                if self.parts.on_command is not None:
                    try:
                        self.parts.on_command(payload)
                    except Exception:  # a bad handler must not end delivery
                        log.exception("command handler failed")
            notes.messages.clear()

    def _handle_acks(self) -> None:
        p, notes = self.parts, self.notes
        now = p.clock()
        done: List[int] = []
        for mid, reason in notes.acks:
            p.backoff.acked(now)  # any PUBACK: the broker works (docs/spec.md §6)
            if mid in notes.status_mids:
                notes.status_mids.discard(mid)
                continue
            result = p.window.acked(mid, reason, now)
            if result.delivered and result.row_id is not None:
                done.append(result.row_id)
            elif result.row_id is not None:
                p.board.update(last_rejected_reason=reason, last_rejected_at=p.wall())
        notes.acks.clear()
        self._rows_maybe_waiting = True
        if done:
            p.source.ack(done)
            if p.on_delivered is not None:
                p.on_delivered(done)
        p.board.update(delivered=p.window.delivered_total, rejected=p.window.rejected_total,
                       inflight=p.window.inflight)

    def _report_refusals(self, now: float) -> None:
        """One line per ``retry_rejected_s`` however many rows the broker refused."""
        report = self.parts.window.refusal_report(now)
        if report is None:
            return
        log.error("broker refused %d event publish%s (last: row %d, reason %s (0x%02x)); they "
                  "stay in the outbox, the last is offered again in %.0f s: check the broker's "
                  "ACL or policy for %s/events/#", report.count, "" if report.count == 1 else "es",
                  report.last_row_id, reason_name(report.last_reason), report.last_reason,
                  report.held_for_s, self.parts.settings.topic_prefix)

    def _pump(self, timeout: float) -> None:
        """One turn of the external loop: wait for the socket or a wake-up, then let paho work."""
        client, notes, wake = self.client, self.notes, self.parts.wake
        sock: Any = client.socket()
        if sock is None:
            notes.lost = notes.lost or "socket closed"
            return
        pending = sock.pending() if hasattr(sock, "pending") else 0
        wlist = [sock] if client.want_write() else []
        try:
            readable, _, _ = select.select([sock, wake.fileno()], wlist, [],
                                           0.0 if pending else max(timeout, 0.0))
        except (OSError, ValueError) as exc:
            notes.lost = f"select failed: {exc}"
            return
        if wake.fileno() in readable:
            wake.drain()
            self._rows_maybe_waiting = True
            self._queue.clear()  # new rows (a critical one, maybe) go first: read afresh
        if sock in readable or pending:
            client.loop_read()
        if client.socket() is not None and client.want_write():
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()

    def close(self) -> None:
        """Close the socket, whatever state the connection is in."""
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
