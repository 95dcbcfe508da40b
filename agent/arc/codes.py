"""Which events go to the ARC, and as which code (docs/spec.md §12.2; sans-IO).

Theory of operation: an event type maps to a :class:`Code` in one of two tables,
ADM-CID (Contact ID: qualifier ``1`` new / ``3`` restore and a three-digit event code)
or SIA-DCS (a two-letter SIA code, where new and restore are two codes). ``arc.codes``
overrides replace table entries per event type. ``arc.events`` picks which of the
coded types are sent at all (:func:`selected`). :func:`message_for` turns one event's
type, sensor, time and ``jti`` into the :class:`agent.arc.codec.ArcMessage` the codec
frames; the zone is the sensor's 1-based position in ``sensors`` (``000`` for the agent).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Mapping, Optional, Tuple

FORMATS = ("ADM-CID", "SIA-DCS")
EVENT_CLASSES = ("alarms", "critical", "all")

_ADM_RE = re.compile(r"[136] [0-9]{3}\Z")
_SIA_RE = re.compile(r"[A-Z]{2}\Z")


@dataclass(frozen=True)
class Code:
    """One code: ADM-CID ``qualifier`` 1/3/6 + ``code`` of 3 digits; SIA-DCS ``code`` of 2 letters."""

    format: str
    code: str
    qualifier: str = ""

    def __post_init__(self) -> None:
        text = self.text
        if self.format == "ADM-CID" and not _ADM_RE.match(text):
            raise ValueError(f"ADM-CID code {text!r} must be a qualifier (1 new, 3 restore, "
                             f"6 status) and three digits, e.g. \"1 150\"")
        if self.format == "SIA-DCS" and (self.qualifier or not _SIA_RE.match(self.code)):
            raise ValueError(f"SIA-DCS code {text!r} must be two capital letters, e.g. \"UA\"")
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")

    @property
    def text(self) -> str:
        """As written in ``arc.codes`` and docs/integrators.md: ``1 101`` or ``QA``."""
        return f"{self.qualifier} {self.code}" if self.qualifier else self.code

    @classmethod
    def parse(cls, format: str, text: str) -> "Code":
        """``"1 150"`` (ADM-CID) or ``"UA"`` (SIA-DCS); ValueError says the expected form."""
        if format == "ADM-CID":
            qualifier, _, code = text.partition(" ")
            return cls(format, code, qualifier or "?")
        return cls(format, text)


#: per event type: docs/spec.md §12.2's ADM-CID code and the project's SIA-DCS code
#: (SIA DC-03 codes; docs/integrators.md lists both). One row per type, so the two
#: formats always code the same events.
_CODES: Mapping[str, Tuple[str, str]] = {
    "sos.pressed": ("1 101", "QA"),
    "smoke.alarm": ("1 111", "FA"), "smoke.cleared": ("3 111", "FH"),
    "tamper.opened": ("1 137", "TA"), "tamper.closed": ("3 137", "TR"),
    "sensor.stuck": ("1 380", "UT"), "sensor.fault": ("1 380", "UT"),
    "sensor.recovered": ("3 380", "UJ"),
    "care.night_door": ("1 150", "UA"), "care.door_left_open": ("1 150", "UA"),
    "care.not_returned": ("1 150", "UA"),
    "power.mains_lost": ("1 301", "AT"), "power.mains_restored": ("3 301", "AR"),
    "power.battery_low": ("1 302", "YT"), "power.battery_ok": ("3 302", "YR"),
    "care.inactivity": ("1 641", "NA"), "care.activity_resumed": ("3 641", "UH"),
    "agent.test": ("1 602", "RP"),
}
ADM_CID: Mapping[str, Code] = {t: Code.parse("ADM-CID", adm) for t, (adm, _) in _CODES.items()}
SIA_DCS: Mapping[str, Code] = {t: Code.parse("SIA-DCS", sia) for t, (_, sia) in _CODES.items()}

#: docs/spec.md §11's alarm-opening events and the restores §12.2 names for ``events: alarms``
ALARM_TYPES: FrozenSet[str] = frozenset({
    "sos.pressed", "smoke.alarm", "sensor.stuck", "tamper.opened", "care.night_door",
    "care.inactivity", "care.door_left_open", "care.not_returned",
    "smoke.cleared", "tamper.closed", "care.activity_resumed", "sensor.recovered"})
#: ``events: critical`` adds power.* and sensor.fault (and any other critical event with a code)
CRITICAL_TYPES: FrozenSet[str] = ALARM_TYPES | frozenset({
    "power.mains_lost", "power.mains_restored", "power.battery_low", "power.battery_ok",
    "sensor.fault"})
#: never sent to the ARC, whatever the overrides: reminders (§11) and the ARC link's own events
NEVER: FrozenSet[str] = frozenset({"alarm.unacknowledged", "arc.link_lost", "arc.link_restored"})

@dataclass(frozen=True)
class ArcMessage:
    """What one event says to the ARC: its code, zone, partition, time and identity.

    ``occurred`` is the event's ``ts`` in Unix seconds (our clock); ``jti`` goes into
    SIA-DCS extended data (docs/integrators.md)."""

    code: Code
    zone: int
    occurred: float
    jti: str = ""
    partition: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.zone <= MAX_ZONE:
            raise ValueError(f"zone {self.zone} does not fit DC-09's three digits (0-{MAX_ZONE})")
        if not 0 <= self.partition <= 99:
            raise ValueError(f"partition {self.partition} does not fit two digits (0-99)")
        if any(c in self.jti for c in "[]|\r\n"):
            raise ValueError(f"jti {self.jti!r} contains a DC-09 delimiter")


#: the zone of the agent's own events (``agent.test``, care rules without a sensor)
AGENT_ZONE = 0
MAX_ZONE = 999


class CodeTable:
    """The table in force: the format's defaults with ``arc.codes`` overrides on top."""

    def __init__(self, format: str, overrides: Optional[Mapping[str, str]] = None) -> None:
        if format not in FORMATS:
            raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
        self.format = format
        table = dict(ADM_CID if format == "ADM-CID" else SIA_DCS)
        for event_type, text in (overrides or {}).items():
            table[event_type] = Code.parse(format, text)
        self._table = table

    def code(self, event_type: str) -> Optional[Code]:
        return None if event_type in NEVER else self._table.get(event_type)

    def items(self) -> Tuple[Tuple[str, Code], ...]:
        return tuple(sorted(self._table.items()))


