"""Button -> care-centre acknowledgement round trip on loopback (issue 12, docs/spec.md §11).

The whole agent (``Agent.build`` from a real config: mock pins, debouncer, Ed25519
signing, counters, outbox commit, publisher, command verification, the alarm book) runs
in this process against a private mosquitto (MQTT 5, plaintext loopback). For each of
``BENCH_ACK_ALARMS`` (default 300) alarms the finger lands — the SOS pin is driven low,
as the timeline driver does — and the clock starts; the press is debounced (30 ms),
signed, committed and published; a responder *process* (``bench/responder.py``)
subscribed to the events verifies the token with the device key and at once publishes
a signed ``ack`` naming it; the agent verifies the command and the book closes the
alarm. The clock stops when the agent records the ``command.done`` that lists the alarm
in ``data.acknowledged``. The *machine part* is that total minus the debounce window.
Then the button is let go and its release awaited, so alarms never overlap.

Baseline, same run, same broker, same responder process: bare paho (MQTT 5, QoS 1,
``loop_start``) publishes a payload of an alarm token's size to ``bench/ping``; the
responder echoes it to ``bench/pong``; the time until it arrives back. That is the
transport's share: two QoS 1 hops and a process that answers without verifying or
signing anything.

Three runs, each with a fresh broker: mosquitto as the tests configure it (its default:
Nagle's algorithm on), then with ``set_tcp_nodelay true`` on the broker and
``TCP_NODELAY`` on the responder's and the baseline's sockets, then the same with
``TCP_NODELAY`` on the agent's own socket too, as the agent ships (the first two runs
patch it back to Nagle on, in this process only, to show what it is worth). Small MQTT
packets written back to back wait for a delayed TCP ACK under Nagle; the runs show how
much of the round trip that is.

Run: ``python -m bench ack``.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from agent.app.daemon import Agent
from agent.app.sdnotify import Notifier
from agent.config.model import load_config
from bench.responder import PING, PONG

SOS_PIN = 17


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _broker(folder: Path, nodelay: bool) -> Any:
    from tests.broker import MosquittoBroker, make_test_pki  # the test harness's mosquitto

    class Broker(MosquittoBroker):
        def _write_conf(self) -> None:
            super()._write_conf()
            if nodelay:     # mosquitto's default is Nagle on (set_tcp_nodelay false)
                with open(self.conf_file, "a") as conf:
                    conf.write("\nset_tcp_nodelay true\n")

    broker = Broker(folder / "broker", make_test_pki(folder / "pki"))
    with open(broker.acl_file, "a") as acl:     # the baseline's two topics, for both users
        acl.write("\nuser device\ntopic readwrite bench/#\nuser consumer\ntopic readwrite bench/#\n")
    broker.start()
    return broker


class Watch:
    """What the agent recorded, as it recorded it (``Recorder.on_recorded``, loop thread)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pressed_at: Optional[float] = None
        self.acked_at: Optional[float] = None
        self.released = 0
        self.acked_jti: Optional[str] = None
        self.alarm_jti: Optional[str] = None

    def __call__(self, events: Any) -> None:
        now = time.monotonic()
        with self.cond:
            for e in events:
                if e.type == "sos.pressed":
                    self.pressed_at, self.alarm_jti = now, e.jti
                elif e.type == "sos.released":
                    self.released += 1
                elif e.type == "command.done" and e.data.get("acknowledged"):
                    self.acked_at, self.acked_jti = now, e.data["acknowledged"][0]["jti"]
            self.cond.notify_all()

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise RuntimeError(f"bench: no {what} within {timeout} s")


def _agent(broker: Any, folder: Path) -> Any:
    from tests.integration.agent_harness import write_agent_files

    files = write_agent_files(broker, folder, {
        "sensors": [{"name": "sos", "kind": "sos_button", "pin": SOS_PIN, "pull": "up",
                     "active": "low", "flapping": False}],     # 300 presses a minute are a bench
        "alarms": {"ack_timeout_s": 86400}})
    from gpiozero.pins.mock import MockFactory
    factory = MockFactory()
    agent = Agent.build(load_config(files.config_path, environ={}), pin_factory=factory,
                        notifier=Notifier(None))
    return files, factory, agent


