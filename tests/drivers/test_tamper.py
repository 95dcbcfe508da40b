"""TamperSwitch on a virtual clock: debouncing, priorities, maintenance (docs/spec.md §13.1, §13.4)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.tamper import DEFAULTS, TamperSwitch
from tests.vector_harness import as_tuples, assert_matches, run_inputs

C0 = [1000, "tamper.closed", {"initial": True, "state": "closed"}]

CASES: List[Dict[str, Any]] = [
    dict(name="lid opened and shut", inputs=[[0, 0], [3000, 1], [5000, 0]], until=9000,
         expect=[C0, [3200, "tamper.opened", {"state": "open"}], [6000, "tamper.closed", {"state": "closed"}]]),
    dict(name="199 ms opening is a knock on the box", inputs=[[0, 0], [3000, 1], [3199, 0]], until=9000,
         expect=[C0]),
    dict(name="200 ms opening completes at the same instant as the closing edge",
         inputs=[[0, 0], [3000, 1], [3200, 0]], until=9000,
         expect=[C0, [3200, "tamper.opened", {}], [4200, "tamper.closed", {}]]),
    dict(name="open at boot", inputs=[[0, 1], [3000, 0]], until=9000,
         expect=[[200, "tamper.opened", {"initial": True, "state": "open"}], [4000, "tamper.closed", {}]]),
    dict(name="windows are configurable", config={"open_ms": 50, "close_ms": 20},
         inputs=[[0, 0], [1000, 1], [2000, 0]], until=3000,
         expect=[[20, "tamper.closed", {"initial": True}], [1050, "tamper.opened", {}], [2020, "tamper.closed", {}]]),
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tamper(case: Dict[str, Any]) -> None:
    switch = TamperSwitch("lid", **case.get("config", {}))
    assert_matches(run_inputs(switch, case["inputs"], case["until"]), case["expect"])


def test_defaults_follow_spec() -> None:
    assert DEFAULTS == {"open_ms": 200, "close_ms": 1000}
    assert TamperSwitch.kind == "tamper"


def test_opened_is_critical_closed_is_normal() -> None:
    t = TamperSwitch("lid")
    events = t.start(False, 0) + t.advance(1) + t.edge(True, 2) + t.advance(3) + t.edge(False, 4) + t.advance(5)
    assert [(e.type, e.critical) for e in events] == [
        ("tamper.closed", False), ("tamper.opened", True), ("tamper.closed", False)]
    assert "maintenance" not in events[1].data


def test_tamper_during_maintenance_is_normal_and_critical_again_after() -> None:
    t = TamperSwitch("lid")
    got = t.start(False, 0) + t.advance(1)
    assert t.set_maintenance(True, 10) == [] and t.maintenance
    got += t.edge(True, 20) + t.advance(21) + t.edge(False, 30) + t.advance(31)
    assert t.set_maintenance(False, 40) == [] and not t.maintenance
    got += t.edge(True, 50) + t.advance(51)
    assert [(e.at, e.type, e.critical, e.data.get("maintenance")) for e in got] == [
        (1.0, "tamper.closed", False, None),
        (20.2, "tamper.opened", False, True),
        (31.0, "tamper.closed", False, True),
        (50.2, "tamper.opened", True, None),
    ]


def test_enclosure_left_open_when_maintenance_ends_is_an_alarm() -> None:
    t = TamperSwitch("lid")
    t.start(False, 0)
    t.advance(1)
    t.set_maintenance(True, 2)
    opened = t.edge(True, 3) + t.advance(4)
    assert [(e.type, e.critical) for e in opened] == [("tamper.opened", False)]
    ended = t.set_maintenance(False, 100)
    assert as_tuples(ended) == [(100000, "tamper.opened", {"state": "open", "maintenance_ended": True})]
    assert ended[0].critical and t.state == "open"
    assert t.edge(False, 200) + t.advance(201) != []   # and it closes as usual


def test_maintenance_starting_while_open_sends_nothing_and_closing_is_normal() -> None:
    t = TamperSwitch("lid")
    first = t.start(True, 0) + t.advance(1)
    assert [(e.type, e.critical) for e in first] == [("tamper.opened", True)]
    assert t.set_maintenance(True, 5) == []
    closed = t.edge(False, 6) + t.advance(7)
    assert [(e.type, e.critical, e.data.get("maintenance")) for e in closed] == [("tamper.closed", False, True)]
    assert t.set_maintenance(False, 8) == []   # shut again: nothing to re-raise


def test_maintenance_set_before_start_covers_the_start_up_report() -> None:
    # a restart in the middle of a maintenance period: the loop sets the flag before start()
    t = TamperSwitch("lid")
    assert t.set_maintenance(True, 0) == []
    got = t.start(True, 0) + t.advance(1)
    assert [(e.type, e.critical, dict(e.data)) for e in got] == [
        ("tamper.opened", False, {"state": "open", "initial": True, "maintenance": True})]


def test_an_opening_completing_as_maintenance_starts_is_still_critical() -> None:
    # timers due at `now` run first: the window completed before the flag changed
    t = TamperSwitch("lid")
    t.start(False, 0)
    t.advance(1)
    t.edge(True, 2)
    assert [(e.at, e.critical) for e in t.set_maintenance(True, 2.2)] == [(2.2, True)]


def test_repeated_maintenance_calls_change_nothing() -> None:
    t = TamperSwitch("lid")
    t.start(True, 0)
    t.advance(1)
    assert t.set_maintenance(False, 2) == []
    assert t.set_maintenance(True, 3) == [] and t.set_maintenance(True, 4) == []


@pytest.mark.parametrize("kwargs", [dict(open_ms=-1), dict(close_ms="1s")])
def test_bad_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TamperSwitch("lid", **kwargs)
