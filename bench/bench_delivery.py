"""Delivery throughput and latency through the real outbox and publisher, to a private mosquitto.

(a) Backlog drain: ``BENCH_DRAIN_EVENTS`` (default 100000) pre-signed events sit in the real
    outbox (fresh file, WAL, ``synchronous=FULL``); the real :class:`~agent.delivery.publisher.Publisher`
    (window 20) drains it over plaintext loopback MQTT 5 to a mosquitto started here. The
    baseline, in the same run, is raw paho-mqtt (``loop_start``) publishing the same payloads
    to the same topic at QoS 1 with the same window of 20 (a semaphore; paho's own in-flight
    limit is set to 22, as the publisher sets it), counting PUBACKs in ``on_publish``: the
    most a paho-based sender can do on this machine, without any durability. It runs
    before and after ours and the mean is used, so a load that drifts during the run moves
    both sides. Figure: events/s and the ratio publisher/baseline (goal >= 0.9).
(b) Live path latency: ``BENCH_LATENCY_EVENTS`` (default 1000) single events at
    ``BENCH_LATENCY_RATE``/s (default 100) through the real Recorder (Ed25519 signing,
    counters, commit), publisher, PUBACK, and the delete committed; p50/p99 of each step,
    measured from the moment the event was handed to ``Recorder.record``.

Run: ``python -m bench delivery``.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.record.counters import Counters
from agent.delivery.window import WindowSettings
from agent.record.events import make_event
from agent.outbox.store import Outbox, OutboxRow
from agent.outbox.policy import OutboxLimits
from agent.outbox.source import OutboxSource
from agent.record.recorder import Clocks, Recorder
from agent.delivery.publisher import LinkSettings, Publisher
from agent.record.signing import Signer
from drivers.events import SensorEvent

WINDOW = 20
DRAIN_GOAL = 0.9        # issue 17: of raw paho QoS 1, same window and payloads
LIVE_P99_GOAL_MS = 5.0  # issue 17: commit -> PUBACK on loopback
TOPIC_SENSOR = "front_door"


def _broker(folder: Path) -> Any:
    from tests.broker import MosquittoBroker, make_test_pki  # the test harness's mosquitto

    broker = MosquittoBroker(folder / "broker", make_test_pki(folder / "pki"))
    broker.start()
    return broker


def _link(broker: Any) -> LinkSettings:
    return LinkSettings(host=broker.host, port=broker.plain_port, client_id="gw-test",
                        topic_prefix=broker.prefix, keepalive_s=30, username="device",
                        password=broker.users["device"], subscribe_commands=False,
                        window=WindowSettings(max_inflight=WINDOW, ack_timeout_s=20.0))


class _Seq:
    def __init__(self) -> None:
        self.boot, self._next = 1, 0

    def next_seq(self) -> int:
        self._next += 1
        return self._next


def _signed_rows(n: int, topic: str) -> List[OutboxRow]:
    """n rows; 1000 distinct real Ed25519 tokens (signing 100k would dominate the bench)."""
    signer = Signer("EdDSA", Ed25519PrivateKey.generate())
    seqs = _Seq()
    tokens = []
    for i in range(min(n, 1000)):
        event = make_event(device_id="gw-test", type="door.opened", sensor=TOPIC_SENSOR,
                           critical=False, data={"state": "open"}, recognised_at=1.795e9 + i,
                           counters=seqs, clock_synced=True, now_epoch=1.795e9 + i)
        tokens.append((event.jti, signer.sign(event).encode("ascii")))
    return [OutboxRow(seq=s, critical=s % 10 == 0, topic=topic, payload=tokens[s % len(tokens)][1],
                      jti=f"{tokens[s % len(tokens)][0][:24]}{s:012d}", sensor=TOPIC_SENSOR,
                      type="door.opened", created=1.795e9) for s in range(1, n + 1)]


def drain_publisher(broker: Any, folder: Path, rows: Sequence[OutboxRow]) -> float:
    box = Outbox.open(folder / "drain.sqlite3",
                      OutboxLimits(max_events=len(rows) + 10, max_mb=1024, min_free_mb=0))
    try:
        for i in range(0, len(rows), 2000):
            box.put(rows[i:i + 2000])
        done = threading.Event()
        count = [0]

        def delivered(ids: Sequence[int]) -> None:
            count[0] += len(ids)
            if count[0] >= len(rows):
                done.set()
        publisher = Publisher(_link(broker), OutboxSource(box), on_delivered=delivered)
        started = time.perf_counter()
        publisher.start()
        if not done.wait(600):
            raise RuntimeError(f"drain incomplete: {count[0]} of {len(rows)}")
        box.stats()          # the queued deletes are committed too
        elapsed = time.perf_counter() - started
        publisher.stop(1.0)
        assert box.stats().depth == 0
    finally:
        box.close()
    return len(rows) / elapsed


def drain_raw_paho(broker: Any, rows: Sequence[OutboxRow]) -> float:
    window = threading.Semaphore(WINDOW)
    done = threading.Event()
    acked = [0]
    connected = threading.Event()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        acked[0] += 1
        window.release()
        if acked[0] >= len(rows):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-test", protocol=mqtt.MQTTv5)
    client.username_pw_set("device", broker.users["device"])
    client.max_inflight_messages_set(WINDOW + 2)
    client.on_publish = on_publish
    client.on_connect = lambda *a: connected.set()
    client.connect(broker.host, broker.plain_port, 30)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("baseline client could not connect")
        started = time.perf_counter()
        for row in rows:
            window.acquire()
            client.publish(row.topic, row.payload, qos=1)
        if not done.wait(600):
            raise RuntimeError(f"baseline incomplete: {acked[0]} of {len(rows)}")
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
    return len(rows) / elapsed


class _TimedSource(OutboxSource):
    """OutboxSource that notes when each PUBACK came and when its delete was committed."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(outbox)
        self.outbox = outbox
        self.acked_at: Dict[int, float] = {}
        self.deleted_at: Dict[int, float] = {}

    def ack(self, row_ids: Sequence[int]) -> None:
        now = time.perf_counter()
        ids = list(row_ids)
        for r in ids:
            self.acked_at[r] = now

        def committed(_: Any) -> None:
            at = time.perf_counter()
            for r in ids:
                self.deleted_at[r] = at
        self.outbox.submit_ack(ids).add_done_callback(committed)


