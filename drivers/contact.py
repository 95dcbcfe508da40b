"""A two-state input: one asymmetric debouncer, one level event per accepted level.

Theory of operation
-------------------
The door contact (:class:`drivers.door.DoorContact`) and the supervision inputs of
docs/spec.md §13.1 (:class:`drivers.tamper.TamperSwitch`,
:class:`drivers.power.MainsMonitor`, :class:`drivers.power.BatteryMonitor`) all work
the same way: the raw level must stay at a new value for that value's window
(stable-for-N, :class:`~drivers.debounce.Debouncer`) and each accepted level is
reported once as a level event. A device class names its two reports
(``ACTIVE_REPORT`` / ``INACTIVE_REPORT``: event type and state word) and its two
windows; :class:`~drivers.sensor.SensorCore` does the clock, the start-up report
(``data.initial``) and flapping (on by default for the door, off for the others).

Because the debouncer reports only changes, level events alternate: an inactive
report is sent at start-up or after an active one, never twice in a row.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

from .debounce import Debouncer, FlappingPolicy, Micros
from .sensor import SensorCore

UNKNOWN, INACTIVE, ACTIVE = "unknown", "inactive", "active"

#: {phase: {accepted level: new phase}}; the debouncer only reports changes, so a
#: missing entry (ACTIVE accepting active again) is a bug and raises.
TRANSITIONS: Dict[str, Dict[bool, str]] = {
    UNKNOWN: {True: ACTIVE, False: INACTIVE},
    INACTIVE: {True: ACTIVE},
    ACTIVE: {False: INACTIVE},
}


class TwoStateContact(SensorCore):
    """Base of the debounced two-state inputs (see the module docstring)."""

    #: (event type, state word) sent when the active level is accepted
    ACTIVE_REPORT: ClassVar[Tuple[str, str]] = ("", "")
    #: (event type, state word) sent when the inactive level is accepted
    INACTIVE_REPORT: ClassVar[Tuple[str, str]] = ("", "")

    def __init__(self, name: str, *, active_us: Micros, inactive_us: Micros,
                 flapping: Optional[FlappingPolicy]) -> None:
        super().__init__(name, flapping=flapping)
        self._debouncer = Debouncer(active_us, inactive_us)
        self.phase = UNKNOWN

    def _reports(self, phase: str) -> Tuple[str, str]:
        return self.ACTIVE_REPORT if phase == ACTIVE else self.INACTIVE_REPORT

    def _level_data(self, phase: str) -> Mapping[str, Any]:
        """Hook: extra ``data`` for the level event of ``phase``."""
        return {}

    def _send(self, t: Micros) -> None:
        self._report(t, *self._reports(self.phase), self._level_data(self.phase))

    # ------------------------------------------------------------ SensorCore hooks
    def _begin(self, level: bool, t: Micros) -> None:
        self._debouncer.start(level, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._debouncer.edge(level, t)

    def _deadline(self) -> Optional[Micros]:
        return self._debouncer.deadline()

    def _fire(self, t: Micros) -> None:
        level = self._debouncer.accept(t)
        try:
            self.phase = TRANSITIONS[self.phase][level]
        except KeyError:
            raise RuntimeError(f"{self.name}: accepted level {level} is illegal in phase {self.phase!r}") from None
        self._send(t)

    def _current_state(self) -> Optional[str]:
        return None if self.phase == UNKNOWN else self._reports(self.phase)[1]

    def _catch_up(self, t: Micros) -> None:
        self._send(t)