def _responder(broker: Any, folder: Path, files: Any, nodelay: bool) -> "subprocess.Popen[str]":
    cloud_pem = folder / "cloud-key.pem"
    fd = os.open(cloud_pem, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(files.cloud_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    device_pub = folder / "device-public.pem"
    device_pub.write_bytes(files.device_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    password = folder / "consumer-password"
    fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(broker.users["consumer"])
    settings = folder / "responder.json"
    settings.write_text(json.dumps({
        "host": broker.host, "port": broker.plain_port, "user": "consumer",
        "password_file": str(password), "device_public": str(device_pub),
        "cloud_key": str(cloud_pem), "prefix": broker.prefix, "device_id": "gw-test",
        "nodelay": nodelay}))
    proc = subprocess.Popen([sys.executable, "-m", "bench.responder", str(settings)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("bench: the responder did not subscribe")
    return proc


def _round_trips(agent: Any, factory: Any, watch: Watch, n: int) -> "tuple[List[float], List[float]]":
    """Per alarm: finger -> acknowledged, and finger -> alarm committed."""
    pin = factory.pin(SOS_PIN)
    totals: List[float] = []
    commits: List[float] = []
    for _ in range(n):
        with watch.cond:
            watch.acked_at = None
            released = watch.released
        t0 = time.monotonic()
        pin.drive_low()                                   # the finger lands
        watch.wait(lambda: watch.acked_at is not None, "acknowledgement")
        assert watch.acked_at is not None and watch.acked_jti == watch.alarm_jti
        assert watch.pressed_at is not None
        totals.append(watch.acked_at - t0)
        commits.append(watch.pressed_at - t0)
        pin.drive_high()
        watch.wait(lambda: watch.released > released, "release")
    return totals, commits


def _bare_paho(broker: Any, n: int, size: int, nodelay: bool) -> List[float]:
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    client.username_pw_set("device", broker.users["device"])
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    if nodelay:
        client.on_connect = lambda c, *a: c.socket().setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.on_message = lambda *a: got.set()
    client.connect(broker.host, broker.plain_port)
    client.loop_start()
    client.subscribe(PONG, qos=1)
    subscribed.wait(5)
    payload = b"x" * size
    times: List[float] = []
    try:
        for _ in range(n):
            got.clear()
            t0 = time.monotonic()
            client.publish(PING, payload, qos=1)
            if not got.wait(5):
                raise RuntimeError("bench: no pong")
            times.append(time.monotonic() - t0)
    finally:
        client.loop_stop()
        client.disconnect()
    return times


def run(n: int, nodelay: bool, label: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        folder = Path(tmp)
        broker = _broker(folder, nodelay)
        files, factory, agent = _agent(broker, folder / "agent")
        watch = Watch()
        agent.recorder.on_recorded = watch
        responder = _responder(broker, folder, files, nodelay)
        thread = threading.Thread(target=agent.run, name="agent-loop", daemon=True)
        try:
            thread.start()
            watch.wait(lambda: watch.released >= 1, "start-up report")
            debounce_s = agent.config.sensor("sos").debounce_ms / 1000.0
            totals, commits = _round_trips(agent, factory, watch, n)
            bare = _bare_paho(broker, n, 600, nodelay)
        finally:
            agent.loop.request_stop()
            thread.join(10)
            agent.close(1.0)
            responder.terminate()
            responder.wait(10)
            broker.close()
    machine = [t - debounce_s for t in totals]
    print(f"[{label}]")
    print(f"  {n} alarms: button -> acknowledged, machine part (total - {debounce_s * 1000:.0f} ms "
          f"debounce): p50 {ms(_pct(machine, 50))}, p99 {ms(_pct(machine, 99))}; of it "
          f"debounced -> committed p50 {ms(_pct([c - debounce_s for c in commits], 50))}, "
          f"committed -> ack accepted p50 {ms(_pct([t - c for t, c in zip(totals, commits)], 50))}")
    print(f"  bare paho round trip (publish, responder echoes, receive): p50 {ms(_pct(bare, 50))}, "
          f"p99 {ms(_pct(bare, 99))}; ratio p50 {_pct(machine, 50) / _pct(bare, 50):.1f}x, "
          f"p99 {_pct(machine, 99) / _pct(bare, 99):.1f}x", flush=True)


@contextlib.contextmanager
def _agent_nagle() -> Iterator[None]:
    """This process only: the agent's own MQTT socket with Nagle on again (the agent
    sets TCP_NODELAY in agent/delivery/client.py), for the runs before it."""
    from agent.delivery import client

    original = client.GuardedClient._create_socket

    def create(self: Any) -> Any:
        sock = original(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # type: ignore[attr-defined]
        return sock
    client.GuardedClient._create_socket = create  # type: ignore[method-assign]
    try:
        yield
    finally:
        client.GuardedClient._create_socket = original  # type: ignore[method-assign]


def main(argv: Optional[List[str]] = None) -> int:
    n = int(os.environ.get("BENCH_ACK_ALARMS", "300"))
    with _agent_nagle():
        for nodelay in (False, True):
            run(n, nodelay, "mosquitto defaults (Nagle on)" if not nodelay
                else "broker set_tcp_nodelay, responder TCP_NODELAY")
    run(n, True, "as above, and the agent's socket TCP_NODELAY (as shipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
