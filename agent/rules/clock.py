"""Local time for the care rules: daily windows in the home's time zone, with DST.

A window such as 22:00-06:00 is a set of intervals of real time, one per local day;
:class:`DailyWindow` finds them from the zone's own rules, so a night that is 23 or 25
hours long (the DST changes) is measured as it is, and a local time the clock skips or
repeats is taken at its first instant. Everything takes epoch seconds (``wall``) as an
argument: no clock is read here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Dict, Iterator, Optional, Tuple

from agent.errors import ConfigError

_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_TOLERANCE_S = 1e-3  # float slack when comparing a deadline with `now`
_MAX_DAYS = 200_000  # guard for loops stepping day by day (~550 years)


def _parse_hhmm(value: object, where: str) -> time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ConfigError(
            f"{where}: {value!r} is not a time of day",
            hint='write it as a quoted "HH:MM" string on the 24-hour clock, e.g. "22:00"',
        )
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class DailyWindow:
    """A local time-of-day window repeating every day, in one time zone.

    ``from_`` inclusive, ``to`` exclusive; crosses midnight when ``to < from_``;
    ``from_ == to`` is the whole day. Boundaries are the first instant the local
    clock reads that time (see the module docstring for DST days). All instants
    are epoch seconds.
    """

    def __init__(self, from_: str, to: str, tz: tzinfo) -> None:
        self.start = _parse_hhmm(from_, "window.from")
        self.end = _parse_hhmm(to, "window.to")
        self.tz = tz
        self.label = f"{from_}-{to}"
        self.whole_day = self.start == self.end
        self._boundaries: Dict[Tuple[date, time], float] = {}

    def __repr__(self) -> str:
        return f"DailyWindow({self.label!r}, tz={self.tz!s})"

    def contains(self, t: float) -> bool:
        """True if instant ``t`` lies inside the window."""
        for start, _end in self._intervals(t):
            return start <= t
        return False  # pragma: no cover - _intervals never ends

    def seconds_inside(self, a: float, b: float) -> float:
        """Seconds of ``[a, b)`` that lie inside the window."""
        if b <= a:
            return 0.0
        if self.whole_day:
            return b - a
        total = 0.0
        for start, end in self._intervals(a):
            if start >= b:
                break
            total += min(end, b) - max(start, a)
        return total

    def reach(self, a: float, need: float) -> float:
        """The instant at which ``need`` seconds inside the window have passed since ``a``."""
        if need <= 0:
            return a
        if self.whole_day:
            return a + need
        for start, end in self._intervals(a):
            start = max(start, a)
            if end - start >= need:
                return start + need
            need -= end - start
        raise AssertionError("unreachable")  # pragma: no cover

    def _intervals(self, t: float) -> Iterator[Tuple[float, float]]:
        """Window intervals ``(start, end)`` in time order, the first one ending after ``t``."""
        if self.whole_day:
            yield (float("-inf"), float("inf"))
            return
        day = datetime.fromtimestamp(t, self.tz).date() - timedelta(days=1)
        crosses = self.end < self.start
        for _ in range(_MAX_DAYS):
            start = self._boundary(day, self.start)
            end = self._boundary(day + timedelta(days=1) if crosses else day, self.end)
            if end > t and end > start:
                yield (start, end)
            day += timedelta(days=1)
        raise RuntimeError(f"{self!r}: no end found within {_MAX_DAYS} days")

    def _boundary(self, day: date, hhmm: time) -> float:
        """The first instant whose local time is at or after ``day`` ``hhmm``."""
        key = (day, hhmm)
        cached = self._boundaries.get(key)
        if cached is None:
            if len(self._boundaries) > 512:
                self._boundaries.clear()
            cached = self._boundaries[key] = _first_instant_at(datetime.combine(day, hhmm), self.tz)
        return cached


def _local(t: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def _first_instant_at(naive: datetime, tz: tzinfo) -> float:
    """Earliest epoch instant whose local wall time is at or after ``naive``."""
    candidates = [naive.replace(tzinfo=tz, fold=fold).timestamp() for fold in (0, 1)]
    valid = [c for c in candidates if _local(c, tz) == naive]
    if valid:
        return min(valid)  # an hour that repeats: its first pass
    # The local clock skips this time: the answer is the instant of the jump,
    # which lies between the two readings. Offsets change on whole seconds.
    lo, hi = int(min(candidates)), int(max(candidates))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid
    return float(hi)


def _utc_ts(t: float) -> str:
    """RFC 3339 UTC with milliseconds, as in the ``ts`` claim (docs/spec.md §4)."""
    moment = datetime.fromtimestamp(round(t, 3), timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
