"""The live path, one event at a time, as a program ``bench instructions`` runs under callgrind.

``python -m bench.live_driver`` reads one JSON line of settings on stdin (broker host,
port, user, password, topic prefix, state folder, ``mode``), makes ``warmup`` events,
prints ``ready`` and waits for ``go N``; it then makes N events, each after the previous
one's delete was committed (``ours``) or its PUBACK came (``paho``), prints ``done`` and
exits at the end of its stdin. Between ``ready`` and ``done`` the bench zeroes and dumps
callgrind's counters, so only the N events are counted, in every thread.

* ``ours``: the real Recorder (make_event, Ed25519 JWT, counters, commit with fsync),
  Outbox, Publisher (MQTT 5, window 20) and the delete, as the daemon wires them.
* ``paho``: the baseline: raw paho-mqtt (``loop_start``) publishing one signed token of
  the same size at QoS 1 to the same topic and waiting for its PUBACK; nothing stored.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.events import SensorEvent

SENSOR = "front_door"


def _event() -> SensorEvent:
    return SensorEvent("door.opened", SENSOR, time.monotonic(), {"state": "open"}, False)


def ours(c: Dict[str, Any]) -> Callable[[], None]:
    """One event through the real path; returns once its delete is committed."""
    from agent.delivery.publisher import LinkSettings, Publisher
    from agent.delivery.window import WindowSettings
    from agent.outbox.policy import OutboxLimits
    from agent.outbox.store import Outbox
    from agent.record.counters import Counters
    from agent.outbox.source import OutboxSource
    from agent.record.recorder import Clocks, Recorder
    from agent.record.signing import Signer

    state = Path(c["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    box = Outbox.open(state / "outbox.sqlite3", OutboxLimits(min_free_mb=0))
    deleted = threading.Semaphore(0)

    class Source(OutboxSource):
        def ack(self, row_ids: Sequence[int]) -> None:
            box.submit_ack(row_ids).add_done_callback(lambda _: deleted.release())

    link = LinkSettings(host=c["host"], port=c["port"], client_id="gw-test-cg",
                        topic_prefix=c["prefix"], keepalive_s=30, username=c["user"],
                        password=c["password"], subscribe_commands=False,
                        window=WindowSettings(max_inflight=20, ack_timeout_s=60.0))
    publisher = Publisher(link, Source(box))
    offset = time.time() - time.monotonic()
    recorder = Recorder(device_id="gw-test", topic_prefix=c["prefix"],
                        signer=Signer("EdDSA", Ed25519PrivateKey.generate()),
                        counters=Counters(state), outbox=box,
                        clocks=Clocks(lambda at: offset + at, time.time, lambda: True),
                        wake=publisher.wake)
    publisher.start()

    def one() -> None:
        recorder.record([_event()])
        if not deleted.acquire(timeout=120):
            raise RuntimeError("no PUBACK / delete within 120 s")
    return one


def paho(c: Dict[str, Any]) -> Callable[[], None]:
    """One publish of a same-sized signed token at QoS 1; returns once its PUBACK came."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.record.events import make_event
    from agent.record.signing import Signer

    class Seq:
        boot = 1

        def next_seq(self) -> int:
            return 1
    event = make_event(device_id="gw-test", type="door.opened", sensor=SENSOR, critical=False,
                       data={"state": "open"}, recognised_at=time.time(), counters=Seq(),
                       clock_synced=True, now_epoch=time.time())
    payload = Signer("EdDSA", Ed25519PrivateKey.generate()).sign(event).encode("ascii")
    acked = threading.Semaphore(0)
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-test-cg-paho",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(c["user"], c["password"])
    client.on_connect = lambda *a: connected.set()
    client.on_publish = lambda *a: acked.release()
    client.connect(c["host"], c["port"], 30)
    client.loop_start()
    if not connected.wait(120):
        raise RuntimeError("baseline client could not connect")
    topic = f"{c['prefix']}/events/{SENSOR}"

    def one() -> None:
        client.publish(topic, payload, qos=1)
        if not acked.acquire(timeout=120):
            raise RuntimeError("no PUBACK within 120 s")
    return one


def main() -> None:
    settings = json.loads(sys.stdin.readline())
    one = {"ours": ours, "paho": paho}[settings["mode"]](settings)
    for _ in range(int(settings.get("warmup", 5))):
        one()
    print("ready", flush=True)
    words = sys.stdin.readline().split()
    for _ in range(int(words[1])):
        one()
    print("done", flush=True)
    sys.stdin.read()
    os._exit(0)   # the publisher and outbox threads are not daemons; nothing here to keep


if __name__ == "__main__":
    main()
