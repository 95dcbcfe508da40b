"""MotionSensor (drivers/motion.py) on a virtual clock: activity, silence, rate limit."""
from __future__ import annotations

from typing import List, Tuple

import pytest

from drivers.debounce import FlappingPolicy
from drivers.events import SensorEvent
from drivers.motion import MotionSensor


def pulses(pir: MotionSensor, start: float, end: float, every: float = 10.0,
           length: float = 2.0) -> Tuple[List[SensorEvent], List[SensorEvent]]:
    """A PIR's output while someone moves about: ``length`` s high every ``every`` s."""
    sent: List[SensorEvent] = []
    t = start
    while t < end:
        sent += pir.edge(True, t) + pir.edge(False, t + length)
        t += every
    return sent, pir.drain_activity()


def at(events: List[SensorEvent]) -> List[float]:
    return [round(e.at, 3) for e in events]


def test_silent_by_default_but_activity_for_the_rules() -> None:
    pir = MotionSensor("hall")
    assert pir.start(False, 0.0) == []
    sent, activity = pulses(pir, 100.0, 100.0 + 20 * 60)   # 20 minutes of moving about
    sent += pir.advance(5000.0)
    assert sent == []                                         # nothing to the cloud
    assert at(activity) == [100.1, 400.1, 700.1, 1000.1]      # start, then every 300 s
    assert {e.type for e in activity} == {"motion.detected"} and not activity[0].critical
    assert activity[0].data == {"state": "motion"} and pir.state == "still"


def test_debounce_and_hold() -> None:
    pir = MotionSensor("hall")
    pir.start(False, 0.0)
    pir.edge(True, 10.0), pir.edge(False, 10.05)             # a 50 ms spike
    assert pir.advance(20.0) == [] and pir.drain_activity() == []
    pir.edge(True, 30.0), pir.advance(30.1)
    assert pir.state == "motion"
    pir.edge(False, 31.0)
    assert pir.advance(60.9) == [] and pir.state == "motion"   # hold_s 30 not over yet
    pir.advance(61.0)
    assert pir.state == "still" and at(pir.drain_activity()) == [30.1]
    assert pir.next_deadline() is None


def test_report_rate_limits_motion_detected() -> None:
    pir = MotionSensor("hall", report=True)
    assert pir.start(False, 0.0) == []                       # no start-up report
    sent, activity = pulses(pir, 100.0, 110.0)               # brief motion: one report
    sent += pir.advance(200.0)                                # ... ended by 142
    more, activity2 = pulses(pir, 250.0, 260.0)              # again within 300 s: not sent
    more += pir.advance(1000.0)
    assert at(sent) == [100.1] and sent[0].type == "motion.detected"
    assert more == [] and at(activity + activity2) == [250.1]   # still activity for the rules
    long, _ = pulses(pir, 2000.0, 2000.0 + 15 * 60)
    assert at(long) == [2000.1, 2300.1, 2600.1]               # once per report_every_s


def test_motion_at_boot_is_activity_not_a_start_up_report() -> None:
    pir = MotionSensor("hall")
    assert pir.start(True, 0.0) == [] and pir.advance(1.0) == []
    assert at(pir.drain_activity()) == [0.1]
    assert all("initial" not in e.data for e in MotionSensor("x", report=True).start(True, 0.0))


@pytest.mark.parametrize("report, sent", [(False, []), (True, ["sensor.flapping"])])
def test_flapping_events_only_with_report(report: bool, sent: List[str]) -> None:
    pir = MotionSensor("hall", report=report, flapping=FlappingPolicy(max_edges=4, window_s=1))
    pir.start(False, 0.0)
    out = [e for k in range(4) for e in pir.edge(k % 2 == 0, 10.0 + 0.01 * k)]
    assert [e.type for e in out if e.type != "motion.detected"] == sent


@pytest.mark.parametrize("kwargs", [{"debounce_ms": -1}, {"hold_s": 0}, {"report_every_s": 0},
                                    {"report": "yes"}])
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MotionSensor("hall", **kwargs)


def test_repr_and_kind() -> None:
    pir = MotionSensor("hall")
    pir.start(False, 0.0)
    assert MotionSensor.kind == "motion" and "hall" in repr(pir)
