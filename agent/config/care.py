"""The ``care:`` section: care.py's two rules (version 1) and the version-2 rules (§14).

A version-1 file (``night_door``, ``inactivity`` with ``enabled``/``hours``/``from``/``to``)
reads as before. ``care.inactivity.mode`` or ``warn_min`` switch the inactivity rule to
the version-2 one (:class:`~agent.rules.settings.InactivityRuleSettings`);
``door_left_open`` and ``night_exit`` are version-2 rules of their own. Checks that
need the sensors (a night exit needs a motion sensor; a warning is cancelled by a short
SOS press, so one needs ``hold_ms``) are here too, with the file position of the key.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from agent.config.fields import SECRET_HINTS
from agent.config.reader import MapReader, Sink, as_bool, as_choice, as_hhmm, as_number
from agent.config.schema import SensorConfig
from agent.rules.care import MAX_HOURS, CareSettings, InactivitySettings, NightDoorSettings
from agent.rules.doors import DoorLeftOpenSettings, NightExitSettings
from agent.rules.settings import MODES, CareRulesV2, InactivityRuleSettings

__all__ = ["read_care"]

_MINUTES = as_number(unit="minutes", above=0, hi=1440)
_MIN_CONTINUOUS_H = 0.5  # docs/spec.md §14.1 (InactivityRuleSettings checks it too)


def read_care(top: MapReader, sink: Sink,
              sensors: Sequence[SensorConfig]) -> Tuple[CareSettings, CareRulesV2]:
    c = top.section("care", ("night_door", "inactivity", "door_left_open", "night_exit"),
                    hints=SECRET_HINTS)
    night = _night_door(c, sink)
    i = c.section("inactivity", ("enabled", "hours", "from", "to", "mode", "warn_min"),
                  hints=SECRET_HINTS)
    d = InactivitySettings
    inactivity = InactivitySettings(
        enabled=i.get("enabled", as_bool, d.enabled),
        hours=i.get("hours", as_number(hi=MAX_HOURS, unit="hours", above=0), d.hours),
        from_=i.get("from", as_hhmm, d.from_), to=i.get("to", as_hhmm, d.to))
    v2 = CareRulesV2(inactivity=_inactivity_v2(i, sink, inactivity, sensors),
                     door_left_open=_door_left_open(c),
                     night_exit=_night_exit(c, sink, sensors))
    return CareSettings(night_door=night, inactivity=inactivity), v2


def _night_door(c: MapReader, sink: Sink) -> NightDoorSettings:
    n = c.section("night_door", ("enabled", "from", "to"), hints=SECRET_HINTS)
    before = len(sink.problems)
    night = NightDoorSettings(enabled=n.get("enabled", as_bool, NightDoorSettings.enabled),
                              from_=n.get("from", as_hhmm, NightDoorSettings.from_),
                              to=n.get("to", as_hhmm, NightDoorSettings.to))
    if night.from_ == night.to and n.value_node("to") is not None and len(sink.problems) == before:
        sink.add(n.node_or_self("to"), n.sub("to"), f"from and to are both {night.to}: the "
                 f"night would be empty; e.g. from: \"{NightDoorSettings.from_}\", "
                 f"to: \"{NightDoorSettings.to}\"")
    return night


def _inactivity_v2(i: MapReader, sink: Sink, v1: InactivitySettings,
                   sensors: Sequence[SensorConfig]) -> Optional[InactivityRuleSettings]:
    d = InactivityRuleSettings
    mode = i.get("mode", as_choice(MODES), d.mode)
    warn_min = i.get("warn_min", as_number(0, 120, "minutes"), d.warn_min)
    if i.value_node("mode") is None and i.value_node("warn_min") is None:
        return None  # a version-1 file: care.py's own rule
    if mode == "continuous" and v1.hours < _MIN_CONTINUOUS_H:
        sink.add(i.node_or_self("hours"), i.sub("hours"), f"{v1.hours:g} is too short for "
                 f"continuous mode: give at least {_MIN_CONTINUOUS_H:g} hours")
        return None
    if mode == "check_in" and v1.from_ == v1.to:
        sink.add(i.node_or_self("to"), i.sub("to"), "a check-in window needs an end: give "
                 'from and to different times, e.g. from: "07:00", to: "11:00"')
        return None
    if warn_min > 0 and not any(s.kind == "sos_button" and s.hold_ms > 0 for s in sensors):
        sink.warn(i.node_or_self("warn_min"), i.sub("warn_min"), "no SOS button has "
                  "hold_ms > 0, so the resident's \"I'm fine\" press is also an SOS alarm; "
                  "give the button e.g. hold_ms: 1500")
    if not v1.enabled:
        return None
    return InactivityRuleSettings(mode=mode, hours=v1.hours, from_=v1.from_, to=v1.to,
                                  warn_min=warn_min)


def _door_left_open(c: MapReader) -> Optional[DoorLeftOpenSettings]:
    s = c.section("door_left_open", ("enabled", "minutes", "night_only"), hints=SECRET_HINTS)
    d = DoorLeftOpenSettings
    enabled = s.get("enabled", as_bool, False)
    settings = DoorLeftOpenSettings(minutes=s.get("minutes", _MINUTES, d.minutes),
                                    night_only=s.get("night_only", as_bool, d.night_only))
    return settings if enabled else None


def _night_exit(c: MapReader, sink: Sink,
                sensors: Sequence[SensorConfig]) -> Optional[NightExitSettings]:
    s = c.section("night_exit", ("enabled", "return_min"), hints=SECRET_HINTS)
    enabled = s.get("enabled", as_bool, False)
    settings = NightExitSettings(return_min=s.get("return_min", _MINUTES,
                                                  NightExitSettings.return_min))
    if enabled and not any(x.kind == "motion" for x in sensors):
        sink.add(s.node_or_self("enabled"), s.sub("enabled"), "night_exit needs a motion "
                 "sensor (kind: motion): without one a return cannot be seen; add one or "
                 "set enabled: false")
    return settings if enabled else None
