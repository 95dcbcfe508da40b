"""The whole agent, in-process, on mock pins, against the real test mosquitto.

Theory of operation
-------------------
:func:`write_agent_files` makes what an installer would: a device key (Ed25519,
0600 PEM), a care-centre key pair (the test keeps the private half to sign commands;
the agent gets the public PEM), the MQTT password file (0600) for the broker's
``device`` user, and a config YAML whose state folder lives in the test's tmp folder.
:class:`AgentHarness` loads that file with :func:`agent.config.model.load_config` (so the
test goes through the same checks as ``homecare-agent run``), builds
:class:`agent.app.daemon.Agent` on the test's gpiozero ``MockFactory`` and runs
``agent.run()`` in a thread. The *cloud side* is two real MQTT clients with the
broker's ``consumer`` user: a :class:`tests.broker.Subscriber` on
``homecare/gw-test/#`` (started before the agent, so it sees every event) and a
:class:`tests.broker.Publisher` for commands. Events are checked with
:class:`agent.record.signing.Verifier` against the device's public key as they are read.

Example::

    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_event(type="sos.released", initial=True)       # start-up report
        h.pin(17).drive_low()                                  # press SOS
        alarm = h.wait_event(type="sos.pressed")
        h.send(h.sign("ack", in_reply_to=alarm["jti"]))
        done = h.wait_event(type="command.done")

``overrides`` (a nested dict) is merged into the config before it is written, e.g.
``AgentHarness(..., overrides={"care": {"night_door": {"enabled": True}}})``. Pins:
SOS on 17 (pull up, active low: ``drive_low`` presses), door ``front_door`` on 27
(pull down, active high: ``drive_high`` opens), buzzer on 5 and LED on 6 (active
high). Debounce windows are shortened so that tests stay fast.
"""
from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config.model import Config, load_config
from agent.app.daemon import Agent
from agent.app.sdnotify import Notifier
from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import write_keys
from tests.helpers import assert_unique_boot_seq
from tests.broker import MosquittoBroker, Publisher, Received, Subscriber

DEVICE_ID = "gw-test"
SOS_PIN, DOOR_PIN, BUZZER_PIN, LED_PIN = 17, 27, 5, 6
COMMAND_TYP = "homecare-command+jwt"


def merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` with ``over`` merged in, mappings recursively; a None value deletes the key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class AgentFiles:
    """What :func:`write_agent_files` wrote, and the keys behind it."""

    config_path: Path
    state_dir: Path
    device_key: Ed25519PrivateKey
    cloud_key: Ed25519PrivateKey


def base_config(broker: MosquittoBroker, folder: Path) -> Dict[str, Any]:
    """The harness's config as a dict (before overrides)."""
    return {
        "device": {"id": DEVICE_ID, "timezone": "UTC"},
        "state_dir": str(folder / "state"),
        "gpio": {"backend": "mock"},
        "sensors": [
            {"name": "sos", "kind": "sos_button", "pin": SOS_PIN, "pull": "up", "active": "low"},
            {"name": "front_door", "kind": "door", "pin": DOOR_PIN, "pull": "down",
             "active": "high", "open_ms": 50, "close_ms": 50},
        ],
        "outputs": {"buzzer": {"pin": BUZZER_PIN, "active": "high"},
                    "led": {"pin": LED_PIN, "active": "high"}},
        "mqtt": {"host": broker.host, "port": broker.plain_port, "tls": False,
                 "username": "device", "password_file": str(folder / "mqtt-password"),
                 "ack_timeout_s": 10},
        "signing": {"algorithm": "EdDSA", "key_file": str(folder / "device-key.pem")},
        "commands": {"enabled": True, "algorithm": "EdDSA",
                     "key_file": str(folder / "cloud-public.pem")},
        "heartbeat_s": 3600,
    }


def write_agent_files(broker: MosquittoBroker, folder: Path,
                      overrides: Optional[Mapping[str, Any]] = None) -> AgentFiles:
    """Keys, password file and ``config.yaml`` in ``folder`` (created) for ``broker``."""
    device_key, cloud_key = write_keys(folder, password=broker.users["device"])
    config = merge(base_config(broker, folder), overrides or {})
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return AgentFiles(path, Path(config["state_dir"]), device_key, cloud_key)


class AgentHarness:
    """An :class:`agent.app.daemon.Agent` running in a thread, plus the cloud side (module doc)."""

    def __init__(self, broker: MosquittoBroker, folder: Path, factory: Any, *,
                 overrides: Optional[Mapping[str, Any]] = None,
                 build: Optional[Callable[[Config], Agent]] = None) -> None:
        self.broker = broker
        self.factory = factory
        self.files = write_agent_files(broker, folder, overrides)
        self.config = load_config(self.files.config_path, environ={})
        self.verifier = Verifier("EdDSA", self.files.device_key.public_key(),
                                 kid=ed25519_thumbprint(self.files.device_key.public_key()))
        self._build = build or (lambda c: Agent.build(c, pin_factory=factory,
                                                      notifier=Notifier(None)))
        self.agent: Optional[Agent] = None
        self.subscriber: Optional[Subscriber] = None
        self.cloud: Optional[Publisher] = None
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    # --- life cycle -----------------------------------------------------------------------
    def start_cloud(self) -> None:
        """Connect the cloud side (again, e.g. after a broker restart: it does not reconnect
        by itself, and a new subscriber sees only what arrives from now on)."""
        self.subscriber = Subscriber(self.broker, f"homecare/{DEVICE_ID}/#")
        self.cloud = Publisher(self.broker, user="consumer")
        self.cloud.connect()

    def stop_cloud(self) -> None:
        for client in (self.subscriber, self.cloud):
            if client is not None:
                client.close()
        self.subscriber = self.cloud = None

    def start(self) -> "AgentHarness":
        self.start_cloud()
        self.agent = self._build(self.config)
        self._thread = threading.Thread(target=self._run, name="agent-under-test", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self.agent is not None
        try:
            self.agent.run()
        except BaseException as exc:  # reported by stop() and check_alive()
            self.error = exc

    def check_alive(self) -> None:
        """Raise if the agent's loop thread has died."""
        if self.error is not None:
            raise AssertionError(f"the agent's loop died: {self.error!r}") from self.error
        if self._thread is not None and not self._thread.is_alive():
            raise AssertionError("the agent's loop has stopped")

    def stop(self, flush_timeout_s: float = 1.0) -> bool:
        """Stop the loop, then close the agent (flush, outbox); True if all was delivered."""
        flushed = False
        if self.agent is not None and self._thread is not None:
            self.agent.loop.request_stop()
            self._thread.join(10.0)
            flushed = self.agent.close(flush_timeout_s)
            self._thread = None
        if self.subscriber is not None:   # whatever a test did, no (boot, seq) names two events
            assert_unique_boot_seq(self.events())
        self.stop_cloud()
        if self.error is not None:
            raise AssertionError(f"the agent's loop died: {self.error!r}") from self.error
        return flushed

    def __enter__(self) -> "AgentHarness":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the device side ------------------------------------------------------------------
    def pin(self, number: int) -> Any:
        """The gpiozero MockPin with that BCM number (``drive_low()``, ``.state``, ``.states``)."""
        return self.factory.pin(number)

    def sync(self, timeout: float = 5.0) -> None:
        """Return once the agent's loop has finished a turn that started after this call."""
        assert self.agent is not None
        done = threading.Event()
        self.agent.loop.submit_call(done.set)
        if not done.wait(timeout):
            self.check_alive()
            raise TimeoutError(f"the agent's loop did not turn within {timeout} s")

    # --- the cloud side ---------------------------------------------------------------------
    @property
    def commands_topic(self) -> str:
        return f"homecare/{DEVICE_ID}/commands"

    def claims(self, cmd: str, **over: Any) -> Dict[str, Any]:
        now = int(time.time())
        base: Dict[str, Any] = {"aud": DEVICE_ID, "jti": str(uuid.uuid4()), "iat": now,
                                "exp": now + 300, "cmd": cmd}
        base.update(over)
        return base

    def sign(self, cmd: str, *, key: Any = None, algorithm: str = "EdDSA",
             headers: Optional[Dict[str, Any]] = None, **claims: Any) -> bytes:
        """A command token signed with the care centre's key (or ``key``)."""
        return jwt.encode(self.claims(cmd, **claims), key or self.files.cloud_key,
                          algorithm=algorithm,
                          headers={"typ": COMMAND_TYP, **(headers or {})}).encode("ascii")

    def send(self, payload: bytes, timeout: float = 5.0) -> None:
        """Publish ``payload`` to the device's command topic at QoS 1; wait for the PUBACK."""
        assert self.cloud is not None
        mid = self.cloud.publish(self.commands_topic, payload, qos=1)
        rc = self.cloud.wait_puback(mid, timeout)
        if rc is None or rc.is_failure:
            raise AssertionError(f"the broker did not take the command: {rc}")

    def events(self) -> List[Dict[str, Any]]:
        """Every event received so far, verified, in arrival order (status messages skipped)."""
        assert self.subscriber is not None
        with self.subscriber._cond:
            received = list(self.subscriber.messages)
        return [self._verified(m) for m in received if "/events/" in m.topic]

    def _verified(self, message: Received) -> Dict[str, Any]:
        claims = self.verifier.verify(message.payload.decode("ascii"))
        expected = f"homecare/{DEVICE_ID}/events/{claims['sensor']}"
        if message.topic != expected:
            raise AssertionError(f"event {claims['type']} on {message.topic}, not {expected}")
        return claims

    def wait_events(self, predicate: Callable[[List[Dict[str, Any]]], bool],
                    timeout: float = 5.0, what: str = "events") -> List[Dict[str, Any]]:
        """All events so far once ``predicate(events)`` holds; AssertionError at ``timeout``."""
        assert self.subscriber is not None
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            self.check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; got "
                                     f"{[(e['type'], e['data']) for e in events]}")
            with self.subscriber._cond:
                self.subscriber._cond.wait(min(remaining, 0.2))

    def wait_event(self, *, type: str, timeout: float = 5.0, after: int = 0,
                   **data: Any) -> Dict[str, Any]:
        """The first event (from index ``after``) of ``type`` whose ``data`` has ``data``'s items."""
        def match(e: Dict[str, Any]) -> bool:
            return e["type"] == type and all(e["data"].get(k) == v for k, v in data.items())

        events = self.wait_events(lambda es: any(match(e) for e in es[after:]), timeout,
                                  f"{type} {data or ''}")
        return next(e for e in events[after:] if match(e))

    def command_answers(self) -> List[Dict[str, Any]]:
        return [e for e in self.events() if e["type"] in ("command.done", "command.rejected")]

    def send_and_answer(self, payload: bytes, timeout: float = 5.0) -> Dict[str, Any]:
        """Send a command and return the agent's next ``command.done``/``command.rejected``.

        Commands are answered in order, so the answer is the first one beyond those
        seen before sending (send one command at a time)."""
        before = len(self.command_answers())
        self.send(payload)
        self.wait_events(lambda es: len([e for e in es if e["type"].startswith("command.")])
                         > before, timeout, "answer to the command")
        return self.command_answers()[before]
