"""Inactivity in three modes, with an "I'm fine" warning (docs/spec.md §14.1).

Theory of operation
-------------------
``daytime`` and ``continuous`` (:class:`QuietRule`): quiet time is counted from the
last activity (or the first call), in ``daytime`` only inside ``from``-``to``, in
``continuous`` around the clock. When it reaches ``hours``:

* with ``warn_min`` 0, ``care.inactivity`` (critical) at once;
* otherwise ``care.inactivity_warning`` (normal) and, ``warn_min`` minutes later
  (real minutes, whether or not the window is still open), ``care.inactivity``.
  Activity during the warning raises ``care.inactivity_cancelled`` (normal) and
  starts a new quiet episode.

After ``care.inactivity`` nothing more is raised until activity, which raises
``care.activity_resumed`` (as care.py does) and starts a new episode.

``check_in`` (:class:`~agent.rules.checkin.CheckInRule`): at least one activity is
expected inside ``from``-``to`` each day.

Clocks: the count is care.py's own (:class:`~agent.rules.clock.QuietCount`): durations
on the monotonic ``now``; where in the local day an instant falls from ``wall`` through
the time zone, mapped with the offset ``wall - now`` of the latest call, so an NTP jump
neither adds nor removes quiet time, and DST days are as long as they are. ``data.clock_synced`` is true only if every
second counted in the episode was placed with a synchronised clock.
"""
from __future__ import annotations

from datetime import tzinfo
from typing import Any, Dict, List, Optional, Union

from .activity import TOLERANCE_S, CareNotice, PhasedRule, is_activity
from .care import CareEvent, ObservedEvent
from .clock import DailyWindow, QuietCount, _utc_ts
from .checkin import CheckInRule
from .settings import MODES, InactivityRuleSettings

__all__ = ["MODES", "InactivityRuleSettings", "QuietRule", "inactivity_rule"]

# phases and inputs of QuietRule
QUIET, WARNING, ALERTED = "quiet", "warning", "alerted"
ACTIVE, DUE, WARN_END = "activity", "due", "warn_end"

#: {phase: {input: new phase}}; with warn_min 0, DUE is followed at once by WARN_END
#: and no warning is sent (see QuietRule._due).
TRANSITIONS: Dict[str, Dict[str, str]] = {
    QUIET: {ACTIVE: QUIET, DUE: WARNING},
    WARNING: {ACTIVE: QUIET, WARN_END: ALERTED},
    ALERTED: {ACTIVE: QUIET},
}


class QuietRule(PhasedRule):
    """``daytime`` / ``continuous`` inactivity (module docstring). Call ``advance`` at start-up."""

    NAME = "inactivity"
    TRANSITIONS = TRANSITIONS

    def __init__(self, settings: InactivityRuleSettings, tz: tzinfo) -> None:
        if settings.mode == "check_in":
            raise ValueError("QuietRule does not do check_in; use inactivity_rule()")
        self.settings = settings
        whole_day = settings.mode == "continuous"
        self._quiet = QuietCount(DailyWindow("00:00" if whole_day else settings.from_,
                                             "00:00" if whole_day else settings.to, tz),
                                 settings.hours)
        self._warn_s = float(settings.warn_min) * 60.0
        self.phase = QUIET
        self._warn_at = 0.0                 # monotonic start of the warning

    def __repr__(self) -> str:
        return f"QuietRule({self.settings.mode}, {self.settings.hours:g} h, phase={self.phase})"

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        out = self.advance(now, wall, clock_synced)
        if is_activity(event):
            out += self._activity(event, now)
        return out

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        due = self._quiet.advance(now, wall, clock_synced, watch=self.phase == QUIET)
        out = [] if due is None else self._due(due)
        if self.phase == WARNING and now + TOLERANCE_S >= self._warn_at + self._warn_s:
            self._step(WARN_END)
            out.append(self._inactivity(self._warn_at + self._warn_s))
        return out

    def next_deadline(self) -> Optional[float]:
        """Monotonic time of the next warning or alert if nothing happens; else None."""
        if self._quiet.mark is None or self.phase == ALERTED:
            return None
        if self.phase == WARNING:
            return self._warn_at + self._warn_s
        return self._quiet.deadline()

    # ---- steps


    def _due(self, at: float) -> List[CareEvent]:
        self._step(DUE)
        self._warn_at = at
        if self._warn_s == 0:
            self._step(WARN_END)
            return [self._inactivity(at)]
        return [CareNotice("care.inactivity_warning", "agent", at, {
            **self._common(at), "warn_min": self.settings.warn_min,
            "ends_at": _utc_ts(at + self._warn_s + self._quiet.offset)})]

    def _activity(self, event: ObservedEvent, now: float) -> List[CareEvent]:
        out: List[CareEvent] = []
        trigger = {"mode": self.settings.mode, "sensor": event.sensor, "trigger": event.type}
        if self.phase == WARNING:
            out.append(self._cancelled(trigger, now, self._warn_at, not self._quiet.unsynced))
        elif self.phase == ALERTED:
            out.append(CareEvent("care.activity_resumed", "agent", now, {
                **self._quiet.facts(now), **trigger,
                "quiet_hours": round(self._quiet.counted / 3600.0, 3)}))
        self._step(ACTIVE)
        self._quiet.restart(now)
        return out

    def _inactivity(self, at: float) -> CareEvent:
        q = self._quiet
        return CareEvent("care.inactivity", "agent", at, {
            **self._common(at), "warned": self._warn_s > 0,
            "counting_since": _utc_ts(q.since + q.offset)})

    def _common(self, at: float) -> Dict[str, Any]:
        return {"mode": self.settings.mode, **self._quiet.facts(at)}


def inactivity_rule(settings: InactivityRuleSettings,
                    tz: tzinfo) -> Union[QuietRule, CheckInRule]:
    """The rule for ``settings.mode``."""
    if settings.mode == "check_in":
        return CheckInRule(settings, tz)
    return QuietRule(settings, tz)
