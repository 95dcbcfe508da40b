"""The thin TCP/UDP shell around :class:`agent.arc.link.ArcLink`: one thread owns the socket.

Theory of operation: the ``arc-link`` thread runs a ``select`` loop over the socket and
a wake-up socket pair. Other threads only call :meth:`ArcSender.submit` (a queue and a
wake-up byte). The loop hands queued items to the link, writes the frame the link asks
for in one ``send`` call (TCP: connecting first when there is no connection; UDP: a
connected datagram socket), cuts responses into frames and feeds them to the link, and
calls ``on_event`` with each :class:`agent.arc.link.LinkEvent` (from this thread: the
callback only enqueues). A failed connect or write, or a TCP connection the receiver
closes, is a miss for the frame in flight; the next try reconnects.
"""
from __future__ import annotations

import logging
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable, List, Optional, Tuple

from agent.arc.codec import Codec, FrameSplitter
from agent.arc.codes import ArcMessage
from agent.arc.link import ArcLink, LinkEvent, LinkSettings

log = logging.getLogger(__name__)

TRANSPORTS = ("tcp", "udp")
#: longest select wait: a stop or a clock step is noticed within this
MAX_WAIT_S = 1.0
#: longest wait for a TCP connection (or ack_timeout_s when shorter): stop() waits this long
CONNECT_TIMEOUT_S = 5.0
READ_BYTES = 4096


@dataclass(frozen=True)
class ArcStatus:
    """A snapshot for ``status``: connection, queue, last ACK (Unix seconds), counters."""

    connected: bool
    pending: int
    lost: bool
    last_ack_wall: Optional[float]
    duh_count: int
    offset: Optional[float]


class ArcSender:
    """Sends submitted :class:`ArcMessage` items to one receiver until each is ACKed or DUHed.

    ``clock`` (monotonic) and ``wall`` (Unix seconds) are injected; ``clock_synced`` answers
    ``ts_sync``. ``on_event`` gets every link event, from the ``arc-link`` thread.
    """

    def __init__(self, host: str, port: int, transport: str, codec: Codec,
                 settings: LinkSettings, *, on_event: Callable[[LinkEvent], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 clock_synced: Callable[[], bool] = lambda: True) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.address: Tuple[str, int] = (host, port)
        self.transport = transport
        self._settings = settings
        self._on_event, self._clock, self._wall, self._synced = on_event, clock, wall, clock_synced
        self.link = ArcLink(codec, settings, clock())
        self._inbox: "queue.SimpleQueue[Tuple[Hashable, ArcMessage]]" = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sock: Optional[socket.socket] = None
        self._splitter = FrameSplitter()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._status = self._snapshot()

    def submit(self, key: Hashable, message: ArcMessage) -> None:
        """Queue one event for the receiver (any thread)."""
        self._inbox.put((key, message))
        self._wake()

    @property
    def status(self) -> ArcStatus:
        return self._status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="arc-link", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = CONNECT_TIMEOUT_S + MAX_WAIT_S) -> bool:
        """End the thread (what is not ACKed stays the caller's); False if it did not end."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("ARC link thread did not stop within %.0f s", timeout_s)
                return False
        self._close()              # the thread has ended (or never ran): no other owner
        self._wake_r.close()
        self._wake_w.close()
        return True

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:        # stopped, or the pair is full: the loop wakes anyway
            pass

    def _snapshot(self) -> ArcStatus:
        link = self.link
        return ArcStatus(self._sock is not None, link.pending, link.lost, link.last_ack_wall,
                         link.duh_count, link.offset)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._step()
            self._status = self._snapshot()

    def _step(self) -> None:
        now = self._clock()
        while True:
            try:
                key, message = self._inbox.get_nowait()
            except queue.Empty:
                break
            self.link.submit(key, message, now)
        self._emit(self.link.advance(now))
        out = self.link.next_frame(now, self._wall(), self._synced())
        if out is not None:
            self._write(out.frame, now)
        deadline = self.link.next_deadline()
        wait = MAX_WAIT_S if deadline is None else min(MAX_WAIT_S, max(0.0, deadline - self._clock()))
        readers: List[socket.socket] = [self._wake_r] + ([self._sock] if self._sock else [])
        ready, _, _ = select.select(readers, [], [], wait)
        if self._wake_r in ready:
            try:
                self._wake_r.recv(READ_BYTES)
            except OSError:
                pass
        if self._sock is not None and self._sock in ready:
            self._read()

    def _write(self, frame: bytes, now: float) -> None:
        try:
            sock = self._sock or self._connect()
            sent = sock.send(frame)              # one write per frame (docs/spec.md §12.2)
            if sent != len(frame):
                raise OSError(f"only {sent} of {len(frame)} bytes written")
        except OSError as exc:
            log.warning("ARC receiver %s:%d (%s): cannot send: %s", *self.address,
                        self.transport, exc)
            self._close()
            self._emit(self.link.write_failed(now))

    def _connect(self) -> socket.socket:
        timeout = min(self._settings.ack_timeout_s, CONNECT_TIMEOUT_S)
        if self.transport == "tcp":
            sock = socket.create_connection(self.address, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            family, kind, proto, _, addr = socket.getaddrinfo(
                *self.address, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(addr)
        self._sock, self._splitter = sock, FrameSplitter()
        return sock

    def _read(self) -> None:
        assert self._sock is not None
        now = self._clock()
        try:
            data = self._sock.recv(READ_BYTES)
        except OSError as exc:                   # UDP: ICMP port unreachable lands here
            log.warning("ARC receiver %s:%d: %s", *self.address, exc)
            data = b""
        if not data:
            self._close()
            self._emit(self.link.write_failed(now))
            return
        frames = self._splitter.feed(data) if self.transport == "tcp" else FrameSplitter().feed(data)
        for frame in frames:
            self._emit(self.link.received(frame, now, self._wall()))

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _emit(self, events: List[LinkEvent]) -> None:
        if events:
            self._status = self._snapshot()     # a callback that reads status sees this change
        for event in events:
            try:
                self._on_event(event)
            except Exception:                    # a faulty callback must not stop the link
                log.exception("ARC link: on_event failed for %r", event)