def latency(broker: Any, folder: Path, n: int, rate: float) -> Dict[str, List[float]]:
    state = folder / "latency"
    state.mkdir()
    box = Outbox.open(state / "outbox.sqlite3", OutboxLimits(min_free_mb=0))
    counters = Counters(state)
    source = _TimedSource(box)
    publisher = Publisher(_link(broker), source)
    offset = time.time() - time.monotonic()
    recorder = Recorder(device_id="gw-test", topic_prefix=broker.prefix,
                        signer=Signer("EdDSA", Ed25519PrivateKey.generate()), counters=counters,
                        outbox=box, clocks=Clocks(lambda at: offset + at, time.time, lambda: True),
                        wake=publisher.wake)
    publisher.start()
    made: List[float] = []
    stored: List[float] = []
    try:
        deadline = time.monotonic() + 10
        while not publisher.status.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        next_at = time.perf_counter()
        for i in range(n):
            while time.perf_counter() < next_at:
                time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += 1.0 / rate
            t0 = time.perf_counter()
            recorder.record([SensorEvent("door.opened", TOPIC_SENSOR, time.monotonic(),
                                         {"state": "open"}, False)])
            made.append(t0)
            stored.append(time.perf_counter())
        deadline = time.monotonic() + 30
        while len(source.deleted_at) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        publisher.stop(1.0)
        box.close()
        counters.close()
    # a fresh outbox numbers its rows 1, 2, ... in the order they were recorded
    out: Dict[str, List[float]] = {"commit": [], "PUBACK": [], "delete": []}
    for i, t0 in enumerate(made):
        row = i + 1
        out["commit"].append(stored[i] - t0)
        if row in source.deleted_at:
            out["PUBACK"].append(source.acked_at[row] - t0)
            out["delete"].append(source.deleted_at[row] - t0)
    return out


def _pct(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: Optional[List[str]] = None) -> int:
    n = int(os.environ.get("BENCH_DRAIN_EVENTS", "100000"))
    n_lat = int(os.environ.get("BENCH_LATENCY_EVENTS", "1000"))
    rate = float(os.environ.get("BENCH_LATENCY_RATE", "100"))
    folder = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    broker = _broker(folder)
    try:
        topic = f"{broker.prefix}/events/{TOPIC_SENSOR}"
        t0 = time.perf_counter()
        rows = _signed_rows(n, topic)
        print(f"drain of {n:,} events, window {WINDOW}, MQTT 5 plaintext loopback "
              f"(rows prepared in {time.perf_counter() - t0:.1f} s)", flush=True)
        # the baseline before and after ours: a load that drifts during the run moves both
        base_before = drain_raw_paho(broker, rows)
        ours = drain_publisher(broker, folder, rows)
        base_after = drain_raw_paho(broker, rows)
        base = (base_before + base_after) / 2
        print(f"  raw paho QoS 1, loop_start, window {WINDOW}: {base:>9,.0f} events/s "
              f"(before {base_before:,.0f}, after {base_after:,.0f})")
        print(f"  outbox -> Publisher -> PUBACK -> delete: {ours:>9,.0f} events/s "
              f"({n / ours:.1f} s)")
        print(f"  ratio publisher/raw paho: {ours / base:.2f} (goal >= {DRAIN_GOAL})", flush=True)

        figures = latency(broker, folder, n_lat, rate)
        print(f"live path, {n_lat} single events at {rate:g}/s "
              f"({len(figures['delete'])} delivered), ms since handed to Recorder.record:")
        for step, values in figures.items():
            if values:
                print(f"  {step:<8} p50 {_pct(values, 50) * 1000:6.2f}  "
                      f"p99 {_pct(values, 99) * 1000:6.2f}  max {max(values) * 1000:6.2f}")
        if figures["PUBACK"]:
            print(f"  PUBACK p99 goal <= {LIVE_P99_GOAL_MS:g} ms")
        return 0 if len(figures["delete"]) == n_lat else 1
    finally:
        broker.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
