"""DoorContact on a virtual clock: table of (name, config, inputs, until, expected events)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.door import DoorContact
from tests.vector_harness import assert_matches, make_sensor, run_inputs

C0 = [1000, "door.closed", {"initial": True, "state": "closed"}]
TOGGLES_100MS = [[2000 + 100 * k, 1 - k % 2] for k in range(20)]   # 16th edge at 3500

CASES: List[Dict[str, Any]] = [
    dict(name="clean open and close", inputs=[[0, 0], [3000, 1], [6000, 0]], until=9000,
         expect=[C0, [3500, "door.opened", {"state": "open"}], [7000, "door.closed", {"state": "closed"}]]),
    dict(name="door slams and bounces in its frame",
         inputs=[[0, 0], [3000, 1], [6000, 0], [6001, 1], [6002, 0], [6003, 1], [6004, 0]], until=9000,
         expect=[C0, [3500, "door.opened", {}], [7004, "door.closed", {}]]),
    dict(name="499 ms opening is rattle", inputs=[[0, 0], [3000, 1], [3499, 0]], until=9000, expect=[C0]),
    dict(name="500 ms opening completes at the same instant as the closing edge",
         inputs=[[0, 0], [3000, 1], [3500, 0]], until=9000,
         expect=[C0, [3500, "door.opened", {}], [4500, "door.closed", {}]]),
    dict(name="closing blip while open changes nothing",
         inputs=[[0, 0], [3000, 1], [4000, 0], [4999, 1], [6000, 0]], until=9000,
         expect=[C0, [3500, "door.opened", {}], [7000, "door.closed", {}]]),
    dict(name="open at boot", inputs=[[0, 1], [3000, 0]], until=9000,
         expect=[[500, "door.opened", {"initial": True, "state": "open"}], [4000, "door.closed", {}]]),
    dict(name="asymmetric windows are configurable", config={"open_ms": 100, "close_ms": 50},
         inputs=[[0, 0], [1000, 1], [2000, 0]], until=3000,
         expect=[[50, "door.closed", {"initial": True}], [1100, "door.opened", {}], [2050, "door.closed", {}]]),
    dict(name="flapping ends open: recovered, then the change",
         inputs=[[0, 0]] + TOGGLES_100MS + [[4000, 1]], until=70000,
         expect=[C0, [3500, "sensor.flapping", {"edges": 16}], [4500 - 500 + 60000, "sensor.recovered", {"state": "open"}],
                 [64000, "door.opened", {"state": "open"}]]),
    # the opening edge at 10000 is a burst edge (the toggles are within 10 s), the closing
    # edge at 20000 is alone: the episode ends 60 s after 10000
    dict(name="a real opening during flapping is held back",
         inputs=[[0, 0]] + TOGGLES_100MS + [[10000, 1], [20000, 0]], until=90000,
         expect=[C0, [3500, "sensor.flapping", {}], [70000, "sensor.recovered", {"state": "closed"}]]),
    # docs/spec.md §3: the episode ends quiet_s after its last burst edge (ceil(16 / 4) = 4
    # edges within window_s); 1 ms blips every 45 s do not keep it open.
    dict(name="flapping: glitches do not keep the episode open",
         inputs=[[0, 0]] + TOGGLES_100MS + [[45000 * j + d, 1 - d] for j in range(1, 8) for d in (0, 1)]
         + [[400000, 1], [410000, 0]], until=420000,
         expect=[C0, [3500, "sensor.flapping", {}], [63900, "sensor.recovered", {"state": "closed"}],
                 [400500, "door.opened", {}], [411000, "door.closed", {}]]),
    dict(name="flapping: a later burst of 4 edges keeps the episode open",
         inputs=[[0, 0]] + TOGGLES_100MS + [[30000, 1], [30100, 0], [30200, 1], [30300, 0], [45000, 1], [55000, 0]],
         until=100000,
         expect=[C0, [3500, "sensor.flapping", {}], [90300, "sensor.recovered", {"state": "closed"}]]),
    dict(name="flapping: 3 edges are not a burst; the episode ends, then the change is reported",
         inputs=[[0, 0]] + TOGGLES_100MS + [[30000, 1], [30100, 0], [30200, 1]], until=100000,
         expect=[C0, [3500, "sensor.flapping", {}], [63900, "sensor.recovered", {"state": "open"}],
                 [63900, "door.opened", {}]]),
    dict(name="flapping before the start-up report: the report waits, still initial",
         inputs=[[0, 0]] + [[10 + 10 * k, 1 - k % 2] for k in range(16)], until=70000,
         expect=[[160, "sensor.flapping", {"state": "unknown"}],
                 [60160, "sensor.recovered", {"state": "closed"}],
                 [60160, "door.closed", {"initial": True}]]),
    dict(name="edges spread over more than 10 s are not flapping",
         inputs=[[0, 0]] + [[2000 + 1200 * k, 1 - k % 2] for k in range(20)], until=30000,
         expect=[C0] + [[2500 + 2400 * j, "door.opened", {}] for j in range(10)]
         + [[4200 + 2400 * j, "door.closed", {}] for j in range(10)]),
    dict(name="flapping policy configurable", config={"flapping": {"max_edges": 4, "window_s": 1, "quiet_s": 5}},
         inputs=[[0, 0], [2000, 1], [2100, 0], [2200, 1], [2300, 0]], until=9000,
         expect=[C0, [2300, "sensor.flapping", {"edges": 4}], [7300, "sensor.recovered", {"state": "closed"}]]),
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_door(case: Dict[str, Any]) -> None:
    sensor = make_sensor("door", case.get("config"))
    events = sorted(run_inputs(sensor, case["inputs"], case["until"]), key=lambda e: e.at)
    assert_matches(events, sorted(case["expect"], key=lambda e: e[0]))


def test_door_events_are_normal_priority() -> None:
    door = DoorContact("front_door")
    events = door.start(True, 0) + door.advance(1) + door.edge(False, 2) + door.advance(5)
    assert [(e.type, e.critical) for e in events] == [("door.opened", False), ("door.closed", False)]


def test_duplicate_levels_are_not_edges() -> None:
    door = DoorContact("d", flapping=None)
    door.start(False, 0)
    door.edge(True, 1.0)
    assert door.edge(True, 1.2) == []            # a re-read repeating the level
    assert door.next_deadline() == 1.5           # the window did not restart


@pytest.mark.parametrize("kwargs", [dict(open_ms=-5), dict(close_ms=None), dict(open_ms=True)])
def test_bad_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DoorContact("d", **kwargs)
