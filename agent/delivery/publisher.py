"""The publisher: drains the outbox to the MQTT broker, forever, from one thread.

Theory of operation
-------------------
One thread ("mqtt-link") owns the paho client and drives it with paho's external-loop
API, never ``loop_start``/``loop_stop`` — so paho never runs a thread of its own, its
callbacks run in our thread, and there is no ``loop_stop()`` to hang while messages are
unacknowledged. paho is imported only by this package's ``client.py`` (the client, its
size guard and callbacks) and ``session.py`` (one connection); this module is the
reconnect loop around them, and ``link.py`` what it is given and shows.

Each connection gets a fresh client; the broker keeps our session (so commands sent
while we were offline are queued for us), but publishes are tracked by us alone:
anything unacknowledged when a connection ends is simply sent again on the next one,
because it is still in the outbox. ``wait_for_publish`` is never used (it raises forever
for a message published while offline).

A refused TCP / TLS / CONNACK, a silent peer, a half-open link (MQTT keepalive: paho's
``loop_misc`` pings and gives up) or a broker that never acknowledges ends the
connection (``session.py``), and the publisher waits (exponential back-off with full
jitter, :class:`agent.delivery.window.ReconnectBackoff`) before the next attempt,
forever. A critical event recorded meanwhile (``wake(critical=True)``) ends the wait, at
most once every 5 s; a session that stayed up ``healthy_after_s`` or saw a PUBACK resets
the back-off (docs/spec.md §6). An oversized incoming packet makes the next session
start afresh (:meth:`Publisher._oversize_dropped`). With several endpoints in
``mqtt.host`` (docs/spec.md §12.1), each attempt that fails and each connection that
ends moves on to the next one (:class:`agent.delivery.endpoints.EndpointRotation`), and
the back-off grows once per round.

Other threads talk to the publisher only through :meth:`Publisher.wake` (a byte on a
pipe that the select loop watches), :meth:`Publisher.stop` and the
:attr:`Publisher.status` snapshot.
"""
from __future__ import annotations

import logging
import random
import select
import threading
import time
from typing import Callable, Optional, Sequence

from agent.delivery.client import MAX_INCOMING_PACKET, LinkDown, Notes, new_client
from agent.delivery.endpoints import EndpointRotation
from agent.delivery.link import LinkSettings, LinkStatus, RowSource, StatusBoard, TlsSettings
from agent.delivery.reasons import reason_name
from agent.delivery.session import Session, SessionParts, StopRequest, WakePipe
from agent.delivery.window import DeliveryWindow, OversizePacket, ReconnectBackoff

#: LinkSettings, TlsSettings, LinkStatus (link.py) and reason_name (reasons.py) are
#: importable from here too
__all__ = ["Publisher", "LinkSettings", "TlsSettings", "LinkStatus", "MAX_INCOMING_PACKET",
           "reason_name"]

log = logging.getLogger("agent.publisher")

