"""The publisher against a real mosquitto, directly and through the fault proxy.

The row source here is a small in-memory stand-in for the outbox (the outbox has its
own tests; end-to-end delivery through it is in test_delivery_e2e.py). The MQTT side is
all real: paho in the publisher, mosquitto, and a subscribing client.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import AbstractSet, Dict, Iterator, List, Optional, Sequence

import pytest

from agent.delivery.client import Notes, new_client
from agent.delivery.window import WindowSettings
from agent.delivery.publisher import LinkSettings, Publisher, TlsSettings
import paho.mqtt.client as mqtt

from tests.broker import MosquittoBroker, Subscriber
from tests.broker import Publisher as CloudPublisher
from tests.faultproxy import FaultProxy
from tests.helpers import wait_until

pytestmark = pytest.mark.broker


@dataclass(frozen=True)
class Row:
    row_id: int
    topic: str
    payload: bytes


class MemorySource:
    """Rows in id order; ack() deletes. Thread-safe like the real outbox."""

    def __init__(self, rows: Sequence[Row] = ()) -> None:
        self._rows: Dict[int, Row] = {r.row_id: r for r in rows}
        self._lock = threading.Condition()
        self.acked: List[int] = []

    def add(self, rows: Sequence[Row]) -> None:
        with self._lock:
            self._rows.update({r.row_id: r for r in rows})

    def next_batch(self, limit: int, exclude: AbstractSet[int]) -> Sequence[Row]:
        with self._lock:
            return [r for k, r in sorted(self._rows.items()) if k not in exclude][:limit]

    def ack(self, row_ids: Sequence[int]) -> None:
        with self._lock:
            for row_id in row_ids:
                self._rows.pop(row_id, None)
            self.acked.extend(row_ids)
            self._lock.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: not self._rows, timeout)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


def rows(broker: MosquittoBroker, n: int, start: int = 0) -> List[Row]:
    return [Row(i, f"{broker.prefix}/events/sos", b"event-%d" % i) for i in range(start, start + n)]


def settings(broker: MosquittoBroker, port: int, *, tls: bool = False, protocol: str = "5",
             **window: object) -> LinkSettings:
    return LinkSettings(
        host="localhost" if tls else broker.host, port=port, client_id="gw-test",
        topic_prefix=broker.prefix, protocol=protocol, keepalive_s=5,
        tls=TlsSettings(ca_file=broker.ca_file) if tls else None,
        username="device", password=broker.users["device"],
        window=WindowSettings(**{"ack_timeout_s": 1.0, **window}),  # type: ignore[arg-type]
        connect_timeout_s=2.0, backoff_base_s=0.05, backoff_max_s=0.5, healthy_after_s=0.5)


@pytest.fixture
def started() -> Iterator[List[Publisher]]:
    made: List[Publisher] = []
    yield made
    for p in made:
        p.stop(0.5)


def start(made: List[Publisher], link: LinkSettings, source: MemorySource) -> Publisher:
    p = Publisher(link, source)
    made.append(p)
    p.start()
    return p


def event_payloads(sub: Subscriber) -> List[bytes]:
    return [m.payload for m in sub.messages if "/events/" in m.topic]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_tls_with_password_delivers_everything_and_deletes_on_puback(
        broker: MosquittoBroker, started: List[Publisher], protocol: str) -> None:
    source = MemorySource(rows(broker, 50))
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        start(started, settings(broker, broker.tls_port, tls=True, protocol=protocol), source)
        assert source.wait_empty(10)
        sub.wait_for(50, timeout=10)
    assert sorted(source.acked) == list(range(50))
    assert [m.payload for m in sub.messages] == [b"event-%d" % i for i in range(50)]


@pytest.mark.parametrize("tls", [False, True])
def test_the_agent_socket_has_nagle_off(broker: MosquittoBroker, tls: bool) -> None:
    s = settings(broker, broker.tls_port if tls else broker.plain_port, tls=tls)
    notes = Notes()
    client = new_client(s, notes, clean=True, will=b"offline")
    client.connect(s.host, s.port, s.keepalive_s)
    try:
        deadline = time.monotonic() + 5
        while notes.connack is None and time.monotonic() < deadline:
            client.loop(0.1)
        assert notes.connack == 0          # a real connection to mosquitto, not just a socket
        sock = client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.disconnect()


def test_status_is_retained_online_then_offline_on_a_clean_stop(
        broker: MosquittoBroker, started: List[Publisher]) -> None:
    p = start(started, settings(broker, broker.plain_port), MemorySource())
    with Subscriber(broker, f"{broker.prefix}/status") as sub:
        first = sub.wait_for(1)[0]
        assert first.retain is False or first.retain is True  # live or retained copy
        assert json.loads(first.payload)["state"] == "online"
        assert p.stop(2.0) is True
        states = sub.wait_until(lambda ms: len(ms) >= 2)
        assert json.loads(states[-1].payload)["state"] == "offline"
    with Subscriber(broker, f"{broker.prefix}/status") as late:   # retained for newcomers
        assert json.loads(late.wait_for(1)[0].payload)["state"] == "offline"


def test_broker_down_at_start_then_up_delivers_all(tmp_path: object, broker: MosquittoBroker,
                                                   started: List[Publisher]) -> None:
    broker.stop()
    source = MemorySource(rows(broker, 30))
    p = start(started, settings(broker, broker.plain_port), source)
    assert not source.wait_empty(0.5)     # nobody to deliver to
    assert p.status.connected is False and p.status.last_error
    broker.start()
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        assert source.wait_empty(10)
    assert sorted(source.acked) == list(range(30))


def test_connection_cut_mid_stream_loses_nothing(broker: MosquittoBroker,
                                                 fault_proxy: FaultProxy,
                                                 started: List[Publisher]) -> None:
    source = MemorySource()
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        p = start(started, settings(broker, fault_proxy.port), source)
        source.add(rows(broker, 200))
        p.wake()
        wait_until(lambda: len(source.acked) >= 50, timeout=10, what="50 PUBACKs")
        fault_proxy.cut()
        assert source.wait_empty(15)
        want = {b"event-%d" % i for i in range(200)}
        # a broker acknowledges before it forwards: wait for the subscriber to catch up
        sub.wait_until(lambda ms: {m.payload for m in ms} >= want, timeout=10)
        got = set(event_payloads(sub))
    assert got == want
    assert fault_proxy.accepted >= 2 and p.status.connects >= 2


@pytest.mark.parametrize("fault", ["blackhole", "drop_pubacks"])
def test_a_silent_or_puback_swallowing_broker_is_detected_and_recycled(
        broker: MosquittoBroker, fault_proxy: FaultProxy, started: List[Publisher],
        fault: str) -> None:
    source = MemorySource()
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        p = start(started, settings(broker, fault_proxy.port, ack_timeout_s=1.0), source)
        fault_proxy.wait_until(lambda px: px.active >= 1)
        wait_until(lambda: p.status.connected, what="connected")
        fault_proxy.set_mode(fault)
        t_fault = time.monotonic()
        source.add(rows(broker, 20))
        p.wake()
        # detection: the publisher gives up on the connection within ack_timeout (+ slack)
        wait_until(lambda: p.status.stalls >= 1, timeout=5, what="stall detection")
        detected_after = time.monotonic() - t_fault
        assert detected_after < 1.0 + 1.0     # ack_timeout_s plus scheduling slack
        fault_proxy.set_mode("pass")
        assert source.wait_empty(15)
        want = {b"event-%d" % i for i in range(20)}
        sub.wait_until(lambda ms: {m.payload for m in ms} >= want, timeout=10)
        got = event_payloads(sub)
    assert set(got) >= want
    # anything received twice is the same payload sent again, never something else
    assert set(got) == {b"event-%d" % i for i in range(20)}


def test_a_refused_publish_keeps_its_row(broker: MosquittoBroker, started: List[Publisher]) -> None:
    forbidden = Row(1, "homecare/someone-else/events/sos", b"not ours")
    allowed = Row(2, f"{broker.prefix}/events/sos", b"ours")
    source = MemorySource([forbidden, allowed])
    p = start(started, settings(broker, broker.plain_port), source)
    wait_until(lambda: p.status.rejected >= 1 and p.status.delivered >= 1, what="both PUBACKs")
    assert source.acked == [2]               # MQTT 5 PUBACK 0x87 kept the refused row
    assert len(source) == 1


def test_on_3_1_1_mosquitto_pubacks_a_publish_its_acl_refused(
        broker: MosquittoBroker, started: List[Publisher], caplog: pytest.LogCaptureFixture) -> None:
    """Why ``validate`` warns on 3.1.1 (docs/spec.md §6): the PUBACK proves nothing. This pins
    the broker's behaviour the warning and docs/brokers.md describe."""
    forbidden = Row(1, "homecare/someone-else/events/sos", b"not ours")   # the ACL refuses it
    allowed = Row(2, f"{broker.prefix}/events/sos", b"ours")
    source = MemorySource([forbidden, allowed])
    with Subscriber(broker, "homecare/#") as sub:                 # the consumer may read it all
        with caplog.at_level("WARNING", logger="agent.publisher"):
            start(started, settings(broker, broker.plain_port, protocol="3.1.1"), source)
            assert source.wait_empty(10)
        sub.wait_until(lambda ms: any(m.payload == b"ours" for m in ms))
        assert not [m for m in sub.messages if m.payload == b"not ours"]   # never arrived
    assert sorted(source.acked) == [1, 2]    # ... yet PUBACKed, so the row was deleted
    assert "PUBACK proves nothing" in caplog.text   # said in the journal at start


