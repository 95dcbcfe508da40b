"""The delivery core against BOTH brokers: mosquitto (MQTT 5 and 3.1.1) and RabbitMQ's
MQTT plugin (3.10: MQTT 3.1.1 only), through the real Recorder + Outbox + Publisher.

Outages: mosquitto is stopped and started on the same port; RabbitMQ's application is
stopped and started with ``rabbitmqctl stop_app``/``start_app`` (the MQTT listener closes
and reopens on the same port; a full node restart takes ~10 s). The publisher reaches
the broker through a FaultProxy so a test can hold the door shut until its own
subscriber is back, or swallow PUBACKs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.broker import MosquittoBroker, Subscriber
from tests.faultproxy import FaultProxy
from tests.helpers import wait_until
from tests.interop import AgentRig, Endpoint
from tests.rabbitmq import RabbitMQBroker

pytestmark = [pytest.mark.broker]

KINDS = ["mosquitto-5", "mosquitto-3.1.1", "rabbitmq-3.1.1"]


@pytest.fixture(params=KINDS)
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    """A broker of each kind, with the MQTT version the agent uses against it."""
    kind, protocol = request.param.split("-", 1)
    if kind == "mosquitto":
        broker: MosquittoBroker = request.getfixturevalue("broker")
        yield Endpoint(kind, broker, protocol)
        return
    rabbit: RabbitMQBroker = request.getfixturevalue("rabbitmq")
    ep = Endpoint(kind, rabbit, protocol)
    try:
        yield ep
    finally:
        ep.ensure_up()  # the node is shared by the session: leave it listening


@pytest.fixture
def proxy(endpoint: Endpoint) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint.broker.host, endpoint.broker.plain_port) as p:
        yield p


@pytest.fixture
def rig(tmp_path: Path, endpoint: Endpoint, proxy: FaultProxy) -> Iterator[AgentRig]:
    r = AgentRig(tmp_path / "agent", endpoint.link(proxy.port))
    try:
        yield r
    finally:
        r.close()


def events_of(sub: Subscriber) -> list:  # type: ignore[type-arg]
    return [m for m in sub.messages if "/events/" in m.topic]


def received_jtis(sub: Subscriber) -> set:  # type: ignore[type-arg]
    import jwt
    return {jwt.decode(m.payload, options={"verify_signature": False})["jti"]
            for m in events_of(sub)}


@pytest.mark.slow
def test_outage_and_recovery_delivers_every_event(endpoint: Endpoint, proxy: FaultProxy,
                                                  rig: AgentRig) -> None:
    prefix = endpoint.broker.prefix
    with endpoint.subscriber(f"{prefix}/events/#") as before:
        first = rig.record(40)
        rig.wait_drained(15)
        wait_until(lambda: received_jtis(before) >= set(rig.jtis(first)), timeout=10,
                   what="the first 40 events at the subscriber")
    proxy.set_mode("refuse")          # after the outage, wait for our subscriber
    endpoint.down()
    wait_until(lambda: not rig.publisher.status.connected, timeout=10, what="link down")
    during = rig.record(60)           # recorded while the broker is away
    time.sleep(0.3)                   # (give a wrong implementation the chance to delete)
    assert rig.depth() == 60, "rows must stay in the outbox until their PUBACK"
    endpoint.up()
    with endpoint.subscriber(f"{prefix}/events/#") as after:
        proxy.set_mode("pass")
        rig.wait_drained(20)
        wait_until(lambda: received_jtis(after) >= set(rig.jtis(during)), timeout=10,
                   what="the 60 events recorded during the outage")
        assert received_jtis(after) == set(rig.jtis(during))
    assert rig.publisher.status.connects >= 2


def test_rows_leave_the_outbox_only_on_puback(endpoint: Endpoint, proxy: FaultProxy,
                                              rig: AgentRig) -> None:
    prefix = endpoint.broker.prefix
    with endpoint.subscriber(f"{prefix}/events/#") as sub:
        wait_until(lambda: rig.publisher.status.connected, timeout=10, what="connected")
        proxy.wait_until(lambda p: p.pubacks >= 1, timeout=10)  # the "online" status's
        proxy.set_mode("drop_pubacks")    # the broker gets them; we never hear back
        made = rig.record(15)
        wait_until(lambda: received_jtis(sub) >= set(rig.jtis(made)), timeout=10,
                   what="the broker to route all 15")
        # routed is not acknowledged yet: the PUBACKs reach the proxy after the subscriber
        # has the events, and one still on its way would pass once the mode is "pass" again
        proxy.wait_until(lambda p: p.pubacks_dropped >= 15, timeout=10)
        assert proxy.pubacks_dropped == 15
        assert rig.depth() == 15          # delivered to the broker, but not acknowledged
        assert rig.publisher.status.delivered == 0
        proxy.set_mode("pass")            # the stall is detected, the link recycled, resent
        rig.wait_drained(15)
        assert received_jtis(sub) == set(rig.jtis(made))   # resends are the same events
    assert rig.publisher.status.stalls >= 1


def test_last_will_says_offline_on_an_abrupt_disconnect(endpoint: Endpoint, proxy: FaultProxy,
                                                        rig: AgentRig) -> None:
    topic = f"{endpoint.broker.prefix}/status"   # exact topic: RabbitMQ sends retained
    with endpoint.subscriber(topic) as sub:      # messages to exact-topic subscriptions only
        wait_until(lambda: rig.publisher.status.connected, timeout=10, what="connected")
        sub.wait_until(lambda ms: any(json.loads(m.payload)["state"] == "online" for m in ms),
                       timeout=10)
        proxy.set_mode("refuse")
        proxy.cut()                              # no DISCONNECT: the broker sends the will
        msgs = sub.wait_until(lambda ms: json.loads(ms[-1].payload)["state"] == "offline",
                              timeout=15)
        assert json.loads(msgs[-1].payload)["client_id"] == endpoint.broker.device_id
    with endpoint.subscriber(topic) as late:     # and it is retained for newcomers
        assert json.loads(late.wait_for(1, timeout=5)[0].payload)["state"] == "offline"


def test_rabbitmq_310_refuses_mqtt5_and_the_publisher_says_so(rabbitmq: RabbitMQBroker,
                                                              tmp_path: Path) -> None:
    ep = Endpoint("rabbitmq", rabbitmq, "5")
    r = AgentRig(tmp_path / "agent", ep.link())
    try:
        wait_until(lambda: r.publisher.status.last_error is not None, timeout=10,
                   what="a failed MQTT 5 connection")
        r.record(1)
        time.sleep(0.5)
        assert not r.publisher.status.connected and r.depth() == 1
        assert r.publisher.status.connects == 0
    finally:
        r.close()


def test_max_publish_rate_is_honoured_while_draining_a_backlog(tmp_path: Path,
                                                               broker: MosquittoBroker) -> None:
    """mqtt.max_publish_rate (e.g. AWS IoT Core's 100/s) caps a backlog drain: with a
    one-second burst allowance, n events at r/s take at least (n - r) / r seconds."""
    rate, n = 50.0, 120
    ep = Endpoint("mosquitto", broker, "5")
    with FaultProxy(broker.host, broker.plain_port) as proxy:
        proxy.set_mode("refuse")
        r = AgentRig(tmp_path / "agent", ep.link(proxy.port, max_publish_rate=rate))
        try:
            r.record(n, critical_every=0)          # the backlog, built while offline
            proxy.set_mode("pass")
            wait_until(lambda: r.depth() < n, timeout=10, interval=0.002, what="first PUBACK")
            t_first = time.monotonic()
            r.wait_drained(20)
            elapsed = time.monotonic() - t_first
        finally:
            r.close()
    floor = (n - rate - 1) / rate                  # 1.38 s
    assert elapsed >= floor * 0.95, f"{n} events at {rate:g}/s drained in {elapsed:.2f} s"
    assert elapsed < floor + 2.0, f"the limiter over-throttles: {elapsed:.2f} s"
