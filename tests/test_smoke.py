"""SmokeDetector on a virtual clock: table of (name, config, inputs, until, expected events)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.smoke import SmokeDetector
from tests.vector_harness import assert_matches, make_sensor, run_inputs

C0 = [50, "smoke.cleared", {"initial": True, "state": "clear"}]


def pulses(start: int, on: int, off: int, n: int) -> List[List[int]]:
    out: List[List[int]] = []
    for i in range(n):
        out += [[start + i * (on + off), 1], [start + i * (on + off) + on, 0]]
    return out


# temporal-3: 0.5 s on, 0.5 s off, three times, 1.5 s pause (NFPA 72 / ISO 8201)
TEMPORAL_3 = pulses(5000, 500, 500, 3) + pulses(9000, 500, 500, 3)

CASES: List[Dict[str, Any]] = [
    dict(name="continuous", inputs=[[0, 0], [5000, 1], [8000, 0]], until=30000,
         expect=[C0, [6000, "smoke.alarm", {"pattern": "continuous", "state": "alarm"}],
                 [23000, "smoke.cleared", {"state": "clear"}]]),
    dict(name="single blip", inputs=[[0, 0], [5000, 1], [5999, 0]], until=30000, expect=[C0]),
    dict(name="confirm completes at the same instant as the edge", inputs=[[0, 0], [5000, 1], [6000, 0]],
         until=30000, expect=[C0, [6000, "smoke.alarm", {"pattern": "continuous"}], [21000, "smoke.cleared", {}]]),
    dict(name="temporal-3 pattern", inputs=[[0, 0]] + TEMPORAL_3, until=40000,
         expect=[C0, [7050, "smoke.alarm", {"pattern": "pulsed", "pulses": 3}], [26500, "smoke.cleared", {}]]),
    dict(name="two pulses are not enough", inputs=[[0, 0]] + pulses(5000, 100, 100, 2), until=30000,
         expect=[C0]),
    dict(name="pulses too short (40 ms)", inputs=[[0, 0]] + pulses(5000, 40, 100, 10), until=30000,
         expect=[C0]),
    dict(name="pulse of exactly pulse_ms counts", inputs=[[0, 0]] + pulses(5000, 50, 100, 3), until=30000,
         expect=[C0, [5350, "smoke.alarm", {"pattern": "pulsed"}], [5350 + 15000, "smoke.cleared", {}]]),
    dict(name="pulses 5 s apart: the first has left the 10 s window", inputs=[[0, 0]] + pulses(5000, 100, 4900, 3),
         until=30000, expect=[C0]),
    dict(name="pulses 4.999 s apart alarm", inputs=[[0, 0]] + pulses(5000, 100, 4899, 3),
         until=40000, expect=[C0, [15048, "smoke.alarm", {"pattern": "pulsed"}], [30098, "smoke.cleared", {}]]),
    dict(name="asserted at boot", inputs=[[0, 1], [3000, 0]], until=30000,
         expect=[[1000, "smoke.alarm", {"initial": True, "pattern": "continuous"}], [18000, "smoke.cleared", {}]]),
    dict(name="pulsing at boot: the first gap gives the start-up report", inputs=[[0, 1], [100, 0], [200, 1], [300, 0], [400, 1], [500, 0]],
         until=30000, expect=[[150, "smoke.cleared", {"initial": True}],
                              [450, "smoke.alarm", {"pattern": "pulsed"}],
                              [15500, "smoke.cleared", {}]]),
    dict(name="clears only after 15 s of continuous quiet",
         inputs=[[0, 0], [5000, 1], [8000, 0], [20000, 1], [20010, 0]], until=40000,
         expect=[C0, [6000, "smoke.alarm", {}], [35010, "smoke.cleared", {}]]),
    dict(name="quiet of 14.999 s does not clear",
         inputs=[[0, 0], [5000, 1], [8000, 0], [22999, 1], [23100, 0]], until=40000,
         expect=[C0, [6000, "smoke.alarm", {}], [38100, "smoke.cleared", {}]]),
    dict(name="no flapping detection by default",
         inputs=[[0, 0]] + pulses(5000, 10, 10, 30), until=30000, expect=[C0]),
    dict(name="flapping when configured reports but suppresses nothing",
         config={"flapping": {"max_edges": 4, "window_s": 10, "quiet_s": 20}},
         inputs=[[0, 0]] + pulses(5000, 100, 100, 3), until=40000,
         expect=[C0, [5300, "sensor.flapping", {}], [5450, "smoke.alarm", {"pattern": "pulsed"}],
                 [20500, "smoke.cleared", {}], [25500, "sensor.recovered", {"state": "clear"}]]),
    dict(name="configurable windows",
         config={"confirm_ms": 200, "pulse_ms": 20, "pulses": 2, "pulse_window_s": 1, "clear_ms": 500},
         inputs=[[0, 0], [1000, 1], [1030, 0], [1100, 1], [1130, 0], [5000, 1]], until=6000,
         expect=[[20, "smoke.cleared", {"initial": True}], [1120, "smoke.alarm", {"pattern": "pulsed"}],
                 [1630, "smoke.cleared", {}], [5200, "smoke.alarm", {"pattern": "continuous"}]]),
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_smoke(case: Dict[str, Any]) -> None:
    sensor = make_sensor("smoke", case.get("config"))
    assert_matches(run_inputs(sensor, case["inputs"], case["until"]), case["expect"])


def test_smoke_events_are_critical() -> None:
    smoke = SmokeDetector("k")
    events = smoke.start(True, 0) + smoke.advance(2) + smoke.edge(False, 3) + smoke.advance(30)
    assert [(e.type, e.critical) for e in events] == [("smoke.alarm", True), ("smoke.cleared", True)]


@pytest.mark.parametrize("kwargs", [dict(pulses=0), dict(pulses=2.5), dict(pulse_window_s=0),
                                    dict(clear_ms=-1)])
def test_bad_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmokeDetector("k", **kwargs)
