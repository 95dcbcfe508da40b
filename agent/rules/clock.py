"""Local time for the care rules: daily windows in the home's time zone, with DST.

A window such as 22:00-06:00 is a set of intervals of real time, one per local day;
:class:`DailyWindow` finds them from the zone's own rules, so a night that is 23 or 25
hours long (the DST changes) is measured as it is, and a local time the clock skips or
repeats is taken at its first instant. Everything takes epoch seconds (``wall``) as an
argument: no clock is read here.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Dict, Iterator, Optional, Tuple

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


def check_forward(now: float, mark: float) -> None:
    """Refuse a ``now`` before the last call's: the rules need the monotonic clock."""
    if now < mark:
        raise ValueError(f"now went backwards: {now} after {mark}; "
                         "pass time.monotonic(), not the wall clock")


class QuietCount:
    """Quiet seconds inside ``window`` since the last activity (or the first call).

    The one count behind care.py's daytime inactivity and the version-2
    :class:`~agent.rules.inactivity.QuietRule`; the rules own their phases, this owns
    the clocks (care.py's module docstring): every monotonic second is counted once,
    placed in the local day with the offset ``wall - now`` of the latest call.
    """

    def __init__(self, window: DailyWindow, hours: float) -> None:
        self.window = window
        self.need_s = float(hours) * 3600.0
        self.mark: Optional[float] = None  # monotonic time counted up to
        self.offset = 0.0  # wall - now at the last call
        self.since = 0.0  # monotonic: last activity, or the first call
        self.had_activity = False
        self.counted = 0.0  # in-window seconds since `since`
        self.unsynced = False  # some of `counted` was placed with an unsynced clock
        self._deadline_cache: Optional[Tuple[Tuple[float, float, float], float]] = None

    def advance(self, now: float, wall: float, clock_synced: bool, watch: bool) -> Optional[float]:
        """Count up to ``now``. With ``watch``: the monotonic instant in this span at which
        the count reached ``need_s`` (None if not yet; the first call only starts counting)."""
        offset = wall - now
        if self.mark is None:
            self.mark, self.since, self.offset = now, now, offset
            self.unsynced = not clock_synced
            return None
        check_forward(now, self.mark)
        elapsed, begin = now - self.mark, self.mark + offset  # the span, on today's best clock
        self.unsynced |= elapsed > 0 and not clock_synced
        due: Optional[float] = None
        if watch:
            due_after = self.window.reach(begin, self.need_s - self.counted) - begin
            if due_after <= elapsed + _TOLERANCE_S:
                due = min(self.mark + due_after, now)
        self.counted += self.window.seconds_inside(begin, begin + elapsed)
        self.mark, self.offset = now, offset
        return due

    def deadline(self) -> Optional[float]:
        """Monotonic time the count reaches ``need_s`` if no activity comes; None before the start."""
        if self.mark is None:
            return None
        key = (self.mark, self.offset, self.counted)
        if self._deadline_cache is None or self._deadline_cache[0] != key:  # reach() walks days
            begin = self.mark + self.offset
            due = self.window.reach(begin, self.need_s - self.counted) - begin
            self._deadline_cache = (key, self.mark + due)
        return self._deadline_cache[1]

    def restart(self, now: float) -> None:
        """Activity at ``now``: a new quiet episode starts."""
        self.since, self.had_activity = now, True
        self.counted, self.unsynced = 0.0, False

    def facts(self, at: float) -> Dict[str, Any]:
        """The ``data`` the inactivity events share, as of monotonic ``at``."""
        return {
            "quiet_hours": round(self.need_s / 3600.0, 3),
            "idle_s": round(at - self.since, 3),
            "window": self.window.label,
            "last_activity": _utc_ts(self.since + self.offset) if self.had_activity else None,
            "clock_synced": not self.unsynced,
        }


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
