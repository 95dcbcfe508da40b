"""Inactivity mode ``check_in``: one activity expected inside ``from``-``to`` each day.

Theory of operation
-------------------
The rule follows one window interval at a time (the current one, or the next when
outside): ``waiting`` until the first activity inside it (``done``). When the
interval ends (``to``) still ``waiting``, ``care.inactivity`` (critical,
``data.mode: check_in``) is raised at ``to``. With ``warn_min``, ``warn_min`` before
``to`` (never before ``from``) a ``waiting`` rule sends ``care.inactivity_warning``
(normal); activity then cancels it (``care.inactivity_cancelled``) and the day is
done. After ``care.inactivity`` nothing is raised, on any later day, until activity
resumes (``care.activity_resumed``, critical, as in care.py).

A window the agent starts inside counts from the start: it does not know what
happened before, and a missed check-in is the safer error than a silent one.

Clocks: where ``from`` and ``to`` fall comes from ``wall`` through the time zone
(:func:`agent.rules.activity.interval_at`, DST as in care.py: a boundary inside a
skipped hour falls at the jump, inside a repeated hour on its first pass); monotonic
deadlines use the offset ``wall - now`` of the latest call, so after an NTP jump the
next call re-places them. An event's ``at`` is the monotonic instant its wall time
mapped to, never before the previous call nor after this one.
"""
from __future__ import annotations

from datetime import tzinfo
from typing import Any, Dict, List, Optional

from .activity import CareNotice, PhasedRule, interval_at, is_activity
from .care import CareEvent, ObservedEvent
from .clock import DailyWindow, _utc_ts, check_forward
from .settings import InactivityRuleSettings

__all__ = ["CheckInRule"]

WAITING, WARNING, DONE, ALERTED = "waiting", "warning", "done", "alerted"
INSIDE, OUTSIDE, WARN_TIME, END = "activity", "activity_outside", "warn_time", "end"

#: {phase: {input: new phase}}; OUTSIDE = activity before the interval's ``from``.
TRANSITIONS: Dict[str, Dict[str, str]] = {
    WAITING: {INSIDE: DONE, OUTSIDE: WAITING, WARN_TIME: WARNING, END: ALERTED},
    WARNING: {INSIDE: DONE, OUTSIDE: WAITING, END: ALERTED},  # OUTSIDE: the clock went back
    DONE: {INSIDE: DONE, OUTSIDE: DONE, END: WAITING},
    ALERTED: {INSIDE: DONE, OUTSIDE: WAITING, END: ALERTED},
}
_MAX_STEPS = 1000  # window ends passed in one call: more is a bug (ALERTED skips ahead)


class CheckInRule(PhasedRule):
    """``check_in`` inactivity (module docstring). Call ``advance`` at start-up."""

    NAME = "check_in"
    TRANSITIONS = TRANSITIONS

    def __init__(self, settings: InactivityRuleSettings, tz: tzinfo) -> None:
        self.settings = settings
        self._window = DailyWindow(settings.from_, settings.to, tz)
        self._warn_s = float(settings.warn_min) * 60.0
        self.phase = WAITING
        self._mark: Optional[float] = None
        self._offset = 0.0
        self._start = self._end = 0.0          # wall: the interval followed
        self._unsynced = False
        self._last_activity: Optional[float] = None  # wall
        self._warn_at = 0.0                    # monotonic

    def __repr__(self) -> str:
        return f"CheckInRule({self._window.label}, phase={self.phase})"

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        out = self.advance(now, wall, clock_synced)
        if not is_activity(event):
            return out
        trigger = {"mode": "check_in", "sensor": event.sensor, "trigger": event.type}
        if self.phase == WARNING:
            out.append(self._cancelled(trigger, now, self._warn_at, not self._unsynced))
        elif self.phase == ALERTED:
            out.append(CareEvent("care.activity_resumed", "agent", now, {
                **trigger, **self._common()}))
        self._step(INSIDE if self._start <= wall else OUTSIDE)
        self._last_activity = wall
        return out

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        offset, before = wall - now, self._mark
        self._mark, self._offset = now, offset
        if before is None:
            self._start, self._end = interval_at(self._window, wall)
            self._unsynced = not clock_synced
            return []
        check_forward(now, before)
        self._unsynced |= not clock_synced

        def mono(t: float) -> float:  # a wall instant -> monotonic, within this call's span
            return min(now, max(before, t - offset))

        out: List[CareEvent] = []
        for _ in range(_MAX_STEPS):
            if self.phase == WAITING and self._warn_s and wall >= self._warn_from():
                self._step(WARN_TIME)
                self._warn_at = mono(self._warn_from())
                out.append(CareNotice("care.inactivity_warning", "agent", self._warn_at, {
                    **self._common(), "warn_min": self.settings.warn_min,
                    "ends_at": _utc_ts(self._end)}))
            if wall < self._end:
                return out
            old = self.phase
            self._step(END)
            if old in (WAITING, WARNING):
                out.append(CareEvent("care.inactivity", "agent", mono(self._end), {
                    **self._common(), "warned": old == WARNING}))
            # ALERTED waits for activity whatever the day: jump to today's interval
            self._start, self._end = interval_at(
                self._window, wall if self.phase == ALERTED else self._end)
            self._unsynced = not clock_synced
        raise RuntimeError(f"{self!r}: window ends did not settle (bug)")

    def next_deadline(self) -> Optional[float]:
        """Monotonic time of the next warning or window end that matters; else None."""
        if self._mark is None or self.phase == ALERTED:
            return None
        due = self._warn_from() if self.phase == WAITING and self._warn_s else self._end
        return due - self._offset

    def _warn_from(self) -> float:
        return max(self._start, self._end - self._warn_s)


    def _common(self) -> Dict[str, Any]:
        last = self._last_activity
        return {"mode": "check_in", "window": self._window.label,
                "last_activity": None if last is None else _utc_ts(last),
                "clock_synced": not self._unsynced}
