"""A fault-injecting TCP proxy between a client under test and a (real) broker.

Theory of operation
-------------------
One thread runs a ``selectors`` loop over a listening socket on a free loopback port and,
per accepted client, a pair of sockets (client side, upstream side to the target). The
mode can be switched at run time from any thread; ``set_mode`` and ``cut`` return only
after the proxy thread has applied them, so a test's next step sees the new behaviour.

Modes (``FaultProxy.MODES``):

``pass``
    forward both ways.
``blackhole``
    a silent broker / stalled half-open link: connections are accepted and kept open,
    nothing is read or forwarded either way (the kernel buffers what the client sends).
    Switching back to ``pass`` lets the held bytes flow in order, like a link recovering.
    A connection accepted while the target is down is kept open alone in this mode.
``drop_pubacks``
    forward everything except PUBACK packets (MQTT type 4) from the broker to the
    client. Works on PLAINTEXT MQTT only: the broker->client byte stream is always split
    into packets (fixed header with its 1-4 byte remaining length, across any TCP segment
    boundaries) by :class:`MqttStreamFilter`; TLS records would be misread, so use this
    mode with a plain listener. TLS passes through opaquely in the other modes.
``refuse``
    new connections are closed at once with a reset; existing ones keep forwarding.
``drop_after_connack``
    an accept-then-drop broker: the broker's CONNACK reaches the client, nothing after
    it does, and the connection is reset as soon as the CONNACK is written (plaintext
    MQTT only, like ``drop_pubacks``).

``cut()`` closes every current connection abruptly (RST to both ends) in any mode; new
connections are then accepted as the mode says. Counters: ``accepted``, ``active``,
``pubacks`` (PUBACKs the broker sent, dropped or not), ``pubacks_dropped``, ``bytes_up``
(client->broker), ``bytes_down`` (broker->client).

A broker routes a publish to its subscribers before (or while) it acknowledges it, and
the PUBACK reaches the proxy some time after: a subscriber that has a message proves
nothing about its PUBACK. To know a PUBACK was dropped, wait on ``pubacks_dropped``.
"""
from __future__ import annotations

import selectors
import socket
import struct
import threading
from typing import Callable, Dict, List, Optional, Tuple

CONNACK, PUBACK = 2, 4
MAX_BUFFER = 256 * 1024  # stop reading a side while this much waits for the other
MODES = ("pass", "blackhole", "drop_pubacks", "refuse", "drop_after_connack")


class MqttStreamFilter:
    """Sans-IO: splits an MQTT byte stream into packets and removes those ``drop`` selects.

    ``feed(data, drop)`` returns the bytes to forward now; ``drop(packet_type)`` is asked
    once per packet, when its first byte arrives, so a packet is never half-forwarded.
    A stream that is not MQTT (a remaining length longer than 4 bytes) is marked
    ``broken`` and passed through unchanged from then on.
    """

    def __init__(self) -> None:
        self.broken = False
        self.packets = 0          # packets whose first byte has been seen
        self.dropped = 0          # packets dropped
        self._dropping = False    # the current packet is being dropped
        self._in_length = False   # reading the remaining-length bytes
        self._length = 0
        self._shift = 0
        self._length_bytes = 0
        self._body_left = 0

    def feed(self, data: bytes, drop: Callable[[int], bool]) -> bytes:
        if self.broken:
            return data
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._body_left:
                take = min(self._body_left, n - i)
                if not self._dropping:
                    out += data[i:i + take]
                self._body_left -= take
                i += take
            elif self._in_length:
                byte = data[i]
                i += 1
                if not self._dropping:
                    out.append(byte)
                self._length |= (byte & 0x7F) << self._shift
                self._shift += 7
                self._length_bytes += 1
                if byte & 0x80:
                    if self._length_bytes == 4:
                        self.broken = True
                        return bytes(out) + data[i:]
                else:
                    self._in_length = False
                    self._body_left = self._length
            else:
                byte = data[i]
                i += 1
                self.packets += 1
                self._dropping = drop(byte >> 4)
                if self._dropping:
                    self.dropped += 1
                else:
                    out.append(byte)
                self._in_length = True
                self._length = self._shift = self._length_bytes = 0
        return bytes(out)


