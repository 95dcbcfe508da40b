"""The reference consumers (examples/consumer-node, examples/consumer-python) against a
run of 1,100 events made by the real Recorder + Outbox + Publisher, with a broker outage
and an agent restart (new ``boot``) in the middle. Each consumer's report must match the
agent's own record: the same jtis, no bad signatures, duplicates only of the same bytes,
and no seq gap except the one across the restart.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from tests.broker import MosquittoBroker
from tests.faultproxy import FaultProxy
from tests.helpers import REPO, npm_ready, wait_until
from tests.interop import AgentRig, Endpoint

pytestmark = [pytest.mark.broker]

NODE_DIR = REPO / "examples" / "consumer-node"
PY_CONSUMER = REPO / "examples" / "consumer-python" / "consumer.py"


class Consumer:
    """A consumer subprocess; its stderr notes are collected, its report read at exit."""

    def __init__(self, cmd: List[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(cmd, cwd=str(cwd), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.notes: List[Dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.notes.append(json.loads(line))
            except ValueError:
                self.notes.append({"event": "text", "line": line.rstrip()})

    def unique(self) -> int:
        counts = [n["unique"] for n in list(self.notes) if n.get("event") == "progress"]
        return max(counts, default=0)

    def subscriptions(self) -> int:
        return sum(1 for n in list(self.notes) if n.get("event") == "subscribed")

    def report(self, timeout: float, terminate: bool = False) -> Dict[str, Any]:
        if terminate:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            out, _ = self.proc.communicate(timeout=10)
        self._reader.join(5)
        assert self.proc.returncode == 0, self.notes[-10:]
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def node_consumer_ready() -> Path:
    """``npm ci`` in examples/consumer-node once (node_modules is kept as a cache)."""
    return npm_ready(NODE_DIR, "mqtt")


def consumer_args(ep: Endpoint, key_file: Path, password_file: Path) -> List[str]:
    b = ep.broker
    return ["--url", f"mqtt://{b.host}:{b.plain_port}", "--key", str(key_file),
            "--username", "consumer", "--password-file", str(password_file),
            "--protocol", ep.protocol]


@pytest.fixture(params=["mosquitto-5"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kind, protocol = request.param.split("-", 1)
    broker = request.getfixturevalue("broker" if kind == "mosquitto" else "rabbitmq")
    ep = Endpoint(kind, broker, protocol)
    with FaultProxy(broker.host, broker.plain_port) as proxy:
        rig = AgentRig(tmp_path / "agent", ep.link(proxy.port))
        key_file = tmp_path / "device.pub.pem"
        key_file.write_bytes(rig.public_pem())
        pw = tmp_path / "consumer.pw"
        fd = os.open(str(pw), os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(broker.users["consumer"])
        made: List[Consumer] = []
        try:
            yield ep, proxy, rig, consumer_args(ep, key_file, pw), made
        finally:
            for c in made:
                c.kill()
            rig.close()
            ep.ensure_up()


def check(report: Dict[str, Any], rig: AgentRig) -> None:
    assert report["bad_signatures"] == 0, report["bad"]
    assert report["jtis"] == rig.jtis(), "consumer and agent disagree on the set of events"
    assert report["unique"] == len(rig.recorded)
    assert set(report["duplicate_jtis"]) <= set(report["jtis"])
    assert report["duplicate_mismatches"] == 0
    assert report["received"] == report["unique"] + report["duplicates"]
    # one gap, across the restart (the rest of boot 1's seq block); none within a boot
    assert report["in_boot_gaps"] == 0, report["gaps"]
    assert [g["across_boot"] for g in report["gaps"]] == [True]
    assert report["devices"][rig.device_id]["boots"] == [1, 2]


@pytest.mark.node
@pytest.mark.parametrize("setup", ["mosquitto-5", "rabbitmq-3.1.1"], indirect=True)
def test_both_reference_consumers_agree_with_the_agent_over_an_outage(
        setup: Any, node_consumer_ready: Path) -> None:
    ep, proxy, rig, args, made = setup
    total = 500 + 300 + 300
    node = Consumer(["node", "consumer.mjs", *args, "--count", str(total), "--progress", "100"],
                    NODE_DIR)
    py = Consumer([sys.executable, str(PY_CONSUMER), *args, "--count", str(total),
                   "--progress", "100"], REPO)
    made += [node, py]
    wait_until(lambda: node.subscriptions() >= 1 and py.subscriptions() >= 1, timeout=20,
               what="both consumers subscribed")
    rig.record(500)
    rig.wait_drained(60)
    # a broker that acknowledged but had not yet forwarded would lose those in a
    # restart (mosquitto here keeps no persistence): let both consumers catch up first
    wait_until(lambda: node.unique() >= 500 and py.unique() >= 500, timeout=20,
               what="both consumers to have the first 500")
    proxy.set_mode("refuse")          # once the broker is back, wait for the consumers
    ep.down()
    rig.record(300)                   # events keep being recorded during the outage
    ep.up()
    wait_until(lambda: node.subscriptions() >= 2 and py.subscriptions() >= 2, timeout=20,
               what="both consumers back")
    proxy.set_mode("pass")
    rig.wait_drained(60)
    rig.restart_counters()            # boot 2: seq jumps to the next block
    rig.record(300)
    rig.wait_drained(60)
    assert len(rig.recorded) == total
    for consumer in (node, py):
        check(consumer.report(timeout=30), rig)


@pytest.mark.node
def test_consumers_report_on_sigterm_and_count_a_forged_event(
        setup: Any, node_consumer_ready: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from agent.record.signing import Signer
    from tests.broker import Publisher as RawPublisher

    ep, proxy, rig, args, made = setup
    node = Consumer(["node", "consumer.mjs", *args, "--progress", "1"], NODE_DIR)
    py = Consumer([sys.executable, str(PY_CONSUMER), *args, "--progress", "1"], REPO)
    made += [node, py]
    wait_until(lambda: node.subscriptions() >= 1 and py.subscriptions() >= 1, timeout=20,
               what="both consumers subscribed")
    good = rig.record(5)
    rig.wait_drained(10)
    # a token signed by another key, with this device's kid: a forgery
    forger = Signer("EdDSA", Ed25519PrivateKey.generate(), kid=rig.signer.kid)
    forged = forger.sign(good[0]).encode()
    with RawPublisher(ep.broker, user="device") as raw:
        raw.connect()
        assert raw.wait_puback(raw.publish(f"{ep.broker.prefix}/events/sos", forged)) is not None
    # one more good event after the forgery: the broker forwards in order, so once a
    # consumer has counted it, it has seen the forgery too
    rig.record(1)
    rig.wait_drained(10)
    wait_until(lambda: node.unique() >= 6 and py.unique() >= 6, timeout=10,
               what="both consumers past the forgery")
    for consumer in (node, py):
        report = consumer.report(timeout=10, terminate=True)
        assert report["jtis"] == rig.jtis()
        assert report["bad_signatures"] == 1 and report["received"] == 7
        assert report["gaps"] == []
