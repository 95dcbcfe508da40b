"""agent.test's data and timing in the agent (agent/app/testreport.py); plain-number time."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from typing import List

from agent.alarms.book import AlarmBook
from agent.app.sensors import Sensors
from agent.app.testreport import TEST_TYPE, TestReport, open_faults
from agent.rules.testreport import TestReportSchedule, TestReportSettings
from drivers.door import DoorContact
from drivers.sos import SosButton
from tests.app.test_sensors import Pin

WALL0 = 1_772_355_600.0    # 2026-03-01T09:00:00Z


@dataclass
class Feedback:
    book: AlarmBook = field(default_factory=AlarmBook)


def test_the_report_carries_states_faults_alarms_and_latency() -> None:
    pins = {"sos": Pin(), "door": Pin(True)}
    sensors = Sensors({"sos": SosButton("sos", stuck_s=5), "door": DoorContact("door")}, pins)
    sensors.start(0.0)
    sensors.advance(2.0)
    feedback = Feedback()
    feedback.book.opened(jti="j-1", type="sos.pressed", sensor="sos", ts_wall=WALL0 + 3,
                         now=3.0, wall=WALL0 + 3)
    feedback.book.last_ack_latency_ms = 812
    sensors.edge("sos", True, 3.0)
    sensors.advance(9.0)                                   # held 6 s: stuck
    clock: List[float] = [9.0]
    report = TestReport(TestReportSchedule(TestReportSettings("10:00", 1), timezone.utc, 30),
                        sensors=sensors, feedback=feedback, clock=lambda: clock[0],
                        wall=lambda: WALL0 + clock[0] - 9.0)
    assert report.advance(9.0) == []
    assert report.next_deadline() == 9.0 + 3600 + 30
    clock[0] = 9.0 + 3630.2
    assert report.advance(9.0 + 3629.9) == []     # a turn that began just before: not yet
    [event] = report.advance(9.0 + 3630)
    assert (event.type, event.sensor, event.critical) == (TEST_TYPE, "agent", False)
    assert event.data == {
        "sensors": {"door": {"state": "open", "raw": True}, "sos": {"state": "pressed", "raw": True}},
        "faults": [{"sensor": "sos", "fault": "stuck"}],
        "open_alarms": [{"jti": "j-1", "type": "sos.pressed", "sensor": "sos", "phase": "pending"}],
        "last_ack_latency_ms": 812, "every_days": 1}
    sensors.edge("sos", False, 9.0 + 3630)
    sensors.advance(9.0 + 3640)
    assert open_faults(sensors) == []                       # recovered: no longer open