def encode_remaining_length(length: int) -> bytes:
    """The MQTT variable-length encoding of ``length`` (1 to 4 bytes)."""
    if not 0 <= length <= 268_435_455:
        raise ValueError("MQTT remaining length out of range: {}".format(length))
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


class _Pair:
    """One proxied connection: client socket, upstream socket (or None) and their buffers."""

    def __init__(self, client: socket.socket, upstream: Optional[socket.socket]) -> None:
        self.client = client
        self.upstream = upstream
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        self.filter = MqttStreamFilter()
        self.eof = False  # one side ended: close once pending bytes are flushed
        self.hang_up = False  # drop_after_connack: reset once to_client is written


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (an abrupt loss, not a polite close)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """A TCP proxy on a free loopback port that forwards to ``(target_host, target_port)``.

    Example::

        with FaultProxy("127.0.0.1", broker.plain_port) as proxy:
            client.connect("127.0.0.1", proxy.port)
            proxy.set_mode("blackhole")   # the broker goes silent
            proxy.cut()                   # every connection reset
    """

    MODES = MODES

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 mode: str = "pass") -> None:
        self._check_mode(mode)
        self.target = (target_host, target_port)
        self._mode = mode
        self._cond = threading.Condition()
        self.accepted = 0
        self.pubacks = 0
        self.pubacks_dropped = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._pairs: List[_Pair] = []
        self._calls: List[Tuple[Callable[[], None], threading.Event]] = []
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.host = listen_host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._registered: Dict[socket.socket, Tuple[int, object]] = {}
        self._thread = threading.Thread(target=self._run, name="faultproxy:{}".format(self.port),
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise ValueError("unknown proxy mode {!r}; use one of {}".format(mode, ", ".join(MODES)))

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Switch mode; returns once the proxy thread has applied it."""
        self._check_mode(mode)

        def apply() -> None:
            self._mode = mode
            if mode == "pass":  # connections kept alone during a blackhole have nowhere to go
                for pair in [p for p in self._pairs if p.upstream is None]:
                    self._drop_pair(pair, abrupt=True)
        self._call(apply)

    def cut(self) -> None:
        """Reset every current connection (both ends); returns once they are closed."""
        def apply() -> None:
            for pair in list(self._pairs):
                self._drop_pair(pair, abrupt=True)
        self._call(apply)

    @property
    def active(self) -> int:
        """Connections open right now."""
        with self._cond:
            return len(self._pairs)

    def wait_until(self, predicate: Callable[["FaultProxy"], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(proxy)`` holds (checked on every proxy event) or raise TimeoutError."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError("proxy condition not met within {} s (accepted={}, active={}, "
                                   "pubacks_dropped={})".format(timeout, self.accepted,
                                                                len(self._pairs), self.pubacks_dropped))

    def close(self) -> None:
        """Stop the thread and close every socket. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._thread.join(10)
        for pair in list(self._pairs):
            self._drop_pair(pair, abrupt=True)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<FaultProxy {}:{} -> {}:{} mode={} active={}>".format(
            self.host, self.port, self.target[0], self.target[1], self._mode, len(self._pairs))

    # ------------------------------------------------------------------ thread plumbing
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        if self._closed:
            raise RuntimeError("the proxy is closed")
        done = threading.Event()
        with self._cond:
            self._calls.append((fn, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("proxy thread did not respond within {} s".format(timeout))

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._closed:
            self._register_interest()
            for key, events in self._sel.select(timeout=1.0):
                sock = key.fileobj
                if sock is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                elif sock is self._listener:
                    self._accept()
                else:
                    pair, side = key.data
                    if pair in self._pairs:
                        self._service(pair, side, events)
            self._run_calls()

    def _run_calls(self) -> None:
        with self._cond:
            calls, self._calls = self._calls, []
        for fn, done in calls:
            try:
                fn()
            finally:
                done.set()
        if calls:
            self._notify()

    def _register_interest(self) -> None:
        """Recompute what to wait for on every socket (few sockets, so simply every turn)."""
        wanted: Dict[socket.socket, Tuple[int, object]] = {
            self._wake_r: (selectors.EVENT_READ, None), self._listener: (selectors.EVENT_READ, None)}
        stalled = self._mode == "blackhole"
        for pair in self._pairs:
            if stalled or pair.upstream is None:
                continue
            for sock, side, inbox, outbox in ((pair.client, "client", pair.to_upstream, pair.to_client),
                                              (pair.upstream, "upstream", pair.to_client, pair.to_upstream)):
                ev = 0
                if not pair.eof and len(inbox) < MAX_BUFFER:
                    ev |= selectors.EVENT_READ
                if outbox:
                    ev |= selectors.EVENT_WRITE
                if ev:
                    wanted[sock] = (ev, (pair, side))
        for sock in [s for s in self._registered if s not in wanted]:
            self._sel.unregister(sock)
            del self._registered[sock]
        for sock, (ev, data) in wanted.items():
            have = self._registered.get(sock)
            if have is None:
                self._sel.register(sock, ev, data)
            elif have != (ev, data):
                self._sel.modify(sock, ev, data)
            self._registered[sock] = (ev, data)

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        with self._cond:
            self.accepted += 1
        if self._mode == "refuse":
            _reset(client)
            self._notify()
            return
        upstream: Optional[socket.socket] = None
        try:  # blocking, but the target is a loopback broker: refused or accepted at once
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            if self._mode != "blackhole":
                _reset(client)
                self._notify()
                return
        for s in (client, upstream):
            if s is not None:
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            self._pairs.append(_Pair(client, upstream))
            self._cond.notify_all()

    def _drop_pair(self, pair: _Pair, *, abrupt: bool) -> None:
        for s in (pair.client, pair.upstream):
            if s is None:
                continue
            if self._registered.pop(s, None) is not None:
                self._sel.unregister(s)
            if abrupt:
                _reset(s)
            else:
                s.close()
        with self._cond:
            if pair in self._pairs:
                self._pairs.remove(pair)
            self._cond.notify_all()

    def _service(self, pair: _Pair, side: str, events: int) -> None:
        assert pair.upstream is not None
        src, dst_box = ((pair.client, pair.to_upstream) if side == "client"
                        else (pair.upstream, pair.to_client))
        out_box = pair.to_client if side == "client" else pair.to_upstream
        try:
            if events & selectors.EVENT_WRITE and out_box:
                sent = src.send(out_box)
                del out_box[:sent]
            if pair.hang_up and not pair.to_client:
                self._drop_pair(pair, abrupt=True)
                return
            if events & selectors.EVENT_READ:
                data = src.recv(65536)
                if not data:
                    pair.eof = True
                elif side == "client":
                    dst_box += data
                    with self._cond:
                        self.bytes_up += len(data)
                else:
                    self._from_broker(pair, data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop_pair(pair, abrupt=True)
            return
        if pair.eof and not pair.to_client and not pair.to_upstream:
            self._drop_pair(pair, abrupt=False)

    def _from_broker(self, pair: _Pair, data: bytes) -> None:
        mode = self._mode
        pubacks = 0

        def drop(ptype: int) -> bool:
            nonlocal pubacks
            if ptype == PUBACK:
                pubacks += 1
            if mode == "drop_after_connack":
                if pair.hang_up:
                    return True
                pair.hang_up = ptype == CONNACK
                return False
            return mode == "drop_pubacks" and ptype == PUBACK
        before = pair.filter.dropped
        out = pair.filter.feed(data, drop)
        pair.to_client += out
        with self._cond:
            self.bytes_down += len(out)
            self.pubacks += pubacks
            if pubacks:
                self._cond.notify_all()
            if pair.filter.dropped != before:
                self.pubacks_dropped += pair.filter.dropped - before
                self._cond.notify_all()
