"""What the sensor state machines emit: :class:`SensorEvent`.

A ``SensorEvent`` is a plain value. The agent turns it into a signed event (docs/spec.md §4):
``type`` and ``sensor`` become the claims of the same name, ``critical`` becomes
``prio``, ``data`` becomes ``data``, and ``at`` (monotonic seconds, the instant the
debounce window completed) is mapped to the wall-clock ``ts``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, FrozenSet, Mapping

#: docs/spec.md §3 priorities for sensor events (care rules may raise other critical events),
#: and the supervision inputs' of docs/spec.md §13.1-13.2. A tamper switch lowers
#: ``tamper.opened`` to normal during maintenance (drivers/tamper.py).
CRITICAL_TYPES: FrozenSet[str] = frozenset(
    {"sos.pressed", "smoke.alarm", "smoke.cleared", "sensor.stuck",
     "tamper.opened", "power.mains_lost", "power.battery_low", "sensor.fault"}
)

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
#: a sensor or device name (it is part of every topic and event): the one definition,
#: which the config check and the event claims use too
NAME_PATTERN = r"[A-Za-z0-9._-]+"
_NAME_RE = re.compile(NAME_PATTERN)


def is_event_type(value: object) -> bool:
    """True for a dotted lower-case type such as ``door.opened`` or ``care.night_door``."""
    return isinstance(value, str) and _TYPE_RE.fullmatch(value) is not None


def is_name(value: object) -> bool:
    """True for a non-empty string of letters, digits, '.', '_' and '-' only."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def is_critical(event_type: str) -> bool:
    """True for the event types docs/spec.md §3 and docs/spec.md §13 list as ``critical``."""
    return event_type in CRITICAL_TYPES


@dataclass(frozen=True)
class SensorEvent:
    """One thing a sensor did, as recognised by its state machine.

    ``type``: e.g. ``"sos.pressed"``, ``"door.opened"``, ``"sensor.flapping"``.
    ``sensor``: the configured sensor name. ``at``: monotonic seconds at which the
    event was recognised (when its window completed, not when the loop noticed).
    ``data``: the event's details (``state``, ``initial``, ``held_ms``, ``pattern``,
    ...), stored read-only. ``critical``: docs/spec.md §3 priority.
    """

    type: str
    sensor: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = False

    def __post_init__(self) -> None:
        if not is_event_type(self.type):
            raise ValueError(f"event type {self.type!r} must look like 'kind.what' (lower case, dotted)")
        if not is_name(self.sensor):
            raise ValueError(f"sensor name {self.sensor!r} may contain only [A-Za-z0-9._-]")
        if isinstance(self.at, bool) or not isinstance(self.at, (int, float)) or not math.isfinite(self.at):
            raise ValueError(f"event time {self.at!r} must be a finite number of seconds")
        if not isinstance(self.critical, bool):
            raise ValueError(f"critical must be True or False, not {self.critical!r}")
        if not isinstance(self.data, Mapping) or not all(isinstance(k, str) for k in self.data):
            raise ValueError("data must be a mapping with string keys")
        object.__setattr__(self, "at", float(self.at))
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))