def commands_publisher(made: List[Publisher], broker: MosquittoBroker, source: MemorySource,
                       got: List[int]) -> Publisher:
    link = settings(broker, broker.plain_port, protocol="3.1.1")
    p = Publisher(link, source, on_command=lambda payload: got.append(len(payload)))
    made.append(p)
    p.start()
    wait_until(lambda: p.status.connected, what="connected")
    return p


def test_on_3_1_1_an_oversized_command_is_dropped_unread_and_not_sent_again(
        broker: MosquittoBroker, started: List[Publisher]) -> None:
    """docs/spec.md §7: 3.1.1 cannot tell the broker a maximum; the packet's header is
    enough to drop the connection, and a fresh session makes the broker forget it (a
    kept session would get the queued QoS 1 message again on every reconnect)."""
    from agent.delivery.publisher import MAX_INCOMING_PACKET
    got: List[int] = []
    source = MemorySource()
    p = commands_publisher(started, broker, source, got)
    with CloudPublisher(broker, user="consumer", protocol=mqtt.MQTTv311) as cloud:
        cloud.connect()
        cloud.publish(f"{broker.prefix}/commands", b"A" * (1024 * 1024), qos=1)
        wait_until(lambda: p.status.oversized == 1 and p.status.connected, timeout=10,
                   what="the oversized packet dropped and a new session")
        # "connected" comes with the CONNACK, the new session's subscription a moment later:
        # a command published in between has no subscriber, so publish until one arrives
        for _ in range(20):
            cloud.publish(f"{broker.prefix}/commands", b"small", qos=1)
            try:
                wait_until(lambda: 5 in got, timeout=0.5, what="the next command")
                break
            except AssertionError:
                continue
        assert got and set(got) == {5}, got       # the oversized one never came back
    source.add(rows(broker, 3))
    p.wake()
    assert source.wait_empty(5)
    assert p.status.connects == 2 and p.status.oversized == 1     # dropped once, not in a loop
    assert max(got) <= MAX_INCOMING_PACKET


