"""Drivers for the interop tests: one broker "endpoint" of either kind, and the real agent
pipeline (Recorder -> Outbox -> Publisher) wired the way the daemon wires it.

:class:`Endpoint` hides the difference between the two brokers: how an outage is made
(mosquitto: the process is stopped and started again on the same port; RabbitMQ:
``rabbitmqctl stop_app`` / ``start_app``, the MQTT listener closes and reopens on the
same port while the Erlang VM stays up, because a full node restart takes ~10 s), and
which MQTT versions a subscriber may use.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.counters import Counters
from agent.delivery.window import WindowSettings
from agent.record.events import Event
from agent.outbox.store import Outbox
from agent.outbox.policy import OutboxLimits
from agent.outbox.source import OutboxSource
from agent.record.recorder import AgentEvent, Clocks, Recorder
from agent.delivery.publisher import LinkSettings, Publisher
from drivers.events import SensorEvent
from tests.agent_files import public_pem
from tests.broker import MosquittoBroker, Subscriber
from tests.helpers import wait_until
from tests.rabbitmq import RabbitMQBroker

AnyBroker = Union[MosquittoBroker, RabbitMQBroker]


@dataclass
class Endpoint:
    """A broker under test and the MQTT version the agent speaks to it."""

    kind: str                  # "mosquitto" | "rabbitmq"
    broker: AnyBroker
    protocol: str              # "5" | "3.1.1"

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.protocol}"

    @property
    def outage_method(self) -> str:
        return "process stopped/started" if self.kind == "mosquitto" else "rabbitmqctl stop_app/start_app"

    def down(self) -> None:
        """Outage: nothing listens on the MQTT port; existing connections end."""
        if isinstance(self.broker, MosquittoBroker):
            self.broker.stop()
        else:
            self.broker.stop_app()

    def up(self) -> None:
        """The broker is back on the same port."""
        if isinstance(self.broker, MosquittoBroker):
            self.broker.start()
        else:
            self.broker.start_app()

    def ensure_up(self) -> None:
        if isinstance(self.broker, MosquittoBroker):
            if not self.broker.running:
                self.broker.start()
        else:
            from tests.broker import port_accepts
            if not port_accepts(self.broker.host, self.broker.plain_port):
                self.broker.start_app()

    def subscriber(self, topic: str) -> Subscriber:
        version = mqtt.MQTTv5 if self.protocol == "5" else mqtt.MQTTv311
        return Subscriber(self.broker, topic, protocol=version)  # type: ignore[arg-type]

    def link(self, port: Optional[int] = None, **window: Any) -> LinkSettings:
        """Settings for the device (user ``device``), plain MQTT, fast back-off."""
        b = self.broker
        return LinkSettings(
            host=b.host, port=port if port is not None else b.plain_port, client_id=b.device_id,
            topic_prefix=b.prefix, protocol=self.protocol, keepalive_s=5,
            username="device", password=b.users["device"],
            window=WindowSettings(**{"ack_timeout_s": 2.0, **window}),
            connect_timeout_s=2.0, backoff_base_s=0.05, backoff_max_s=0.5, healthy_after_s=0.5)


class AgentRig:
    """The real Recorder + Outbox + Publisher, as the daemon wires them (no sensors).

    ``record(n)`` returns the events the Recorder made (the agent's own record);
    ``restart_counters()`` simulates an agent restart for ``seq``/``boot`` purposes.
    """

    def __init__(self, state_dir: Path, link: LinkSettings, *,
                 max_payload_bytes: Optional[int] = None, start: bool = True) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.key = Ed25519PrivateKey.generate()
        from agent.record.signing import Signer
        self.signer = Signer("EdDSA", self.key)
        self.outbox = Outbox.open(state_dir / "outbox.sqlite3",
                                  OutboxLimits(max_events=100_000, max_mb=64, min_free_mb=0))
        self.counters = Counters(state_dir / "state")
        self.publisher = Publisher(link, OutboxSource(self.outbox))
        self.device_id = link.client_id
        self._link = link
        self._max_payload = max_payload_bytes
        self.recorder = self._recorder()
        self.recorded: List[Event] = []
        if start:
            self.publisher.start()

    def _recorder(self) -> Recorder:
        offset = time.time() - time.monotonic()
        return Recorder(device_id=self.device_id, topic_prefix=self._link.topic_prefix,
                        signer=self.signer, counters=self.counters, outbox=self.outbox,
                        clocks=Clocks(wall_of=lambda at: offset + at, now_epoch=time.time,
                                      synced=lambda: True),
                        wake=self.publisher.wake, max_payload_bytes=self._max_payload)

    def public_pem(self) -> bytes:
        return public_pem(self.key)

    def record(self, n: int, *, critical_every: int = 10, batch: int = 50) -> List[Event]:
        """Record ``n`` events in batches: door events, every ``critical_every``-th an SOS."""
        made: List[Event] = []
        for start in range(0, n, batch):
            items: List[Any] = []
            for i in range(start, min(n, start + batch)):
                now = time.monotonic()
                if critical_every and i % critical_every == 0:
                    items.append(SensorEvent("sos.pressed", "sos", now, {"state": "pressed"}, True))
                else:
                    items.append(SensorEvent("door.opened", "front_door", now,
                                             {"state": "open", "i": i}, False))
            made.extend(self.recorder.record(items))
        self.recorded.extend(made)
        return made

    def record_agent(self, type_: str, data: Any) -> List[Event]:
        made = self.recorder.record([AgentEvent(type_, time.monotonic(), data)])
        self.recorded.extend(made)
        return made

    def restart_counters(self) -> None:
        """As after an agent restart: a new ``boot``, ``seq`` continues from the next block."""
        self.counters.close()
        self.counters = Counters(self.state_dir / "state")
        self.recorder = self._recorder()

    def depth(self) -> int:
        return self.outbox.stats().depth

    def wait_drained(self, timeout: float = 30.0) -> None:
        wait_until(lambda: self.depth() == 0, timeout=timeout, interval=0.05,
                   what="the outbox to drain")

    def jtis(self, events: Optional[Sequence[Event]] = None) -> List[str]:
        return sorted(e.jti for e in (self.recorded if events is None else events))

    def close(self) -> None:
        self.publisher.stop(1.0)
        self.outbox.close()
        self.counters.close()
