"""The periodic test report in the running agent (docs/spec.md §13.3): ``agent.test``.

:class:`agent.rules.testreport.TestReportSchedule` says when (sans-IO); this timer of
the loop (``advance(now)`` / ``next_deadline()``) reads the wall clock and, when due,
makes the event from the pieces as they are at that instant: each sensor's state, the
open faults (read from the state machines: an SOS button stuck, a Form C smoke
detector's wiring fault, a flapping input — what a ``sensor.recovered`` has not yet
ended), the open alarms of the alarm book, and the last acknowledgement latency.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol

from agent.alarms.book import AlarmBook
from agent.app.sensors import Sensors
from agent.app.status import sensors_json
from agent.record.recognised import AgentEvent, Recognised
from agent.rules.testreport import TestReportSchedule

TEST_TYPE = "agent.test"


class BookSource(Protocol):
    @property
    def book(self) -> AlarmBook: ...


class TestReport:
    """The loop's ``agent.test`` timer (module docstring)."""

    __test__ = False

    def __init__(self, schedule: TestReportSchedule, *, sensors: Sensors, feedback: BookSource,
                 clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self.schedule = schedule
        self._sensors, self._feedback = sensors, feedback
        self._clock, self._wall = clock, wall

    def __repr__(self) -> str:
        return f"<TestReport {self.schedule!r}>"

    def advance(self, now: float) -> List[Recognised]:
        # the wall time *of now*: the turn's now may be a little older than the clocks
        if not self.schedule.advance(now, self._wall() - (self._clock() - now)):
            return []
        return [AgentEvent(TEST_TYPE, now, self.data())]

    def next_deadline(self) -> Optional[float]:
        return self.schedule.next_deadline()

    def data(self) -> Dict[str, Any]:
        book = self._feedback.book
        settings = self.schedule.settings
        return {
            "sensors": sensors_json(self._sensors.states()),
            "faults": open_faults(self._sensors),
            "open_alarms": [{"jti": a.jti, "type": a.type, "sensor": a.sensor, "phase": a.phase}
                            for a in book.open_alarms],
            "last_ack_latency_ms": book.last_ack_latency_ms,
            "every_days": settings.every_days,
        }


def open_faults(sensors: Sensors) -> List[Dict[str, str]]:
    """``[{sensor, fault}]``: faults raised and not yet recovered, by sensor name."""
    out: List[Dict[str, str]] = []
    for name in sorted(sensors.names()):
        machine: Any = sensors.machine(name)
        machine = getattr(machine, "inner", machine)     # a reload's Resumed
        if getattr(machine, "phase", None) == "stuck":
            out.append({"sensor": name, "fault": "stuck"})
        if getattr(machine, "wiring_fault", False):
            out.append({"sensor": name, "fault": "wiring"})
        if getattr(machine, "flapping", False):
            out.append({"sensor": name, "fault": "flapping"})
    return out
