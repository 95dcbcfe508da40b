"""What the version-2 care rules share: activity, the normal-priority notices, windows.

Theory of operation
-------------------
The rules of docs/spec.md §14 (:mod:`agent.rules.inactivity`, :mod:`agent.rules.doors`)
read the same sensor events as :class:`agent.rules.care.CareRules` and answer with the
same :class:`~agent.rules.care.CareEvent`. Three things they need beyond care.py:

* **Activity** is what shows someone is up and about: care.py's ``ACTIVITY_TYPES``
  plus ``motion.detected`` (docs/spec.md §14.4), never a start-up report.
* **Notices.** ``care.inactivity_warning`` and ``care.inactivity_cancelled`` are the
  only care events of *normal* priority (docs/spec.md §3, §14.1); ``CareEvent`` refuses
  ``critical=False``, so :class:`CareNotice` is a ``CareEvent`` that allows exactly
  these two types and nothing else.
* **Window intervals.** ``DailyWindow`` answers "inside?" and "how long inside?";
  check-in and night-only doors also need *where* the current or next interval lies
  (:func:`interval_at`), with the same DST rules.

Sans-IO like care.py: no clock reads, threads, sockets or files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Protocol, Tuple

from .care import ACTIVITY_TYPES, CareEvent, ObservedEvent
from .clock import _TOLERANCE_S, DailyWindow

__all__ = ["ACTIVITY", "NOTICE_TYPES", "WARN_PATTERN", "CareNotice", "PhasedRule", "Rule",
           "interval_at", "is_activity"]

#: docs/spec.md §14: every event type that counts as the resident being active.
ACTIVITY = ACTIVITY_TYPES | {"motion.detected"}

#: the care events of normal priority (docs/spec.md §3: "except the warning events of 14.1")
NOTICE_TYPES = frozenset({"care.inactivity_warning", "care.inactivity_cancelled"})

#: the buzzer's ``warn`` pattern [on_s, off_s, count] (docs/spec.md §14.1), played from the
#: inactivity warning and repeated until it is cancelled or the alert is raised
#: (agent.alarms.feedback)
WARN_PATTERN: Tuple[float, float, int] = (0.2, 0.8, 60)

#: float slack when comparing a deadline with ``now`` (the clocks' own)
TOLERANCE_S = _TOLERANCE_S


def is_activity(event: ObservedEvent) -> bool:
    """True if ``event`` shows the resident is up and about (start-up reports never do)."""
    return event.type in ACTIVITY and event.data.get("initial") is not True


@dataclass(frozen=True)
class CareNotice(CareEvent):
    """A care event of normal priority: only the two types in :data:`NOTICE_TYPES`."""

    critical: bool = False

    def __post_init__(self) -> None:
        if self.type not in NOTICE_TYPES:
            raise ValueError(f"{self.type!r} is not a care notice; risks are CareEvents "
                             f"(critical, docs/spec.md §3); notices are {sorted(NOTICE_TYPES)}")
        if self.critical:
            raise ValueError("care notices are normal priority (docs/spec.md §3)")
        if not self.sensor:
            raise ValueError("care notice needs a sensor name ('agent' for the agent's own)")
        object.__setattr__(self, "data", dict(self.data))


class Rule(Protocol):
    """What the loop (and :class:`agent.rules.mode.ModeGate`) calls on every care rule."""

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]: ...

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]: ...

    def next_deadline(self) -> Optional[float]: ...


class PhasedRule:
    """What the inactivity rules with a warning share: a phase table and the cancel notice.

    A subclass sets ``NAME`` (for error messages) and ``TRANSITIONS``
    (``{phase: {input: new phase}}``; an input missing from it is a bug and raises),
    and calls its warning phase ``"warning"``.
    """

    NAME: ClassVar[str] = ""
    TRANSITIONS: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    phase: str

    @property
    def warning(self) -> bool:
        """True while the warning lasts (the loop plays the ``warn`` pattern)."""
        return self.phase == "warning"

    def _step(self, what: str) -> None:
        try:
            self.phase = self.TRANSITIONS[self.phase][what]
        except KeyError:
            raise RuntimeError(f"{self.NAME}: input {what!r} is illegal in phase {self.phase!r}") from None

    @staticmethod
    def _cancelled(trigger: Mapping[str, Any], now: float, warn_at: float,
                   synced: bool) -> CareNotice:
        """``care.inactivity_cancelled``: activity came during the warning."""
        data: Dict[str, Any] = {**trigger, "warned_s": round(now - warn_at, 3), "clock_synced": synced}
        return CareNotice("care.inactivity_cancelled", "agent", now, data)


def interval_at(window: DailyWindow, wall: float) -> Tuple[float, float]:
    """The window's interval ``(start, end)`` (epoch seconds) that ends first after ``wall``.

    ``start <= wall`` means ``wall`` is inside it; otherwise it is the next one. A
    whole-day window has no edges: ``(-inf, inf)``.
    """
    # DailyWindow._intervals is care.py's generator of exactly these intervals (DST
    # handled there); one place knows where a boundary falls.
    return next(window._intervals(wall))
