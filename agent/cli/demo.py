"""`homecare-agent demo`: the whole product in under a minute, with no hardware and no config.

The full agent (the same state machines, signing, outbox and publisher as ``run``)
runs on mock pins through a scripted scenario — an SOS press, a door opened and
closed, wind rattling the door, a smoke alarm that clears — with a throw-away device
key and state folder. If a broker answers on ``localhost:1883`` the demo also plays
the care centre: it subscribes, checks each event's signature, and acknowledges the
SOS with a signed ``ack`` command. Without a broker it shows the events being kept in
the outbox instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli.keygen import write_new_secret_file
from agent.config.model import Config, load_config
from agent.errors import ConfigError
from agent.record.events import Event
from drivers.timeline import parse_timeline

if TYPE_CHECKING:
    from agent.sim.simulation import SimulationResult

#: the scenario, in timeline seconds (docs/spec.md §8 format)
SCENARIO = """
- {at: 0.0,   sensor: sos,           level: inactive}
- {at: 2.0,   sensor: sos,           level: active}      # the resident presses SOS...
- {at: 3.5,   sensor: sos,           level: inactive}    # ...for 1.5 s
- {at: 5.0,   sensor: front_door,    level: active}      # the door opens
- {at: 9.0,   sensor: front_door,    level: inactive}    # and closes again
- {at: 12.0,  sensor: front_door,    level: active}      # wind rattles the door:
- {at: 12.08, sensor: front_door,    level: inactive}    #   80 ms and 50 ms blips,
- {at: 12.4,  sensor: front_door,    level: active}      #   shorter than the 500 ms
- {at: 12.45, sensor: front_door,    level: inactive}    #   open window: no event
- {at: 14.0,  sensor: kitchen_smoke, level: active}      # smoke alarm (continuous)
- {at: 19.0,  sensor: kitchen_smoke, level: inactive}    # clears 15 s later
"""

log = logging.getLogger("agent.demo")

_LED_WORDS = {"pending": "fast blink - alarm stored, not yet delivered",
              "sent": "slow blink - alarm delivered, waiting for the care centre",
              "acknowledged": "steady - the care centre acknowledged the alarm (buzzer off)",
              "idle": "off"}


def demo_config_path() -> Path:
    """config/demo.yaml from a checkout, or the copy installed under share/."""
    here = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
    if here.exists():
        return here
    return Path(sys.prefix) / "share" / "homecare-agent" / "demo.yaml"


def broker_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def print_recorded(events: Sequence[Event]) -> None:
    """The recorder's observer: one line per event, once the agent has signed and stored it."""
    for event in events:
        print(f"  signed+stored  {event.type:<18} sensor={event.sensor:<14} seq={event.seq:<5} "
              f"{event.prio}", flush=True)


