"""Drivers for the receiver tests: a broker with a fleet user, simulated gateways that
sign with the agent's own code, receiver processes, and the files they need.

Theory of operation: :class:`FleetBroker` is tests/broker.py's mosquitto with one more
user, ``fleet``, that may write under every ``homecare/<device>/`` (one login for 50
simulated gateways). A :class:`Gateway` makes each event with
``agent.record.events.make_event`` and ``agent.record.counters.Counters`` and signs it
with ``agent.record.signing.Signer``, as the agent does. :func:`write_setup` writes the
device public keys, the care centre's key and one receiver config per instance;
:class:`ReceiverProcess` runs ``python -m receiver.cli run`` so that a test can SIGKILL it.
"""
from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.record.counters import Counters
from agent.record.events import make_event
from agent.record.signing import Signer
from tests.agent_files import private_pem, public_pem, secret_file
from tests.broker import MosquittoBroker
from tests.helpers import REPO, cli_env
from tests.postgres import PostgresServer


class FleetBroker(MosquittoBroker):
    """mosquitto with the usual users plus ``fleet`` (read/write ``homecare/#``)."""

    def _write_auth_files(self) -> None:
        self.users.setdefault("fleet", secrets.token_urlsafe(16))
        super()._write_auth_files()
        with open(self.acl_file, "a") as acl:
            acl.write("\nuser fleet\ntopic readwrite homecare/#\n")


class Gateway:
    """One simulated gateway: its key, counters and an MQTT client (optionally with a will)."""

    def __init__(self, device_id: str, state_dir: Path) -> None:
        self.device_id = device_id
        self.key = Ed25519PrivateKey.generate()
        self.signer = Signer("EdDSA", self.key)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.counters = Counters(state_dir)
        self.client: Optional[mqtt.Client] = None
        self.sent: List[Dict[str, Any]] = []      # claims of every event published

    def public_pem(self) -> bytes:
        return public_pem(self.key)

    def connect(self, broker: MosquittoBroker, *, will: bool = False) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{self.device_id}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set("fleet", broker.users["fleet"])
        if will:
            client.will_set(f"homecare/{self.device_id}/status", b'{"state":"offline"}', 1, True)
        client.connect(broker.host, broker.plain_port, keepalive=30)
        client.loop_start()
        self.client = client

    def event(self, type: str = "agent.heartbeat", sensor: str = "agent", *,
              critical: bool = False, data: Optional[Dict[str, Any]] = None) -> str:
        now = time.time()
        event = make_event(device_id=self.device_id, type=type, sensor=sensor,
                           critical=critical, data=data, recognised_at=now,
                           counters=self.counters, clock_synced=True, now_epoch=now)
        self.sent.append(event.claims())
        return self.signer.sign(event)

    def publish(self, token: str, sensor: str = "agent") -> "mqtt.MQTTMessageInfo":
        assert self.client is not None, "connect() first"
        return self.client.publish(f"homecare/{self.device_id}/events/{sensor}",
                                   token.encode("ascii"), qos=1)

    def send(self, type: str = "agent.heartbeat", sensor: str = "agent", **kwargs: Any) -> str:
        token = self.event(type, sensor, **kwargs)
        self.publish(token, sensor).wait_for_publish(10)
        return token

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
        self.counters.close()


def write_setup(folder: Path, broker: MosquittoBroker, postgres: PostgresServer, dbname: str,
                gateways: Sequence[Gateway], *, instances: Sequence[str] = ("r1",),
                heartbeat_s: float = 900, per_device_heartbeat: Optional[Dict[str, float]] = None,
                http_ports: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Key files and one config per instance; returns paths and the centre's key."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keys").mkdir(exist_ok=True)
    centre = Ed25519PrivateKey.generate()
    secret_file(folder / "centre-key.pem", private_pem(centre))
    (folder / "centre.pub.pem").write_bytes(public_pem(centre))
    secret_file(folder / "mqtt-password", broker.users["consumer"].encode())
    devices = []
    for gw in gateways:
        (folder / "keys" / f"{gw.device_id}.pub.pem").write_bytes(gw.public_pem())
        entry = {"id": gw.device_id, "key_file": f"keys/{gw.device_id}.pub.pem"}
        if per_device_heartbeat and gw.device_id in per_device_heartbeat:
            entry["heartbeat_s"] = per_device_heartbeat[gw.device_id]
        devices.append(entry)
    configs = {}
    for n, name in enumerate(instances):
        config = {
            "instance": name,
            "database": {"host": postgres.host, "port": postgres.port, "dbname": dbname,
                         "user": postgres.user},
            "mqtt": {"host": broker.host, "port": broker.plain_port, "username": "consumer",
                     "password_file": "mqtt-password", "group": "test-receivers"},
            "http": {"host": "127.0.0.1", "port": http_ports[n] if http_ports else 0},
            "commands": {"algorithm": "EdDSA", "key_file": "centre-key.pem"},
            "supervision": {"heartbeat_s": heartbeat_s, "interval_s": 0.2},
            "devices": devices,
        }
        path = folder / f"{name}.yaml"
        path.write_text(json.dumps(config, indent=1))    # JSON is YAML
        configs[name] = path
    return {"configs": configs, "centre_public": folder / "centre.pub.pem"}


class ReceiverProcess:
    """``python -m receiver.cli run --config PATH`` as a child; its log in ``log_file``."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_file = config.with_suffix(".log")
        self.proc: Optional["subprocess.Popen[bytes]"] = None

    def start(self) -> "ReceiverProcess":
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "receiver.cli", "run", "--config",
                                      str(self.config)], stdout=log, stderr=log,
                                     env=cli_env(), cwd=str(REPO))
        log.close()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while "connected to" not in self.log():
            assert self.proc is not None and self.proc.poll() is None, \
                f"receiver exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"receiver not connected:\n{self.log()}"
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)
