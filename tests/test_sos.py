"""SosButton on a virtual clock: table of (name, config, inputs, until, expected events).

Times in ms; inputs [[t, level], ...], the first being the level at start-up.
"""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.sos import SosButton
from tests.vector_harness import assert_matches, make_sensor, run_inputs

R0 = [30, "sos.released", {"initial": True, "state": "released"}]


def _bounce(t: int, to: int, n: int = 4) -> List[List[int]]:
    """``n`` 1 ms toggles ending on level ``to`` at ``t + n``."""
    return [[t + i, to if (n - i) % 2 == 0 else 1 - to] for i in range(n + 1)]


CASES: List[Dict[str, Any]] = [
    dict(name="clean press", inputs=[[0, 0], [500, 1], [800, 0]], until=2000,
         expect=[R0, [530, "sos.pressed", {"state": "pressed"}], [830, "sos.released", {"held_ms": 300}]]),
    dict(name="bounce on press and release", inputs=[[0, 0]] + _bounce(500, 1, 6) + _bounce(900, 0, 5), until=2000,
         expect=[R0, [536, "sos.pressed", {}], [935, "sos.released", {"held_ms": 399}]]),
    dict(name="29 ms glitch is nothing", inputs=[[0, 0], [500, 1], [529, 0]], until=2000, expect=[R0]),
    dict(name="30 ms pulse: window completes at the same instant as the release edge",
         inputs=[[0, 0], [500, 1], [530, 0]], until=2000,
         expect=[R0, [530, "sos.pressed", {}], [560, "sos.released", {"held_ms": 30}]]),
    dict(name="dropout while held", inputs=[[0, 0], [500, 1], [700, 0], [729, 1], [1000, 0]], until=2000,
         expect=[R0, [530, "sos.pressed", {}], [1030, "sos.released", {"held_ms": 500}]]),
    dict(name="dropout mid-hold longer than the window splits the press", config={"hold_ms": 1000},
         inputs=[[0, 0], [1000, 1], [1500, 0], [1540, 1], [2500, 0]], until=4000,
         expect=[R0, [1530, "sos.short_press", {"held_ms": 500}], [2530, "sos.short_press", {"held_ms": 960}]]),
    dict(name="dropout mid-hold shorter than the window", config={"hold_ms": 1000},
         inputs=[[0, 0], [1000, 1], [1500, 0], [1520, 1], [2500, 0]], until=4000,
         expect=[R0, [2030, "sos.pressed", {}], [2530, "sos.released", {"held_ms": 1500}]]),
    dict(name="hold completes at the same instant as the release", config={"hold_ms": 1000},
         inputs=[[0, 0], [1000, 1], [2000, 0]], until=4000,
         expect=[R0, [2030, "sos.pressed", {}], [2030, "sos.released", {"held_ms": 1000}]]),
    dict(name="pressed at boot", inputs=[[0, 1], [100, 0]], until=1000,
         expect=[[30, "sos.pressed", {"initial": True}], [130, "sos.released", {"held_ms": 100}]]),
    dict(name="glitch at boot delays the start-up report", inputs=[[0, 0], [10, 1], [20, 0]], until=1000,
         expect=[[50, "sos.released", {"initial": True}]]),
    dict(name="pressed at boot with hold_ms: an alarm once held", config={"hold_ms": 1000},
         inputs=[[0, 1]], until=2000, expect=[[1030, "sos.pressed", {"initial": True}]]),
    dict(name="tapped during boot with hold_ms", config={"hold_ms": 1000},
         inputs=[[0, 1], [500, 0]], until=2000,
         expect=[[530, "sos.short_press", {"held_ms": 500}], [530, "sos.released", {"initial": True}]]),
    dict(name="stuck released at the same instant the stuck timer completes",
         inputs=[[0, 0], [1000, 1], [61000, 0]], until=62000,
         expect=[R0, [1030, "sos.pressed", {}], [61030, "sensor.stuck", {"state": "pressed"}],
                 [61030, "sensor.recovered", {"state": "released", "fault": "stuck"}],
                 [61030, "sos.released", {"held_ms": 60000}]]),
    dict(name="released 1 ms before stuck", inputs=[[0, 0], [1000, 1], [60999, 0]], until=62000,
         expect=[R0, [1030, "sos.pressed", {}], [61029, "sos.released", {"held_ms": 59999}]]),
    dict(name="stuck_s configurable", config={"stuck_s": 5},
         inputs=[[0, 0], [1000, 1]], until=62000,
         expect=[R0, [1030, "sos.pressed", {}], [6030, "sensor.stuck", {"stuck_s": 5}]]),
    dict(name="flapping: press during the episode still alarms, release waits for quiet",
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(20)] + [[1500, 1], [2000, 0]],
         until=70000,
         expect=[R0, [1190, "sensor.flapping", {}], [1530, "sos.pressed", {}],
                 [62000, "sensor.recovered", {"state": "released", "fault": "flapping"}],
                 [62000, "sos.released", {"held_ms": 500}]]),
    dict(name="flapping: at most one sos.pressed per episode",
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(20)]
         + [[1500, 1], [2000, 0], [2500, 1], [3000, 0], [3500, 1]],
         until=70000,
         expect=[R0, [1190, "sensor.flapping", {}], [1530, "sos.pressed", {}],
                 [63500, "sensor.recovered", {"state": "pressed"}], [63530, "sensor.stuck", {}]]),
    dict(name="19 edges in 10 s is not flapping",
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(19)], until=3000,
         expect=[R0, [1210, "sos.pressed", {}]]),
    dict(name="flapping off", config={"flapping": False},
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(40)], until=3000,
         expect=[R0]),
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sos(case: Dict[str, Any]) -> None:
    sensor = make_sensor("sos_button", case.get("config"))
    assert_matches(run_inputs(sensor, case["inputs"], case["until"]), case["expect"])


def test_float_time_window_completing_with_an_edge() -> None:
    # 0.1 + 0.2 != 0.3 in floats; the window must still count as completed at 0.3.
    sos = SosButton("sos", debounce_ms=200)
    assert sos.start(False, 0.1) == []
    events = sos.edge(True, 0.3)
    assert [(e.type, e.at) for e in events] == [("sos.released", 0.3)]
    assert sos.next_deadline() == 0.5


def test_state_and_raw_follow_the_button() -> None:
    sos = SosButton("sos")
    sos.start(False, 100.0)
    assert sos.state == "unknown" and sos.raw is False
    sos.edge(True, 100.01)
    assert sos.state == "unknown" and sos.raw is True
    events = sos.advance(100.2)
    assert [e.type for e in events] == ["sos.pressed"]
    assert events[0].data["initial"] is True and events[0].critical
    assert sos.state == "pressed"
    assert "state=pressed" in repr(sos)


def test_priorities() -> None:
    sos = SosButton("sos", stuck_s=1)
    events = sos.start(True, 0) + sos.advance(2) + sos.edge(False, 3) + sos.advance(4)
    assert {e.type: e.critical for e in events} == {
        "sos.pressed": True, "sensor.stuck": True, "sensor.recovered": False, "sos.released": False}


@pytest.mark.parametrize("kwargs", [dict(debounce_ms=-1), dict(hold_ms="1"), dict(stuck_s=0),
                                    dict(hold_ms=60000), dict(flapping=5)])
def test_bad_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        SosButton("sos", **kwargs)
