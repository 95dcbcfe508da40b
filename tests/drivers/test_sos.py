"""SosButton on a virtual clock: table of (name, config, inputs, until, expected events).

Times in ms; inputs [[t, level], ...], the first being the level at start-up.
"""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.sos import SosButton
from tests.vector_harness import assert_matches, make_sensor, ms, run_inputs

R0 = [30, "sos.released", {"initial": True, "state": "released"}]


def _bounce(t: int, to: int, n: int = 4) -> List[List[int]]:
    """``n`` 1 ms toggles ending on level ``to`` at ``t + n``."""
    return [[t + i, to if (n - i) % 2 == 0 else 1 - to] for i in range(n + 1)]


def _burst(t: int, n: int = 6) -> List[List[int]]:
    """``n`` 1 ms raw edges from ``t``, starting with a press (even ``n`` ends released)."""
    return [[t + i, 1 - i % 2] for i in range(n)]


#: 25 edges in 0.5 s (20 ms apart, under debounce_ms): the 20th, at 1380, starts flapping;
#: the burst ends pressed at 1480.
BURST_25 = [[1000 + 20 * k, 1 - k % 2] for k in range(25)]
#: a 1 ms glitch every 45 s: two edges, never a burst of ceil(20 / 4) = 5
GLITCHES_45S = [[45000 * j + d, 1 - d] for j in range(1, 10) for d in (0, 1)]
PRESSES_2S = [[t + d, 1 - d // 2000] for t in (200000, 260000, 320000) for d in (0, 2000)]


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
    dict(name="flapping: a re-press within window_s of the last sos.pressed is not another",
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(20)]
         + [[1500, 1], [2000, 0], [2500, 1], [3000, 0], [3500, 1]],
         until=70000,
         expect=[R0, [1190, "sensor.flapping", {}], [1530, "sos.pressed", {}],
                 [63500, "sensor.recovered", {"state": "pressed"}], [63530, "sensor.stuck", {}]]),
    # Issue 11.1 as measured: a 25-edge bounce burst starts an episode; a 1 ms glitch every
    # 45 s (under quiet_s) must not keep it open; three real 2 s presses minutes later alarm.
    dict(name="flapping: glitches do not keep the episode open; later presses alarm",
         inputs=[[0, 0]] + BURST_25 + [[2000, 0]] + sorted(GLITCHES_45S + PRESSES_2S), until=420000,
         expect=[R0, [1380, "sensor.flapping", {}], [1510, "sos.pressed", {}],
                 [62000, "sensor.recovered", {"state": "released", "fault": "flapping"}],
                 [62000, "sos.released", {"held_ms": 520}],
                 [200030, "sos.pressed", {}], [202030, "sos.released", {"held_ms": 2000}],
                 [260030, "sos.pressed", {}], [262030, "sos.released", {"held_ms": 2000}],
                 [320030, "sos.pressed", {}], [322030, "sos.released", {"held_ms": 2000}]]),
    # Bursts every 30 s keep the episode open; a real press in it still alarms (docs/spec.md §3).
    dict(name="flapping: a real press later in a live episode is an sos.pressed",
         inputs=[[0, 0]] + BURST_25 + [[2000, 0]] + _burst(30000) + [[45000, 1], [47000, 0]]
         + [[50000, 1], [51000, 0]] + _burst(60000) + [[75000, 1], [77000, 0]] + _burst(90000),
         until=200000,
         expect=[R0, [1380, "sensor.flapping", {}], [1510, "sos.pressed", {}],
                 [45030, "sos.pressed", {}], [75030, "sos.pressed", {}],
                 [150005, "sensor.recovered", {"state": "released"}],
                 [150005, "sos.released", {"held_ms": 2000}]]),
    dict(name="flapping with hold_ms: a press counts when its hold completes", config={"hold_ms": 1000},
         inputs=[[0, 0]] + [[1000 + 10 * k, 1 - k % 2] for k in range(20)]
         + [[5000, 1], [7000, 0], [20000, 1], [22000, 0], [30000, 1], [30500, 0], [32000, 1], [34000, 0]],
         until=90000,
         expect=[R0, [1190, "sensor.flapping", {}], [6030, "sos.pressed", {}], [21030, "sos.pressed", {}],
                 [33030, "sos.pressed", {}],
                 [67000, "sensor.recovered", {"state": "released"}],
                 [67000, "sos.released", {"held_ms": 2000}]]),
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


def test_flapping_continuous_bouncing_gives_one_sos_pressed_per_window() -> None:
    # 40 ms toggles (each level outlasts debounce_ms) for 30 s: every press is accepted.
    toggles = [[1000 + 40 * k, 1 - k % 2] for k in range(750)]
    events = run_inputs(SosButton("s1"), [[0, 0]] + toggles, 100000)
    flapping_at = next(ms(e) for e in events if e.type == "sensor.flapping")
    assert flapping_at == 1760                      # the 20th edge
    pressed = [ms(e) for e in events if e.type == "sos.pressed"]
    # before the episode each accepted press alarms (the last at 1750); in it, one per
    # window_s, the first exactly window_s after 1750 (a window that completes counts)
    assert [t for t in pressed if t > flapping_at] == [11750, 21750]
    assert pressed[-3:] == [1750, 11750, 21750]
    assert [(ms(e), e.type) for e in events if ms(e) > 21750] == [
        (90960, "sensor.recovered"), (90960, "sos.released")]


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
