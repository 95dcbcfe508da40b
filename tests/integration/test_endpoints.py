"""Two real mosquitto brokers in the host list (docs/spec.md §12.1): the REAL Recorder, Outbox,
Counters, Ed25519 Signer and Publisher; a stream of events while the first broker is stopped,
then the first back and the second stopped.

The cloud side subscribes on both brokers, so "every event arrives" means: on one or the
other. mosquitto forwards a QoS 1 publish to its subscribers before it sends the PUBACK,
so an event the stopped broker acknowledged already sits in its subscriber's socket.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator, List, Set

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.endpoints import Endpoint
from agent.delivery.publisher import LinkSettings, Publisher
from agent.delivery.window import WindowSettings
from agent.outbox.policy import OutboxLimits
from agent.outbox.source import OutboxSource
from agent.outbox.store import Outbox
from agent.record.counters import Counters
from agent.record.recorder import Clocks, Recorder
from agent.record.signing import Signer, Verifier
from drivers.events import SensorEvent
from tests.broker import MosquittoBroker, Subscriber, TestPKI
from tests.helpers import assert_unique_boot_seq, wait_until

pytestmark = pytest.mark.broker

EVENTS = "homecare/gw-test/events/#"
#: the back-off step after a lost connection (full jitter pinned to its top: rand = 1)
STEP_S = 1.5


class Stream:
    """Records an event every ``every_s`` from its own thread (the loop's role), until stopped."""

    def __init__(self, recorder: Recorder, every_s: float = 0.01) -> None:
        self.recorder, self.every_s = recorder, every_s
        self.jtis: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.every_s):
            critical = i % 5 == 0
            event = SensorEvent("sos.pressed" if critical else "door.opened",
                                "sos" if critical else "front_door", time.monotonic(),
                                {"i": i}, critical)
            self.jtis.extend(e.jti for e in self.recorder.record([event]))
            i += 1

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.jtis) >= count, timeout=10.0, what=f"{count} events recorded")

    def stop(self) -> List[str]:
        self._stop.set()
        self._thread.join(5.0)
        return list(self.jtis)


@pytest.fixture
def brokers(tmp_path: Path, test_pki: TestPKI) -> Iterator[List[MosquittoBroker]]:
    a = MosquittoBroker(tmp_path / "a", test_pki)
    # one device password for both: credentials are shared by the endpoints (spec §12.1)
    pair = [a, MosquittoBroker(tmp_path / "b", test_pki, users=a.users)]
    for b in pair:
        b.start()
    try:
        yield pair
    finally:
        for b in pair:
            b.kill()


def settings(a: MosquittoBroker, b: MosquittoBroker) -> LinkSettings:
    return LinkSettings(
        host=a.host, port=a.plain_port, more_endpoints=(Endpoint(b.host, b.plain_port),),
        client_id="gw-test", topic_prefix=a.prefix, protocol="5", keepalive_s=5,
        username="device", password=a.users["device"],
        window=WindowSettings(max_inflight=20, ack_timeout_s=2.0), connect_timeout_s=2.0,
        # a session lost before healthy_after_s waits one step (PUBACKs reset the growth)
        backoff_base_s=STEP_S, backoff_max_s=30.0, healthy_after_s=600.0)


def wait_connected_to(publisher: Publisher, endpoint: str, timeout: float) -> float:
    wait_until(lambda: publisher.status.connected and publisher.status.endpoint == endpoint,
               timeout=timeout, what=f"a connection to {endpoint}", interval=0.01)
    return time.monotonic()


def move(publisher: Publisher, stopped: MosquittoBroker, to: str) -> None:
    """Stop ``stopped`` under the stream; the next attempt, one step later, goes to ``to``."""
    attempts = publisher.status.attempts
    t0 = time.monotonic()
    stopped.stop()
    moved = wait_connected_to(publisher, to, timeout=STEP_S + 5.0)
    assert moved - t0 <= STEP_S + 1.0, f"moved to {to} after {moved - t0:.2f} s"
    assert publisher.status.attempts == attempts + 1   # no retry of the stopped one first


def test_the_agent_moves_to_the_second_broker_and_back_and_every_event_arrives(
        tmp_path: Path, brokers: List[MosquittoBroker]) -> None:
    a, b = brokers
    key = Ed25519PrivateKey.generate()
    box = Outbox.open(tmp_path / "outbox.sqlite3", OutboxLimits(min_free_mb=0))
    counters = Counters(tmp_path)
    link = settings(a, b)
    publisher = Publisher(link, OutboxSource(box), rand=lambda: 1.0)
    offset = time.time() - time.monotonic()
    recorder = Recorder(device_id="gw-test", topic_prefix=link.topic_prefix,
                        signer=Signer("EdDSA", key), counters=counters, outbox=box,
                        clocks=Clocks(wall_of=lambda at: offset + at, now_epoch=time.time,
                                      synced=lambda: True), wake=publisher.wake)
    subs = [Subscriber(a, EVENTS), Subscriber(b, EVENTS)]
    first, second = str(Endpoint(a.host, a.plain_port)), str(Endpoint(b.host, b.plain_port))
    publisher.start()
    stream = None
    try:
        wait_connected_to(publisher, first, timeout=5.0)
        stream = Stream(recorder)
        stream.wait_for(50)
        move(publisher, a, second)
        stream.wait_for(len(stream.jtis) + 50)
        a.start()
        subs.append(Subscriber(a, EVENTS))    # the cloud side on the restarted first broker
        move(publisher, b, first)
        stream.wait_for(len(stream.jtis) + 50)
        made = stream.stop()
        stream = None
        wait_until(lambda: box.stats().depth == 0, timeout=10.0, what="an empty outbox",
                   interval=0.02)
        verifier = Verifier("EdDSA", key.public_key())
        claims = [verifier.verify(m.payload.decode("ascii")) for s in subs for m in s.messages]
        arrived: Set[str] = {c["jti"] for c in claims}
        assert set(made) <= arrived, f"{len(set(made) - arrived)} of {len(made)} never arrived"
        assert_unique_boot_seq(claims)
        assert all(s.messages for s in subs)  # each broker carried part of the stream
    finally:
        if stream is not None:
            stream.stop()
        publisher.stop(0.5)
        for s in subs:
            s.close()
        box.close()
        counters.close()
