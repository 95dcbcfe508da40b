"""Maintenance mode (docs/spec.md §13.4): a technician's visit is not a tamper alarm.

Theory of operation
-------------------
The signed command ``maintenance`` with ``args: {minutes: M}`` (0-240) reaches
:meth:`Maintenance.command`. The period is a deadline on the monotonic clock::

    idle    --M>0-->  running (maintenance.started, data.until)
    running --M>0-->  running (restarted from now: maintenance.started again)
    running --M=0-->  idle    (maintenance.ended, data.by = command)
    running --deadline--> idle (maintenance.ended, data.by = expiry)
    idle    --M=0-->  idle    (nothing is sent)

While it runs the loop has every tamper switch in maintenance
(``TamperSwitch.set_maintenance``): their events are normal and open no alarm.
Nothing else is suppressed. This module only keeps the period; the shell
(``agent/app/maintenance.py``) saves it and tells the switches.

Restart: :meth:`to_data` saves the end as a wall time with the wall time of the save;
:meth:`restore` turns it back into a deadline as the alarm book does its reminders: a
wall clock behind the saved one (a Pi without RTC at boot) is taken to be at the saved
one, so a stale clock never lengthens the period (it can only fail to count the time the
agent was off), and a clock ahead ends it early, never late.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, List, Mapping, Optional

__all__ = ["MAX_MINUTES", "STARTED", "ENDED", "Maintenance", "MaintenanceEvent",
           "parse_maintenance_args"]

#: the longest period one command may ask for (docs/spec.md §13.4)
MAX_MINUTES = 240
STARTED, ENDED = "maintenance.started", "maintenance.ended"


def parse_maintenance_args(args: Mapping[str, Any]) -> int:
    """The ``maintenance`` command's ``args`` -> minutes; ValueError means ``bad_args``."""
    minutes = args.get("minutes")
    if (set(args) != {"minutes"} or not isinstance(minutes, int) or isinstance(minutes, bool)
            or not 0 <= minutes <= MAX_MINUTES):
        raise ValueError(f"args must be {{minutes: M}} with M an integer 0-{MAX_MINUTES}, "
                         f"not {dict(args)!r}")
    return minutes


def utc_ts(wall: float) -> str:
    """RFC 3339 UTC with milliseconds, as the ``ts`` claim (docs/spec.md §4)."""
    moment = datetime.fromtimestamp(round(wall, 3), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class MaintenanceEvent:
    """``maintenance.started`` / ``maintenance.ended``: an agent event, always normal."""

    type: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = False
    sensor: str = "agent"

    def __post_init__(self) -> None:
        if self.type not in (STARTED, ENDED) or self.critical:
            raise ValueError(f"a maintenance event is a normal {STARTED} or {ENDED}, "
                             f"not {self.type!r} (critical={self.critical})")


class Maintenance:
    """The maintenance period, with time as an argument (module docstring)."""

    def __init__(self) -> None:
        self._due: Optional[float] = None        # monotonic end
        self._until_wall: Optional[float] = None  # the end as data.until says it

    def __repr__(self) -> str:
        return f"Maintenance(until={self._until_wall})" if self.active else "Maintenance(idle)"

    @property
    def active(self) -> bool:
        return self._due is not None

    def command(self, minutes: int, now: float, wall: float) -> List[MaintenanceEvent]:
        """Start (or restart from ``now``) ``minutes`` of maintenance; 0 ends a running one."""
        if minutes == 0:
            return self._end(now, "command")
        self._due, self._until_wall = now + minutes * 60.0, wall + minutes * 60.0
        return [MaintenanceEvent(STARTED, now, {"until": utc_ts(self._until_wall),
                                                "minutes": minutes})]

    def advance(self, now: float) -> List[MaintenanceEvent]:
        """``maintenance.ended`` once the period is over."""
        if self._due is not None and now >= self._due:
            return self._end(self._due, "expiry")
        return []

    def next_deadline(self) -> Optional[float]:
        return self._due

    def _end(self, at: float, by: str) -> List[MaintenanceEvent]:
        if self._due is None:
            return []
        until = self._until_wall
        self._due = self._until_wall = None
        return [MaintenanceEvent(ENDED, at, {"by": by, "until": utc_ts(until or 0.0)})]

    def to_data(self, *, now: float, wall: float) -> Mapping[str, Any]:
        """JSON-ready; the end as a wall time (see :meth:`restore`)."""
        until = None if self._due is None else wall + (self._due - now)
        return {"v": 1, "saved": wall, "until": until}

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, now: float, wall: float) -> "Maintenance":
        """The inverse of :meth:`to_data`; an end already past is kept, to be ended (and
        reported) by the first :meth:`advance`. ValueError on a bad record."""
        if not isinstance(data, Mapping) or data.get("v") != 1:
            raise ValueError(f"not a version-1 maintenance record: {data!r}")
        saved, until = data.get("saved"), data.get("until")
        if not isinstance(saved, (int, float)) or isinstance(saved, bool) \
                or not (until is None or _number(until)):
            raise ValueError(f"saved/until must be numbers: {data!r}")
        made = cls()
        if until is not None:
            effective = max(wall, float(saved))     # a stale clock never lengthens it
            made._due = now + max(0.0, float(until) - effective)
            made._until_wall = float(until)
        return made


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
