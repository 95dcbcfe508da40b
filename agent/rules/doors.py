"""Door rules (docs/spec.md §14.2): a door left open; out at night and not back.

Theory of operation
-------------------
:class:`DoorLeftOpenRule` -- each door's opening (the start-up report included: a
door open at boot is open) starts a clock; ``minutes`` later, if it is still open,
``care.door_left_open`` (critical). With ``night_only`` the alert waits until the
instant is inside the ``night_door`` window: a door open since 21:00 with a
22:00-06:00 window alerts at 22:00. One event per opening; closing clears it.

:class:`NightExitRule` -- a door opened *and* closed inside the ``night_door``
window (no start-up report) starts a wait of ``return_min`` minutes; motion
(``motion.detected``) or the door opening again ends it; otherwise
``care.not_returned`` (critical) at its end: the resident probably went out and
has not come back.

Both take the night window as a :class:`~agent.rules.care.DailyWindow` built from
the ``night_door`` settings (the window applies whether or not that rule is on), so
its defaults live in one place. Durations are monotonic; window membership uses
``wall`` (DST as in care.py). ``data.clock_synced`` is the flag of the calls that
placed the event in (or out of) the window.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Dict, List, Optional, Tuple

from agent.errors import ConfigError

from .activity import TOLERANCE_S, interval_at
from .care import CareEvent, ObservedEvent
from .clock import DailyWindow, _utc_ts

__all__ = ["DoorLeftOpenRule", "DoorLeftOpenSettings", "NightExitRule", "NightExitSettings"]

_MAX_MIN = 1440.0  # a day


def _minutes(value: object, where: str, example: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value <= _MAX_MIN):
        raise ConfigError(f"{where}: {value!r} is out of range",
                          hint=f"give minutes above 0 and at most {_MAX_MIN:g} (e.g. {example})")


@dataclass(frozen=True)
class DoorLeftOpenSettings:
    """``care.door_left_open``: ``minutes`` open before an alert (default 10);
    ``night_only`` (default false): only inside the ``night_door`` window."""

    minutes: float = 10.0
    night_only: bool = False

    def __post_init__(self) -> None:
        _minutes(self.minutes, "care.door_left_open.minutes", "10")
        if not isinstance(self.night_only, bool):
            raise ConfigError(f"care.door_left_open.night_only: {self.night_only!r} is not true or false",
                              hint="write night_only: true to alert only inside the night_door window")


@dataclass(frozen=True)
class NightExitSettings:
    """``care.night_exit``: ``return_min`` minutes without motion after a night exit
    before ``care.not_returned`` (default 30)."""

    return_min: float = 30.0

    def __post_init__(self) -> None:
        _minutes(self.return_min, "care.night_exit.return_min", "30")


def _local(window: DailyWindow, wall: float) -> str:
    return datetime.fromtimestamp(wall, window.tz).isoformat(timespec="seconds")


class DoorLeftOpenRule:
    """``care.door_left_open`` (module docstring)."""

    def __init__(self, settings: DoorLeftOpenSettings, night: DailyWindow) -> None:
        self.settings, self._night = settings, night
        self._open: Dict[str, Tuple[float, float]] = {}  # door -> (opened, due), monotonic
        self._offset = 0.0

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        out = self.advance(now, wall, clock_synced)
        if event.type == "door.opened" and event.sensor not in self._open:
            self._open[event.sensor] = (now, now + self.settings.minutes * 60.0)
        elif event.type == "door.closed":
            self._open.pop(event.sensor, None)
        return out

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        self._offset = offset = wall - now
        out: List[CareEvent] = []
        for door, (opened, due) in sorted(self._open.items()):
            if due > now + TOLERANCE_S:
                continue
            if self.settings.night_only and not self._night.contains(due + offset):
                start = interval_at(self._night, due + offset)[0] - offset
                self._open[door] = (opened, start)  # wait for the night
                if start > now + TOLERANCE_S:
                    continue
                due = start
            self._open[door] = (opened, float("inf"))  # one event per opening
            at = min(due, now)
            out.append(CareEvent("care.door_left_open", door, at, {
                "door": door, "open_s": round(at - opened, 3),
                "minutes": self.settings.minutes, "night_only": self.settings.night_only,
                "window": self._night.label if self.settings.night_only else None,
                "local_time": _local(self._night, at + offset), "clock_synced": clock_synced}))
        return out

    def next_deadline(self) -> Optional[float]:
        due = [d for _, d in self._open.values() if d != float("inf")]
        if not due:
            return None
        soonest = min(due)
        if self.settings.night_only and not self._night.contains(soonest + self._offset):
            return max(soonest, interval_at(self._night, soonest + self._offset)[0] - self._offset)
        return soonest


class NightExitRule:
    """``care.night_exit`` -> ``care.not_returned`` (module docstring)."""

    def __init__(self, settings: NightExitSettings, night: DailyWindow) -> None:
        self.settings, self._night = settings, night
        self._opened: Dict[str, float] = {}   # door -> wall time it opened inside the window
        self._watch: Optional[Tuple[str, float, float, bool]] = None  # door, exit wall, due, synced

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        out = self.advance(now, wall, clock_synced)
        if event.data.get("initial") is True:
            return out  # a start-up report is no exit
        inside = self._night.contains(wall)
        if event.type == "door.opened":
            self._watch = None  # back in, or a new exit that counts once it closes
            if inside:
                self._opened[event.sensor] = wall
            else:
                self._opened.pop(event.sensor, None)
        elif event.type == "door.closed" and event.sensor in self._opened:
            exit_at = self._opened.pop(event.sensor)
            if inside:
                due = now + self.settings.return_min * 60.0
                self._watch = (event.sensor, exit_at, due, clock_synced)
        elif event.type == "motion.detected":
            self._watch = None  # someone is inside
        return out

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        if self._watch is None or self._watch[2] > now + TOLERANCE_S:
            return []
        door, exit_at, due, synced = self._watch
        self._watch = None
        at = min(due, now)
        return [CareEvent("care.not_returned", door, at, {
            "door": door, "exit_at": _utc_ts(exit_at), "return_min": self.settings.return_min,
            "window": self._night.label, "local_time": _local(self._night, wall - (now - at)),
            "clock_synced": synced and clock_synced})]

    def next_deadline(self) -> Optional[float]:
        return None if self._watch is None else self._watch[2]
