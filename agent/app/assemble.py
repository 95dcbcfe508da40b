"""The runtime pieces made from the checked config, each in this one place.

Most pieces take their config value as it is (``config.buffer`` is the outbox's
``OutboxLimits``, ``config.care`` the rules' ``CareSettings``, a sensor's ``flapping``
the drivers' ``FlappingPolicy``). What is left to build is here: the publisher's
``LinkSettings`` (it also holds the password read from its file, which the config never
does), the care rules with their time zone, and a sensor's state machine.
"""
from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from agent.config.schema import Config, SensorConfig
from agent.delivery.link import LinkSettings, TlsSettings
from agent.delivery.window import WindowSettings
from agent.rules.activity import Rule
from agent.rules.care import CareRules, DailyWindow
from agent.rules.doors import DoorLeftOpenRule, NightExitRule
from agent.rules.inactivity import inactivity_rule
from agent.rules.mode import HOME, ModeGate
from drivers.door import DoorContact
from drivers.motion import MotionSensor
from drivers.power import BatteryMonitor, MainsMonitor, RandomSource
from drivers.smoke import SmokeDetector
from drivers.sos import SosButton
from drivers.tamper import TamperSwitch

Machine = Union[SosButton, DoorContact, SmokeDetector, TamperSwitch, MainsMonitor, BatteryMonitor,
                MotionSensor]

#: the state machine of each config ``kind``
MACHINES: Mapping[str, Callable[..., Machine]] = {
    "sos_button": SosButton, "door": DoorContact, "smoke": SmokeDetector,
    "tamper": TamperSwitch, "mains": MainsMonitor, "battery": BatteryMonitor,
    "motion": MotionSensor}


def state_machine(sensor: SensorConfig, *, rand: Optional[RandomSource] = None) -> Machine:
    """A new state machine for ``sensor``, with its kind's timing and its flapping policy.

    ``rand`` is a mains monitor's jitter source (docs/spec.md §13.1); None = a generator
    seeded by the operating system, so that no two gateways share a sequence.
    """
    extra: Dict[str, Any] = {}
    if sensor.kind == "mains":
        extra["rand"] = rand if rand is not None else random.SystemRandom().random
    elif sensor.pin_nc is not None:   # a Form C smoke sensor (docs/spec.md §13.2)
        extra.update(supervised=True, wiring_fault_ms=sensor.wiring_fault_ms, active=sensor.active)
    return MACHINES[sensor.kind](sensor.name, flapping=sensor.flapping, **sensor.timing(), **extra)


def link_settings(config: Config, password: Optional[str]) -> LinkSettings:
    """The publisher's settings: ``config.mqtt``, ``commands.enabled`` and the password."""
    m = config.mqtt
    tls = None if m.tls is None else TlsSettings(
        ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file,
        verify=not m.tls.insecure_skip_verify)
    return LinkSettings(
        host=m.host, port=m.port, more_endpoints=m.more_endpoints,
        client_id=m.client_id, topic_prefix=m.topic_prefix,
        protocol=m.protocol, keepalive_s=m.keepalive_s, tls=tls, username=m.username,
        password=password, subscribe_commands=config.commands.enabled,
        window=WindowSettings(max_inflight=m.max_inflight, ack_timeout_s=m.ack_timeout_s,
                              max_publish_rate=m.max_publish_rate))


def care_rules(config: Config, mode: str = HOME) -> ModeGate:
    """The care rules in ``device.timezone`` (else the system's zone), behind the away-mode
    gate (docs/spec.md §14.3), starting in ``mode``; a gate with no rules when all are off."""
    tz = _time_zone(config.device.timezone)
    v2, care = config.care_v2, config.care
    if v2.inactivity is not None:  # the v2 rule replaces care.py's own (or alerts come twice)
        care = dataclasses.replace(care, inactivity=dataclasses.replace(
            care.inactivity, enabled=False))
    night = DailyWindow(care.night_door.from_, care.night_door.to, tz)

    def make() -> List[Rule]:
        rules: List[Rule] = []
        if care.night_door.enabled or care.inactivity.enabled:
            rules.append(CareRules(care, tz))
        if v2.inactivity is not None:
            rules.append(inactivity_rule(v2.inactivity, tz))
        if v2.door_left_open is not None:
            rules.append(DoorLeftOpenRule(v2.door_left_open, night))
        if v2.night_exit is not None:
            rules.append(NightExitRule(v2.night_exit, night))
        return rules
    return ModeGate(make, mode=mode)


def time_zone(name: Optional[str]) -> tzinfo:
    """``device.timezone`` as a zone with its DST rules; None: the system's zone."""
    return _time_zone(name)


def _time_zone(name: Optional[str]) -> tzinfo:
    from zoneinfo import ZoneInfo

    if name:
        return ZoneInfo(name)
    try:  # the system's zone, with its DST rules (not just today's offset)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or timezone.utc  # always aware, in fact
