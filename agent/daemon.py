"""Putting the agent together from a config, and taking it apart again.

:meth:`Agent.build` checks everything that can be checked before touching GPIO (keys,
secret files, the command key), opens the state (counters, outbox), claims the pins,
and wires the pieces so that data flows one way:

    EdgeInput -> AgentLoop (state machines, care rules) -> Recorder (sign, commit)
      -> Publisher (MQTT) -> PUBACK -> outbox delete

:meth:`Agent.close` undoes it in the safe order: stop taking edges, let the publisher
flush for a few seconds, close the outbox cleanly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from agent import __version__
from agent.care import CareRules, CareSettings, InactivitySettings, NightDoorSettings
from agent.command_handler import CommandHandler
from agent.command_keys import load_command_verifier
from agent.command_policy import CommandPolicy
from agent.command_store import CommandStore
from agent.config import Config
from agent.counters import Counters
from agent.delivery import WindowSettings
from agent.events import clock_synchronised
from agent.feedback import Feedback
from agent.loop import AgentLoop, Stop
from agent.outbox import Outbox
from agent.outbox_policy import OutboxLimits
from agent.pipeline import AgentEvent, Clocks, OutboxSource, Recorder
from agent.publisher import LinkSettings, Publisher, TlsSettings
from agent.sdnotify import Notifier
from agent.errors import ConfigError, SecretFileError
from agent.logs import register_secret
from agent.secretfiles import check_secret_file, read_secret_file
from agent.signing import Signer
from drivers.debounce import FlappingPolicy
from drivers.door import DoorContact
from drivers.outputs import Buzzer, Led
from drivers.pins import EdgeInput, make_pin_factory
from drivers.smoke import SmokeDetector
from drivers.sos import SosButton

log = logging.getLogger("agent")

_MACHINES = {"sos_button": SosButton, "door": DoorContact, "smoke": SmokeDetector}
STATUS_FILE = "status.json"
OUTBOX_FILE = "outbox.sqlite3"


def link_settings(config: Config, password: Optional[str]) -> LinkSettings:
    m = config.mqtt
    tls = None if m.tls is None else TlsSettings(
        ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file,
        verify=not m.tls.insecure_skip_verify)
    return LinkSettings(
        host=m.host, port=m.port, client_id=m.client_id, topic_prefix=m.topic_prefix,
        protocol=m.protocol, keepalive_s=m.keepalive_s, tls=tls, username=m.username,
        password=password, subscribe_commands=config.commands.enabled,
        window=WindowSettings(max_inflight=m.max_inflight, ack_timeout_s=m.ack_timeout_s,
                              max_publish_rate=m.max_publish_rate))


def care_rules(config: Config) -> Optional[CareRules]:
    care = config.care
    if not (care.night_door.enabled or care.inactivity.enabled):
        return None
    from zoneinfo import ZoneInfo
    from datetime import datetime

    if config.device.timezone:
        tz: Any = ZoneInfo(config.device.timezone)
    else:  # the system's zone, with its DST rules (not just today's offset)
        try:
            with open("/etc/localtime", "rb") as f:
                tz = ZoneInfo.from_file(f, key="localtime")
        except (OSError, ValueError):
            tz = datetime.now().astimezone().tzinfo
    settings = CareSettings(
        night_door=NightDoorSettings(enabled=care.night_door.enabled,
                                     from_=care.night_door.from_, to=care.night_door.to),
        inactivity=InactivitySettings(enabled=care.inactivity.enabled,
                                      hours=care.inactivity.hours,
                                      from_=care.inactivity.from_, to=care.inactivity.to))
    return CareRules(settings, tz)


def config_digest(config: Config) -> str:
    try:
        return hashlib.sha256(Path(config.source).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unknown"


class Agent:
    """A running agent: pins, state machines, outbox, publisher and the loop that owns them."""

    def __init__(self) -> None:  # use Agent.build
        self.config: Config
        self.loop: AgentLoop
        self.publisher: Publisher
        self.outbox: Outbox
        self.counters: Counters
        self.inputs: Dict[str, EdgeInput] = {}
        self.feedback: Feedback
        self.commands: Optional[CommandHandler] = None
        self.commands_disabled_because: Optional[str] = None
        self.notifier: Notifier
        self._clock: Callable[[], float] = time.monotonic
        self._wall: Callable[[], float] = time.time
        self._status_written = ""
        self._status_due = 0.0
        self._closed = False

    @classmethod
    def build(cls, config: Config, *, pin_factory: Any = None,
              clock: Callable[[], float] = time.monotonic,
              wall: Callable[[], float] = time.time,
              synced: Callable[[], bool] = clock_synchronised,
              notifier: Optional[Notifier] = None) -> "Agent":
        self = cls()
        self.config = config
        self.notifier = notifier or Notifier.from_environ()
        self._clock, self._wall = clock, wall
        # 1. everything that can be refused, before any GPIO is touched
        signer = Signer.from_file(config.signing.key_file, algorithm=config.signing.algorithm,
                                  kid=config.signing.kid)
        password = None
        if config.mqtt.password_file is not None:
            password = read_secret_file(config.mqtt.password_file,
                                        what="mqtt.password_file").decode("utf-8").strip()
            register_secret(password)       # a second guard: masked if it ever reached a log
        if config.mqtt.tls is not None and config.mqtt.tls.key_file is not None:
            check_secret_file(config.mqtt.tls.key_file, what="mqtt.tls.key_file")
        if signer.algorithm == "HS256":
            register_secret(signer.key_material().decode("utf-8", "replace"))
        policy = None
        self.commands_disabled_because = None
        if config.commands.enabled:
            try:
                verifier = load_command_verifier(config.commands.algorithm,
                                                 config.commands.key_file,
                                                 device_key_material=signer.key_material())
            except SecretFileError:
                raise               # SPEC §4: a secret others can read is refused at start
            except ConfigError as exc:
                # An alarm gateway must not stay down for want of the *command* key: run
                # without commands, say so loudly, and report it in agent.started.
                log.error("commands disabled: %s", exc)
                self.commands_disabled_because = exc.message
            else:
                store = CommandStore(config.state_dir)
                policy = (CommandPolicy(device_id=config.device.id,
                                        algorithm=config.commands.algorithm,
                                        verify_signature=verifier, seen=store.load()), store)
        care = care_rules(config)
        # 2. state on disk
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.counters = Counters(config.state_dir)
        try:
            self.outbox = Outbox.open(
                config.state_dir / OUTBOX_FILE,
                OutboxLimits(max_events=config.buffer.max_events, max_mb=config.buffer.max_mb,
                             min_free_mb=config.buffer.min_free_mb),
                quarantine_dir=config.state_dir / "quarantine")
        except BaseException:
            self.counters.close()
            raise
        try:
            self._build_rest(config, signer, password, policy, care, pin_factory, synced)
        except BaseException:
            self.close(flush_timeout_s=0.0)
            raise
        return self

    def _build_rest(self, config: Config, signer: Signer, password: Optional[str],
                    policy: Any, care: Optional[CareRules], pin_factory: Any,
                    synced: Callable[[], bool]) -> None:
        clock, wall = self._clock, self._wall
        link = link_settings(config, password)
        if policy is None:
            link = dataclasses.replace(link, subscribe_commands=False)
        self.publisher = Publisher(link, OutboxSource(self.outbox),
                                   on_delivered=lambda ids: self.loop.submit_delivered(ids),
                                   on_command=lambda payload: self.loop.submit_command(payload))
        recorder = Recorder(device_id=config.device.id, topic_prefix=config.mqtt.topic_prefix,
                            signer=signer, counters=self.counters, outbox=self.outbox,
                            clocks=Clocks(wall_of=lambda at: wall() - (clock() - at),
                                          now_epoch=wall, synced=synced),
                            wake=self.publisher.wake,
                            max_payload_bytes=config.mqtt.max_payload_bytes)
        # 3. GPIO: outputs and inputs (the edge callbacks only enqueue)
        factory = pin_factory if pin_factory is not None else make_pin_factory(
            config.gpio.backend, chip=config.gpio.chip, board_revision=config.gpio.board_revision)
        outs = config.outputs
        self.feedback = Feedback(
            buzzer=Buzzer(outs.buzzer.pin, active=outs.buzzer.active, pin_factory=factory)
            if outs.buzzer else None,
            led=Led(outs.led.pin, active=outs.led.active, pin_factory=factory) if outs.led else None,
            patterns=outs.patterns)
        machines = {}
        for sensor in config.sensors:
            flapping = None if sensor.flapping is None else FlappingPolicy(
                sensor.flapping.max_edges, sensor.flapping.window_s, sensor.flapping.quiet_s)
            machines[sensor.name] = _MACHINES[sensor.kind](sensor.name, flapping=flapping,
                                                           **sensor.timing())
        if policy is not None:
            self.commands = CommandHandler(policy[0], policy[1], _Actions(self), wall=wall)
        started = {"boot": self.counters.boot, "config_digest": config_digest(config),
                   "device": config.device.id}
        if self.commands_disabled_because is not None:
            started["commands"] = f"disabled: {self.commands_disabled_because}"
        # the loop exists before any pin is claimed, so no early edge has nowhere to go
        self.loop = AgentLoop(
            machines=machines, pins=self.inputs, recorder=recorder, clock=clock, wall=wall,
            synced=synced, heartbeat_s=config.heartbeat_s, status=self.status_summary,
            care=care, commands=self.commands, feedback=self.feedback,
            watchdog=self.notifier, watchdog_s=self.notifier.watchdog_interval_s,
            on_turn=self._write_status, started_data=started)
        for sensor in config.sensors:
            self.inputs[sensor.name] = EdgeInput(
                sensor.name, sensor.pin, pull=sensor.pull, active=sensor.active,
                sink=self.loop.submit_edge, clock=clock, pin_factory=factory)

    # --- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """READY once the pins are claimed and the outbox is open; then go online."""
        self.notifier.ready(f"{len(self.inputs)} sensors, outbox open")
        self.loop.start()
        quarantined = self.outbox.quarantined
        if quarantined is not None:
            log.error("outbox %s was corrupt (%s); moved to %s and started afresh",
                      quarantined.path, quarantined.reason, ", ".join(quarantined.moved_to))
            self.loop.recorder.record([AgentEvent("buffer.quarantined", self._clock(),
                                                  quarantined.as_data(), critical=True)])
        if self.commands is not None and self.commands.store.quarantined is not None:
            log.error("seen-commands file was corrupt; moved to %s", self.commands.store.quarantined)
        self.publisher.start()

    def run(self) -> Stop:
        self.start()
        return self.loop.run()

    def close(self, flush_timeout_s: float = 3.0) -> bool:
        """Stop taking edges, flush for up to ``flush_timeout_s``, close the outbox.

        Returns True when everything stored was delivered."""
        if self._closed:
            return True
        self._closed = True
        self.notifier.stopping()
        for pin in self.inputs.values():
            pin.close()
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.accepting_edges = False
            if self.commands is not None:
                loop.record(self.commands.advance(self._clock(), final=True))
        flushed = False
        publisher = getattr(self, "publisher", None)
        if publisher is not None:
            flushed = publisher.stop(flush_timeout_s)
        feedback = getattr(self, "feedback", None)
        if feedback is not None:
            feedback.close()
        if loop is not None:
            self._write_status(self._clock(), force=True)
        self.outbox.close()
        self.counters.close()
        return flushed

    # --- status ---------------------------------------------------------------------------------
    def status_summary(self) -> Dict[str, Any]:
        link = self.publisher.status
        stats = self.outbox.stats()
        return {"connected": link.connected, "reconnects": link.reconnects,
                "outbox_depth": stats.depth, "outbox_critical": stats.critical.rows,
                "delivered": link.delivered, "inflight": link.inflight,
                "signature_failures": (self.commands.policy_failures()
                                       if self.commands is not None else 0)}

    def snapshot(self) -> Dict[str, Any]:
        link = self.publisher.status
        return {
            "pid": os.getpid(), "version": __version__, "device": self.config.device.id,
            "updated": time.time(),   # real time, also under simulate's virtual clock
            "link": {"connected": link.connected, "since": link.since,
                     "connects": link.connects, "reconnects": link.reconnects,
                     "stalls": link.stalls, "last_error": link.last_error,
                     "delivered": link.delivered, "rejected": link.rejected},
            "sensors": {name: {"state": m.state, "raw": m.raw}
                        for name, m in self.loop.machines.items()},
            "last_events": {name: {"type": e.type, "ts": e.ts, "seq": e.seq}
                            for name, e in self.loop.recorder.last_by_sensor.items()},
            "feedback": self.feedback.snapshot(),
        }

    def _write_status(self, now: float, *, force: bool = False) -> None:
        """Keep ``status.json`` in the state folder current, at most once a second."""
        if now < self._status_due and not force:
            return
        self._status_due = now + 1.0
        snap = self.snapshot()
        key = json.dumps({k: v for k, v in snap.items() if k != "updated"}, sort_keys=True)
        if key == self._status_written and not force:
            return
        self._status_written = key
        path = self.config.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snap, indent=1, sort_keys=True))
        os.replace(tmp, path)


class _Actions:
    """What accepted commands do, on this agent's outputs."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def ack(self, in_reply_to: Optional[str]) -> None:
        self._agent.feedback.ack(in_reply_to)

    def locate(self) -> None:
        self._agent.feedback.locate()

    def status(self) -> Dict[str, Any]:
        snap = self._agent.snapshot()
        return {"link": snap["link"], "sensors": snap["sensors"], "feedback": snap["feedback"]}