#: after a retained oversized command came twice in a row, stay unsubscribed this long
OVERSIZE_UNSUBSCRIBED_S = 600.0


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
        self._clock = clock
        self._endpoints = EndpointRotation(settings.endpoints)
        self._backoff = ReconnectBackoff(settings.backoff, rand,
                                         round_size=len(settings.endpoints))
        self._window = DeliveryWindow(settings.window)
        self._board = StatusBoard()
        self._wake = WakePipe()
        self._stop = StopRequest()
        self._parts = SessionParts(settings, source, self._window, self._backoff, self._board,
                                   self._wake, self._stop, clock, wall_clock, on_delivered,
                                   on_command)
        # an oversized incoming packet: start the next session afresh (see _oversize_dropped)
        self._clean_next = False
        self._oversize_streak = 0
        self._unsubscribed_until = float("-inf")
        self._thread: Optional[threading.Thread] = None

    @property
    def status(self) -> LinkStatus:
        """A frozen snapshot of the link."""
        return self._board.current

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
        self._wake.wake(critical)

    def stop(self, flush_timeout_s: float = 3.0) -> bool:
        """Send what can be sent within ``flush_timeout_s``, say offline, disconnect.

        Returns True when nothing was left unacknowledged.
        """
        self._stop.deadline = self._clock() + flush_timeout_s
        self._stop.asked.set()
        self.wake()
        if self._thread is not None:
            # a connect() in progress cannot be interrupted; do not wait for it for long
            # (the thread is a daemon thread and nothing it holds needs closing)
            self._thread.join(flush_timeout_s + 2.0)
            if not self._thread.is_alive():
                self._wake.close()
        return self._stop.flushed.is_set()

    # --- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.asked.is_set():
            if not self._backoff.due(self._clock()):
                self._wait_for_retry()
                continue
            self._backoff.attempt_started(self._clock())
            self._board.update(attempts=self.status.attempts + 1, retry_in_s=None,
                               endpoint=str(self._endpoints.current))
            try:
                self._one_connection()
            except Exception:  # a bug here must not end delivery for good
                log.exception("publisher error; starting a new connection")
                self._backoff.attempt_failed(self._clock())
            # failed or lost: the next attempt dials the next endpoint (docs/spec.md §12.1)
            self._endpoints.advance()
            if self._backoff.next_deadline() is None and not self._stop.asked.is_set():
                self._backoff.attempt_failed(self._clock())  # never spin without a wait

    def _wait_for_retry(self) -> None:
        """Serve the back-off wait; stop() ends it, a critical wake-up may (docs/spec.md §6)."""
        deadline = self._backoff.next_deadline()
        timeout = 0.0 if deadline is None else max(deadline - self._clock(), 0.0)
        try:
            readable, _, _ = select.select([self._wake.fileno()], [], [], timeout)
        except (OSError, ValueError):  # the pipe is gone: we are stopping
            self._stop.asked.wait(timeout)
            return
        if readable and self._wake.drain() and self._backoff.critical(self._clock()):
            log.info("critical event recorded: trying the broker %s now",
                     self._endpoints.current)

    def _one_connection(self) -> None:
        """Connect, deliver until the link ends, and tell the back-off how it went."""
        if self._stop.asked.is_set():
            return
        notes = Notes()
        client = new_client(self.settings, notes, clean=self._clean_next,
                            will=self._parts.status_payload("offline"))
        session = Session(client, notes, self._parts, self._endpoints.current)
        connected = False
        try:
            session.connect(clean=self._clean_next, subscribe=self.settings.subscribe_commands
                            and self._clock() >= self._unsubscribed_until)
            self._clean_next = False
            connected = True
            self._backoff.connected(self._clock())
            session.run()
        except LinkDown as exc:
            self._link_down(exc, client.oversize, connected)
        finally:
            session.close()
            self._window.reset()

    def _link_down(self, exc: LinkDown, over: Optional[OversizePacket], connected: bool) -> None:
        if over is not None:
            exc = LinkDown(self._oversize_dropped(over))
        else:
            self._oversize_streak = 0
        self._parts.mark_down(str(exc))
        now = self._clock()
        wait = self._backoff.session_ended(now) if connected else self._backoff.attempt_failed(now)
        self._board.update(retry_in_s=wait)
        if wait > 0 and not self._stop.asked.is_set():
            log.warning("broker %s unavailable (%s); retry %d in %.1f s%s",
                        self._endpoints.current, exc, self._backoff.failures, wait,
                        self._next_endpoint_note())

    def _next_endpoint_note(self) -> str:
        rotation = self._endpoints
        if len(rotation.endpoints) == 1:
            return ""
        return f", at {rotation.endpoints[(rotation.index + 1) % len(rotation.endpoints)]}"

    def _oversize_dropped(self, over: OversizePacket) -> str:
        """The guard dropped the connection at an oversized packet's header. A kept session
        would make the broker send the same queued QoS 1 message on every reconnect, so
        the next session starts afresh (commands queued meanwhile are lost; they would
        have expired). A retained one comes again with every subscription: after the second
        time in a row, commands stay off for a while, events still flow."""
        self._oversize_streak += 1
        self._clean_next = True
        self._board.update(oversized=self.status.oversized + 1)
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