def selected(events: str, event_type: str, critical: bool, table: CodeTable) -> bool:
    """Whether ``arc.events`` (alarms | critical | all) sends this event type."""
    if table.code(event_type) is None:
        return False
    if events == "alarms":
        return event_type in ALARM_TYPES
    if events == "critical":
        return event_type in CRITICAL_TYPES or critical
    if events == "all":
        return True
    raise ValueError(f"events {events!r} is not one of {', '.join(EVENT_CLASSES)}")


def zones(sensor_names: Tuple[str, ...]) -> Dict[str, int]:
    """Sensor name -> its 1-based position in ``sensors`` (the zone of its events)."""
    if len(sensor_names) > MAX_ZONE:
        raise ValueError(f"{len(sensor_names)} sensors: DC-09 zones have three digits "
                         f"(at most {MAX_ZONE})")
    return {name: i for i, name in enumerate(sensor_names, 1)}


def zone_of(sensor: str, zone_map: Mapping[str, int]) -> int:
    """The sensor's zone; the agent and a sensor no longer configured (an old row) are 000."""
    return zone_map.get(sensor, AGENT_ZONE)


def message_for(table: CodeTable, zone_map: Mapping[str, int], *, type: str, sensor: str,
                occurred: float, jti: str) -> Optional[ArcMessage]:
    """The ARC message for one event, or None when the table has no code for its type."""
    code = table.code(type)
    if code is None:
        return None
    return ArcMessage(code, zone_of(sensor, zone_map), occurred, jti)
