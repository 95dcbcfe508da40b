"""The ARC path's speed against pysiaalarm's receiver on loopback, beside a bare socket.

(a) Latency: ``BENCH_ARC_EVENTS`` (default 300) single ``sos.pressed`` events, one at a
    time, through :class:`agent.arc.sender.ArcSender` (codec, link, socket thread) until
    the receiver's ACK comes back as ``Delivered``; p50/p99. Baseline, same run, same
    receiver: a bare TCP socket writing a prebuilt frame and reading the ACK.
(b) Throughput: the same number submitted at once; events/s until the last ACK (one frame
    in flight at a time, as the link sends). Baseline: the bare socket's rate in (a).

Both over TCP, unencrypted and AES-128. Needs the ``test`` extra (pysiaalarm).
Run: ``python -m bench arc``.
"""
from __future__ import annotations

import os
import queue
import socket
import statistics
import sys
import time
from typing import List, Optional

from pysiaalarm import CommunicationsProtocol, SIAAccount, SIAClient  # type: ignore[attr-defined]

from agent.arc.codec import Codec, FrameSettings
from agent.arc.codes import CodeTable, message_for
from agent.arc.link import Delivered, LinkEvent, LinkSettings
from agent.arc.sender import ArcSender

ACCOUNT = "1234AB"
KEY = "0123456789ABCDEF"


def _pct(values: List[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def bare_socket(port: int, codec: Codec, n: int) -> List[float]:
    message = message_for(CodeTable("ADM-CID"), {"sos": 1}, type="sos.pressed", sensor="sos",
                          occurred=time.time(), jti="b")
    assert message is not None
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for i in range(n):
            frame = codec.event_frame(i % 9999 + 1, message, time.time())
            start = time.perf_counter()
            sock.sendall(frame)
            answer = b""
            while not answer.endswith(b"\r"):
                answer += sock.recv(4096)
            times.append(time.perf_counter() - start)
    return times


def arc_path(port: int, codec: Codec, n: int) -> "tuple[List[float], float]":
    events: "queue.SimpleQueue[LinkEvent]" = queue.SimpleQueue()
    sender = ArcSender("127.0.0.1", port, "tcp", codec, LinkSettings(supervision_s=0),
                       on_event=events.put)
    sender.start()
    table = CodeTable("ADM-CID")
    try:
        def one(key: int) -> None:
            message = message_for(table, {"sos": 1}, type="sos.pressed", sensor="sos",
                                  occurred=time.time(), jti=str(key))
            assert message is not None
            sender.submit(key, message)
        latencies = []
        for i in range(n):
            start = time.perf_counter()
            one(i)
            event = events.get(timeout=30)
            assert isinstance(event, Delivered), event
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(n, 2 * n):
            one(i)
        for _ in range(n):
            assert isinstance(events.get(timeout=60), Delivered)
        rate = n / (time.perf_counter() - start)
    finally:
        sender.stop()
    return latencies, rate


def run(n: int, key: Optional[str]) -> None:
    received: "queue.SimpleQueue[object]" = queue.SimpleQueue()
    receiver = SIAClient("127.0.0.1", 0, [SIAAccount(ACCOUNT, key)], function=received.put,
                         protocol=CommunicationsProtocol.TCP)
    port = receiver.sia_server.server_address[1]
    receiver.start()
    try:
        codec = Codec(FrameSettings(ACCOUNT, key=key.encode() if key else None))
        bare = bare_socket(port, codec, n)
        latencies, rate = arc_path(port, codec, n)
    finally:
        receiver.stop()
    label = "AES-128" if key else "plain"
    ms = 1000.0
    print(f"{label:8} bare socket round trip  p50 {_pct(bare, .5) * ms:6.2f} ms  "
          f"p99 {_pct(bare, .99) * ms:6.2f} ms  ({1 / statistics.mean(bare):6.0f}/s)")
    print(f"{label:8} ARC path, one alarm     p50 {_pct(latencies, .5) * ms:6.2f} ms  "
          f"p99 {_pct(latencies, .99) * ms:6.2f} ms")
    print(f"{label:8} ARC path, {n} at once   {rate:6.0f} events/s "
          f"({rate * statistics.mean(bare):.2f} of the bare socket's rate)")


def main(argv: Optional[List[str]] = None) -> int:
    n = int(os.environ.get("BENCH_ARC_EVENTS", "300"))
    for key in (None, KEY):
        run(n, key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
