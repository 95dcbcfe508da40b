"""One receiver instance: the intake loop, supervision when it holds the lock, the web API.

Threads: paho's (puts messages on ``inbox``), the main loop (owns its database
connection, the intake and, while this instance holds the supervision lock, the
:class:`receiver.supervision.Supervisor`), and the web server's (one connection of its
own behind a lock). Supervision runs on one instance at a time: a PostgreSQL session
advisory lock, released by the database when that instance dies, so another takes over
within ``supervision.interval_s``. Its inputs are the gateway rows every instance
writes, with receive times from the wall clock (the one clock the instances share).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from receiver.alarms import Alarm, ack_claims, latency_ms
from receiver.commands import CommandSigner
from receiver.config import ReceiverConfig
from receiver.intake import Accepted, Refused, decide, split_topic
from receiver.link import Link, Message
from receiver.registry import Registry
from receiver.store import Store, connect
from receiver.supervision import Supervisor

log = logging.getLogger("homecare.receiver")
SUPERVISION_LOCK = 0x73757076    # "supv"
MAX_BATCH = 500


class Supervising:
    """Feeds the Supervisor from the gateway rows while this instance holds the lock."""

    def __init__(self, store: Store, registry: Registry, config: ReceiverConfig) -> None:
        self.store, self.registry, self.config = store, registry, config
        self.core: Optional[Supervisor] = None
        self._fed: Dict[str, Tuple[float, float]] = {}

    def _take_lock(self, now: float) -> bool:
        if self.core is not None:
            return True
        row = self.store.conn.execute("SELECT pg_try_advisory_lock(%s)",
                                      (SUPERVISION_LOCK,)).fetchone()
        self.store.conn.commit()
        if not (row and row[0]):
            return False
        self.core = Supervisor(self.registry.heartbeats(), now=now,
                               factor=self.config.supervision.factor)
        for device_id in self.store.silent_gateways():
            self.core.restore_silent(device_id)
        log.info("this instance supervises the gateways now")
        return True

    def tick(self, now: float) -> None:
        if not self._take_lock(now):
            return
        assert self.core is not None
        changes = []
        for device_id, last_seen, status, status_at in self.store.gateway_snapshot():
            seen_fed, status_fed = self._fed.get(device_id, (0.0, 0.0))
            inputs: List[Tuple[float, str]] = []
            if last_seen is not None and last_seen > seen_fed:
                inputs.append((last_seen, "seen"))
            if status == "offline" and status_at is not None and status_at > status_fed:
                inputs.append((status_at, "offline"))
            for at, what in sorted(inputs):
                step = self.core.seen if what == "seen" else self.core.offline
                changes += step(device_id, at)
            self._fed[device_id] = (max(seen_fed, last_seen or 0.0), max(status_fed, status_at or 0.0))
        changes += self.core.advance(now)
        for change in changes:
            log.warning("%s %s (%s)", change.type, change.device_id, change.reason)
            self.store.record_change(change, alarm_id=str(uuid.uuid4()))


class Receiver:
    """Build with a config; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, config: ReceiverConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.registry = Registry(config.devices)
        self.signer = CommandSigner.from_file(config.commands.key_file, config.commands.algorithm,
                                              kid=config.commands.kid)
        self.inbox: "queue.Queue[Message]" = queue.Queue()
        self.store = Store(connect(config.database), config.instance)
        self.store.create_schema()
        self.web_store = Store(connect(config.database), config.instance)
        self.web_lock = threading.Lock()
        self.link = Link(config.mqtt, config.instance, self.inbox)
        self.supervising = Supervising(self.store, self.registry, config)
        self.refused = 0

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        next_tick = self.clock()
        try:
            while not stop.is_set():
                wait = max(0.0, min(next_tick - self.clock(), 0.5))
                batch = self._drain(wait)
                if batch:
                    self._handle(batch)
                if self.clock() >= next_tick:
                    self.supervising.tick(self.clock())
                    next_tick = self.clock() + self.config.supervision.interval_s
        finally:
            self.link.stop()
            self.store.close()
            self.web_store.close()

    def _drain(self, wait: float) -> List[Message]:
        try:
            batch = [self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait()]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: List[Message]) -> None:
        accepted: List[Accepted] = []
        for message in batch:
            if message.topic.endswith("/status"):
                self._status(message)
                continue
            result = decide(message.topic, message.payload, known=self.registry.known,
                            verify=self.registry.verify)
            if isinstance(result, Refused):
                self.refused += 1
                log.warning("refused a message on %s: %s: %s", message.topic, result.reason,
                            result.detail)
            else:
                accepted.append(result)
        if accepted:
            stored = self.store.store_batch(accepted, received_at=max(m.received_at for m in batch))
            log.debug("batch: %s", stored)
        for message in batch:           # committed: now the broker may forget them
            self.link.ack(message)

    def _status(self, message: Message) -> None:
        parts = message.topic.split("/")
        try:
            state = json.loads(message.payload.decode("utf-8"))["state"]
        except (ValueError, KeyError, TypeError):
            return
        if len(parts) == 3 and self.registry.known(parts[1]) and state in ("online", "offline"):
            self.store.set_status(parts[1], state, message.received_at)

    # -- the web API (called from the web server's threads)
    def open_alarms(self) -> List[Alarm]:
        with self.web_lock:
            return self.web_store.open_alarms()

    def acknowledge(self, alarm_id: str, operator: str) -> Optional[Dict[str, Any]]:
        """Close the alarm and send its signed ``ack``; None if it is not open."""
        with self.web_lock:
            alarm = self.web_store.open_alarm(alarm_id)
            if alarm is None:
                return None
            now = self.clock()
            claims = ack_claims(alarm, jti=str(uuid.uuid4()), now_epoch=now,
                                lifetime_s=self.config.commands.lifetime_s)
            latency = latency_ms(alarm, now)
            ack_jti = None if claims is None else str(claims["jti"])
            if not self.web_store.acknowledge(alarm_id, at=now, latency_ms=latency,
                                              ack_jti=ack_jti, operator=operator):
                return None
        sent = False
        if claims is not None:
            topic = f"{self.config.mqtt.topic_root}/{alarm.device_id}/commands"
            sent = self.link.publish(topic, self.signer.sign(claims))
        return {"alarm_id": alarm_id, "latency_ms": latency, "ack_sent": sent, "ack_jti": ack_jti}


__all__ = ["Receiver", "Supervising", "split_topic"]