class CareCentre:
    """The demo's stand-in for the cloud: subscribes, verifies, acknowledges the SOS."""

    def __init__(self, host: str, port: int, prefix: str, device_public: Any,
                 cloud_key: Ed25519PrivateKey, device_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from agent.record.signing import Verifier, ed25519_thumbprint

        self.prefix = prefix
        self.cloud_key = cloud_key
        self.device_id = device_id
        self.verifier = Verifier("EdDSA", device_public, kid=ed25519_thumbprint(device_public))
        self.received: List[Dict[str, Any]] = []
        self.acked = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-care-centre-" + uuid.uuid4().hex[:6])
        self.client.on_message = self._on_message
        self.client.connect(host, port, 30)
        self.client.subscribe(f"{prefix}/events/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            claims = self.verifier.verify(msg.payload.decode("ascii"))
        except Exception as exc:
            print(f"  care centre    REJECTED a message on {msg.topic}: {exc}", flush=True)
            return
        self.received.append(claims)
        print(f"  care centre    received {claims['type']:<18} seq={claims['seq']:<5} "
              f"signature OK", flush=True)
        if claims["type"] in ("sos.pressed", "smoke.alarm"):
            self.acked.set()
            token = self._sign_ack(claims["jti"])
            client.publish(f"{self.prefix}/commands", token, qos=1)
            print(f"  care centre    sends a signed `ack` for the {claims['type']}", flush=True)

    def _sign_ack(self, event_jti: str) -> str:
        import jwt

        now = int(time.time())
        return jwt.encode({"aud": self.device_id, "jti": str(uuid.uuid4()), "iat": now,
                           "exp": now + 300, "cmd": "ack", "in_reply_to": event_jti},
                          self.cloud_key, algorithm="EdDSA",
                          headers={"typ": "homecare-command+jwt"})

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def prepare(folder: Path, broker: str) -> Tuple[Config, Ed25519PrivateKey]:
    """Keys and config for a throw-away run in ``folder``."""
    device_key = Ed25519PrivateKey.generate()
    write_new_secret_file(str(folder / "device-key.pem"), device_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cloud_key = Ed25519PrivateKey.generate()
    (folder / "cloud-public.pem").write_bytes(cloud_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = load_config(demo_config_path(), environ={**os.environ, "HOMECARE_DEMO_DIR": str(folder)})
    host, _, port = broker.rpartition(":")
    if host not in ("", "localhost") and not host.startswith("127.") and host != "::1":
        raise ConfigError(f"demo --broker {broker}: the demo talks plaintext MQTT, so only to a "
                          "broker on this machine", hint="use localhost:PORT")
    mqtt = dataclasses.replace(config.mqtt, host=host or "localhost", port=int(port),
                               ack_timeout_s=5.0)
    return dataclasses.replace(config, mqtt=mqtt), cloud_key


def print_summary(result: "SimulationResult", centre: Optional[CareCentre], led: str) -> None:
    print()
    print(f"summary: {result.recorded} events signed and stored; {result.delivered} "
          f"delivered (PUBACK); {result.buffered} still buffered on disk")
    if centre is not None:
        print(f"         the care centre verified {len(centre.received)} events and "
              f"{'acknowledged the alarms' if centre.acked.is_set() else 'saw no alarm'}")
    else:
        print("         no broker: a real gateway keeps these until the broker is back "
              "(start one with `mosquitto` and run the demo again to see delivery)")
    print(f"         the gateway's LED shows: {_LED_WORDS.get(led, led)}")
    print("         (ts of each event is scenario time on a virtual clock; seq only ever grows)")


def main(args: argparse.Namespace) -> int:
    from agent.record.signing import load_signing_key
    from agent.sim.simulation import Simulation

    folder = Path(tempfile.mkdtemp(prefix="homecare-demo-"))
    try:
        config, cloud_key = prepare(folder, args.broker)
        online = broker_answers(config.mqtt.host, config.mqtt.port)
        print(f"homecare-agent demo: mock pins, throw-away key and state in {folder}")
        print(f"  broker {config.mqtt.host}:{config.mqtt.port}: "
              f"{'answers - events will be delivered' if online else 'not answering - events will be buffered on disk'}")
        print(f"  scenario: SOS press, door open/close, wind rattle (ignored), smoke alarm and clear; "
              f"{args.speed:g}x speed\n", flush=True)
        logging.getLogger("agent").setLevel(logging.WARNING)
        logging.getLogger("agent.record.counters").setLevel(logging.ERROR)   # a fresh folder is expected
        centre = None
        if online:
            key = load_signing_key(folder / "device-key.pem")
            centre = CareCentre(config.mqtt.host, config.mqtt.port, config.mqtt.topic_prefix,
                                key.public_key(), cloud_key, config.device.id)  # type: ignore[union-attr]
        entries = parse_timeline(SCENARIO, "demo scenario", [s.name for s in config.sensors])
        sim = Simulation(config, entries, speed=args.speed)
        sim.agent.loop.recorder.on_recorded = print_recorded
        if not online:
            logging.getLogger("agent.publisher").setLevel(logging.ERROR)
        result = sim.run(timeout_s=40.0, wait_for_delivery=online)
        if centre is not None:
            time.sleep(0.3)   # the last PUBACKed events reach the care centre's client
            centre.close()
        print_summary(result, centre, sim.agent.feedback.phase)
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
