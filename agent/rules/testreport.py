"""When the periodic test report is due (docs/spec.md §13.3), with no I/O.

Theory of operation
-------------------
A report day is a local date (``device.timezone``) whose day number (proleptic
Gregorian ordinal) is a multiple of ``every_days``, so the days stay the same across
restarts. On such a day the report is due at the first instant the local clock reads
``at`` (a time the DST change skips is taken at the jump, one it repeats at its first
pass: :func:`agent.rules.clock._first_instant_at`, as the care rules do), plus a fixed
per-device offset in [0, 3600) s (:func:`device_offset_s`, from a hash of the device id)
so that a fleet does not report in the same minute. The offset is real seconds after
that instant.

:class:`TestReportSchedule` keeps the next due time as a wall time and is advanced with
``(now, wall)``: ``next_deadline()`` is monotonic, placed with the latest ``wall - now``.
A wall clock that jumps past one or more due times (a Pi without RTC getting its time)
sends one report, not one per missed period; the next is then the first due time after
the new wall clock.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Optional

from agent.rules.clock import _first_instant_at

__all__ = ["TestReportSettings", "TestReportSchedule", "device_offset_s", "MAX_EVERY_DAYS"]

#: the longest period between two reports (DSC panels default to 30 days)
MAX_EVERY_DAYS = 365
#: the per-device offsets lie in [0, OFFSET_RANGE_S)
OFFSET_RANGE_S = 3600
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class TestReportSettings:
    """``test_report:`` (docs/spec.md §13.3); the defaults are the spec's."""

    __test__ = False   # not a pytest test class, whatever its name says

    at: str = "10:00"
    every_days: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.at, str) or not _HHMM.match(self.at):
            raise ValueError(f'test_report.at {self.at!r} is not "HH:MM" on the 24-hour clock')
        if (not isinstance(self.every_days, int) or isinstance(self.every_days, bool)
                or not 1 <= self.every_days <= MAX_EVERY_DAYS):
            raise ValueError(f"test_report.every_days {self.every_days!r} must be an integer "
                             f"1-{MAX_EVERY_DAYS}")

    @property
    def time_of_day(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))


def device_offset_s(device_id: str) -> int:
    """The device's fixed offset in [0, 3600) s: the same id always gives the same one."""
    digest = hashlib.sha256(device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % OFFSET_RANGE_S


class TestReportSchedule:
    """The next ``agent.test`` due time (module docstring); time is an argument."""

    __test__ = False

    def __init__(self, settings: TestReportSettings, tz: tzinfo, offset_s: float) -> None:
        if not 0 <= offset_s < OFFSET_RANGE_S:
            raise ValueError(f"offset_s {offset_s!r} must be in [0, {OFFSET_RANGE_S})")
        self.settings, self.tz, self.offset_s = settings, tz, float(offset_s)
        self.due_wall: Optional[float] = None
        self._wall_minus_now = 0.0

    def __repr__(self) -> str:
        return (f"TestReportSchedule(at={self.settings.at!r}, every_days={self.settings.every_days}, "
                f"offset_s={self.offset_s:g}, due_wall={self.due_wall})")

    def advance(self, now: float, wall: float) -> bool:
        """True when a report is due at ``wall`` (then the next one is scheduled)."""
        self._wall_minus_now = wall - now
        if self.due_wall is None:
            self.due_wall = self.next_after(wall)
            return False
        if wall < self.due_wall:
            return False
        self.due_wall = self.next_after(max(wall, self.due_wall))
        return True

    def next_deadline(self) -> Optional[float]:
        """Monotonic seconds of the next report (None before the first ``advance``)."""
        return None if self.due_wall is None else self.due_wall - self._wall_minus_now

    def next_after(self, wall: float) -> float:
        """The first due time strictly after ``wall``."""
        day = datetime.fromtimestamp(wall, self.tz).date() - timedelta(days=1)
        for _ in range(self.settings.every_days + 3):
            if day.toordinal() % self.settings.every_days == 0:
                due = self.due_on(day)
                if due > wall:
                    return due
            day += timedelta(days=1)
        raise AssertionError("unreachable: a report day lies within every_days + 2 days")

    def due_on(self, day: date) -> float:
        """The due time (epoch seconds) on local ``day``."""
        local = datetime.combine(day, self.settings.time_of_day)
        return _first_instant_at(local, self.tz) + self.offset_s
