"""The whole agent on a real 3-node broker cluster: its node dies mid-burst (issue 16, part 1).

``mqtt.host`` names the three nodes (docs/spec.md §12.1), protocol 3.1.1 (RabbitMQ 3.10
and NATS 2.9 speak nothing newer). The agent dials node 0 first; the cloud side
subscribes and sends commands on node 1. During a burst of door events node 0 gets
``kill -9``; a command is sent at once, while the agent is between nodes. Then every
event the agent committed must arrive (contiguous ``seq`` in its boot, no ``(boot, seq)``
reused), the agent must sit on another node, and the command must be answered: its
persistent session (a quorum queue on RabbitMQ, R3 JetStream consumers on NATS) lived
on. Each cluster is started per test; ``-s`` prints how long it took.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator, List, Union

import paho.mqtt.client as mqtt
import pytest

from tests.broker import Publisher, Subscriber
from tests.clusters import NatsCluster, RabbitCluster, nats_available, rabbit_cluster_available
from tests.helpers import assert_unique_boot_seq
from tests.integration.agent_harness import DEVICE_ID, DOOR_PIN, AgentHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

Cluster = Union[RabbitCluster, NatsCluster]
BURST = 6           # door open/close pairs: 12 edges, under the flapping limit (16 in 10 s)
HOLD_S = 0.1        # how long the door stays in each position (open_ms/close_ms are 50)


@pytest.fixture(params=["rabbitmq", "nats"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    why_not = rabbit_cluster_available() if request.param == "rabbitmq" else nats_available()
    if why_not is not None:
        pytest.skip(why_not)
    made: Cluster = RabbitCluster() if request.param == "rabbitmq" else NatsCluster()
    try:
        made.start()
        print(f"\n{made.kind} cluster of 3 ready in {made.start_seconds:.1f} s")
        yield made
    finally:
        made.stop()


class ClusterHarness(AgentHarness):
    """The harness with its cloud side on MQTT 3.1.1 (neither cluster speaks MQTT 5)."""

    def start_cloud(self) -> None:
        self.subscriber = Subscriber(self.broker, f"homecare/{DEVICE_ID}/#",
                                     protocol=mqtt.MQTTv311)
        self.cloud = Publisher(self.broker, user="consumer", protocol=mqtt.MQTTv311)
        self.cloud.connect()

    def send_until_taken(self, payload: bytes, timeout: float = 45.0) -> int:
        """Publish a command until a PUBACK comes, on a fresh connection after each loss;
        returns the number of tries. RabbitMQ 3.10 closes a publisher's connection when the
        command's quorum queue loses its leader at that moment (``mqtt_unexpected_msg
        basic.nack`` in its log), so a care centre resends (the ``jti`` stays the same)."""
        deadline = time.monotonic() + timeout
        for tries in range(1, 100):
            assert self.cloud is not None
            rc = self.cloud.wait_puback(self.cloud.publish(self.commands_topic, payload, qos=1), 5)
            if rc is not None and not rc.is_failure:
                return tries
            assert time.monotonic() < deadline, f"no PUBACK for the command within {timeout} s"
            self.cloud.close()
            self.cloud = Publisher(self.broker, user="consumer", protocol=mqtt.MQTTv311)
            self.cloud.connect()
        raise AssertionError("no PUBACK for the command")


def toggle_door(h: AgentHarness, pairs: int, halfway: threading.Event) -> None:
    """Open and close the door ``pairs`` times, holding each position (a person does)."""
    pin = h.pin(DOOR_PIN)
    for i in range(pairs):
        pin.drive_high()
        time.sleep(HOLD_S)
        pin.drive_low()
        time.sleep(HOLD_S)
        if i == 1:              # the rest of the burst falls into the move
            halfway.set()


def current_port(h: AgentHarness) -> int:
    assert h.agent is not None
    return h.agent.publisher._endpoints.current.port   # the node it dials or is on


def door_events(events: List[Any]) -> List[Any]:
    return [e for e in events if e["type"] in ("door.opened", "door.closed")
            and not e["data"].get("initial")]


def test_the_agent_moves_to_another_node_when_its_node_is_killed(
        cluster: Cluster, mock_factory: Any, tmp_path: Any) -> None:
    ports = cluster.mqtt_ports
    overrides = {"mqtt": {"host": [f"{cluster.host}:{p}" for p in ports], "port": None,
                          "protocol": "3.1.1"}}
    h = ClusterHarness(cluster.view(1), tmp_path, mock_factory,  # type: ignore[arg-type]
                       overrides=overrides)   # duck-typed broker: one node of the cluster
    with h:
        h.wait_event(type="sos.released", initial=True, timeout=20)
        assert current_port(h) == ports[0]
        halfway = threading.Event()
        burst = threading.Thread(target=toggle_door, args=(h, BURST, halfway), daemon=True)
        burst.start()
        assert halfway.wait(30)
        cluster.kill(0)
        t_kill = time.monotonic()
        ping = h.sign("ping")          # sent while the agent is between nodes
        tries = h.send_until_taken(ping)
        puback_after = time.monotonic() - t_kill
        burst.join(30)
        # the last edge (closed) and all before it: the first opening is no edge if the
        # pin started high (the start-up report then says open)
        events = h.wait_events(lambda es: len(door_events(es)) >= 2 * BURST - 1
                               and door_events(es)[-1]["type"] == "door.closed"
                               and any(e["type"] == "command.done" for e in es),
                               timeout=60, what=f"{2 * BURST} door events and the ping's answer")
        moved_after = time.monotonic() - t_kill
        assert current_port(h) in ports[1:]
        boot = events[-1]["boot"]
        seqs = sorted({e["seq"] for e in events if e["boot"] == boot})
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"seq gaps: {seqs}"
        assert_unique_boot_seq(events)
        done = [e for e in events if e["type"] == "command.done"]
        assert len(done) == 1 and done[0]["data"]["cmd"] == "ping"
        print(f"{cluster.kind}: node 0 killed; command PUBACK after {puback_after:.1f} s "
              f"({tries} tries), "
              f"all events and the ping's answer after {moved_after:.1f} s")
        if isinstance(cluster, RabbitCluster):
            queues = cluster.queue_types()
            session = f"mqtt-subscription-{DEVICE_ID}qos1"
            assert queues.get(session) == "quorum", queues