def test_a_retained_oversized_command_turns_commands_off_not_into_a_reconnect_loop(
        broker: MosquittoBroker, started: List[Publisher]) -> None:
    with CloudPublisher(broker, user="consumer", protocol=mqtt.MQTTv311) as cloud:
        cloud.connect()
        mid = cloud.publish(f"{broker.prefix}/commands", b"A" * (1024 * 1024), qos=1, retain=True)
        assert cloud.wait_puback(mid) is not None
    got: List[int] = []
    source = MemorySource()
    p = commands_publisher(started, broker, source, got)
    wait_until(lambda: p.status.oversized == 2 and p.status.connected, timeout=10,
               what="the retained packet dropped twice")
    source.add(rows(broker, 3))
    p.wake()
    assert source.wait_empty(5)                   # events still flow
    assert p.status.connects == 3 and got == []   # then it stays connected, unsubscribed


def test_last_will_says_offline_when_the_link_dies(broker: MosquittoBroker,
                                                   fault_proxy: FaultProxy,
                                                   started: List[Publisher]) -> None:
    p = start(started, settings(broker, fault_proxy.port), MemorySource())
    with Subscriber(broker, f"{broker.prefix}/status") as sub:
        sub.wait_until(lambda ms: any(json.loads(m.payload)["state"] == "online" for m in ms))
        fault_proxy.set_mode("refuse")       # no way back in
        fault_proxy.cut()                    # and the current link dies without DISCONNECT
        sub.wait_until(lambda ms: json.loads(ms[-1].payload)["state"] == "offline", timeout=10)
    # the broker publishes the will as soon as it sees the link die; the agent may notice
    # a moment later (its next read)
    wait_until(lambda: p.status.connected is False, timeout=10, what="the agent to notice")
