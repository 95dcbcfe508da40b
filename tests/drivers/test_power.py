"""MainsMonitor and BatteryMonitor on a virtual clock (docs/spec.md §13.1)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from drivers.power import BATTERY_DEFAULTS, MAINS_DEFAULTS, BatteryMonitor, MainsMonitor
from tests.vector_harness import as_tuples, assert_matches, run_inputs

MIN = 60_000   # ms


class Draws:
    """An injected random source: hands out the given fractions of ``jitter_s`` in order."""

    def __init__(self, *fractions: float) -> None:
        self.left = list(fractions)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.left.pop(0)


def mains(*fractions: float, **kwargs: Any) -> MainsMonitor:
    return MainsMonitor("mains", rand=Draws(*fractions), **kwargs)


def draws(m: MainsMonitor) -> int:
    source = m.rand
    assert isinstance(source, Draws)
    return source.calls


R0 = [60_000, "power.mains_restored", {"initial": True, "state": "present"}]


def test_defaults_follow_spec() -> None:
    assert MAINS_DEFAULTS == {"report_delay_s": 300, "jitter_s": 120, "restore_delay_s": 60}
    assert BATTERY_DEFAULTS == {"low_ms": 5000, "ok_ms": 60000}
    assert (MainsMonitor.kind, BatteryMonitor.kind) == ("mains", "battery")


def test_a_four_minute_cut_reports_nothing_and_counts_a_blip() -> None:
    m = mains(0.0)   # the shortest delay the jitter can give: 300 s
    got = run_inputs(m, [[0, 0], [100_000, 1], [100_000 + 4 * MIN, 0]], 2 * 3600_000)
    assert_matches(got, [R0])
    assert m.power_blips == 1 and draws(m) == 1 and m.state == "present"


def test_a_six_minute_cut_reports_after_the_delay_plus_jitter_and_restores_60_s_after() -> None:
    m = mains(0.25)   # 0.25 * 120 s = 30 s of jitter
    back = 100_000 + 6 * MIN
    got = run_inputs(m, [[0, 0], [100_000, 1], [back, 0]], 2 * 3600_000)
    assert_matches(got, [R0, [100_000 + 330_000, "power.mains_lost", {"state": "lost", "delay_s": 330.0}],
                         [back + 60_000, "power.mains_restored", {"state": "present"}]])
    assert [e.critical for e in got] == [False, True, False]
    assert "initial" not in got[1].data and m.power_blips == 0


def test_start_up_with_mains_already_gone() -> None:
    m = mains(0.5)
    got = run_inputs(m, [[0, 1], [500_000, 0]], 3600_000)
    assert_matches(got, [[360_000, "power.mains_lost", {"initial": True, "state": "lost", "delay_s": 360.0}],
                         [560_000, "power.mains_restored", {"state": "present"}]])
    assert "initial" not in got[1].data and got[0].critical


def test_start_up_without_mains_that_returns_before_the_delay() -> None:
    m = mains(0.5)
    got = run_inputs(m, [[0, 1], [200_000, 0]], 3600_000)
    assert_matches(got, [[260_000, "power.mains_restored", {"initial": True, "state": "present"}]])
    assert m.power_blips == 1


def test_every_cut_draws_a_fresh_jitter() -> None:
    m = mains(0.25, 0.75)   # 330 s, then 390 s
    cut1, cut2 = 100_000, 2000_000
    got = run_inputs(m, [[0, 0], [cut1, 1], [cut1 + 7 * MIN, 0], [cut2, 1], [cut2 + 7 * MIN, 0]], 3 * 3600_000)
    assert_matches(got, [R0, [cut1 + 330_000, "power.mains_lost", {"delay_s": 330.0}],
                         [cut1 + 7 * MIN + 60_000, "power.mains_restored", {}],
                         [cut2 + 390_000, "power.mains_lost", {"delay_s": 390.0}],
                         [cut2 + 7 * MIN + 60_000, "power.mains_restored", {}]])
    assert draws(m) == 2 and m.power_blips == 0


def test_the_delay_completing_as_power_returns_counts_as_completed() -> None:
    m = mains(0.5)
    got = run_inputs(m, [[0, 0], [100_000, 1], [460_000, 0]], 3600_000)
    assert_matches(got, [R0, [460_000, "power.mains_lost", {}], [520_000, "power.mains_restored", {}]])
    assert m.power_blips == 0


def test_power_flickering_back_during_a_reported_outage_neither_restores_nor_draws() -> None:
    m = mains(0.0)
    got = run_inputs(m, [[0, 0], [100_000, 1], [500_000, 0], [559_999, 1], [900_000, 0]], 3600_000)
    assert_matches(got, [R0, [400_000, "power.mains_lost", {}], [960_000, "power.mains_restored", {}]])
    assert draws(m) == 1 and m.power_blips == 0


def test_cuts_during_the_start_up_restore_window() -> None:
    # restored is reported only after a reported lost, or as the start-up report
    m = mains(0.0, 0.0)
    got = run_inputs(m, [[0, 0], [10_000, 1], [250_000, 0], [260_000, 1], [270_000, 0]], 3600_000)
    assert_matches(got, [[330_000, "power.mains_restored", {"initial": True}]])
    assert m.power_blips == 2 and draws(m) == 2


def test_blips_are_counted_since_start() -> None:
    m = mains(*[0.9] * 5)
    inputs: List[List[int]] = [[0, 0]] + [[t, lv] for k in range(5) for t, lv in
                                          ((100_000 + k * 600_000, 1), (100_000 + k * 600_000 + 1000, 0))]
    got = run_inputs(m, inputs, 4 * 3600_000)
    assert_matches(got, [R0])
    assert m.power_blips == 5


def test_timings_are_configurable() -> None:
    m = mains(0.5, report_delay_s=10, jitter_s=4, restore_delay_s=2)
    got = run_inputs(m, [[0, 0], [5000, 1], [20_000, 0]], 60_000)
    assert_matches(got, [[2000, "power.mains_restored", {"initial": True}],
                         [17_000, "power.mains_lost", {"delay_s": 12.0}], [22_000, "power.mains_restored", {}]])


def test_no_jitter_draws_nothing() -> None:
    m = mains(jitter_s=0)
    got = run_inputs(m, [[0, 1]], 400_000)
    assert as_tuples(got) == [(300_000, "power.mains_lost", {"state": "lost", "initial": True, "delay_s": 300.0})]
    assert draws(m) == 0


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_a_random_source_out_of_range_is_refused(value: float) -> None:
    m = MainsMonitor("mains", rand=lambda: value)
    with pytest.raises(ValueError, match="rand"):
        m.start(True, 0)


def test_the_default_random_source_stays_within_the_jitter() -> None:
    delays = set()
    for _ in range(20):
        m = MainsMonitor("mains")
        m.start(True, 0)
        due = m.next_deadline()
        assert due is not None and 300 <= due <= 420
        delays.add(due)
    assert len(delays) > 1   # gateways of one district do not share a delay


@pytest.mark.parametrize("kwargs", [dict(report_delay_s=0), dict(jitter_s=-1), dict(restore_delay_s="60")])
def test_bad_mains_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MainsMonitor("mains", **kwargs)


BATTERY_CASES: List[Dict[str, Any]] = [
    dict(name="low, then charged again", inputs=[[0, 0], [100_000, 1], [200_000, 0]], until=400_000,
         expect=[[60_000, "power.battery_ok", {"initial": True, "state": "ok"}],
                 [105_000, "power.battery_low", {"state": "low"}], [260_000, "power.battery_ok", {"state": "ok"}]]),
    dict(name="a dip under load shorter than 5 s is ignored", inputs=[[0, 0], [100_000, 1], [104_999, 0]],
         until=400_000, expect=[[60_000, "power.battery_ok", {"initial": True}]]),
    dict(name="low at boot", inputs=[[0, 1]], until=400_000,
         expect=[[5000, "power.battery_low", {"initial": True, "state": "low"}]]),
    dict(name="ok only after 60 s of ok", inputs=[[0, 1], [10_000, 0], [69_999, 1], [70_000, 0]], until=400_000,
         expect=[[5000, "power.battery_low", {"initial": True}], [130_000, "power.battery_ok", {}]]),
    dict(name="windows are configurable", config={"low_ms": 100, "ok_ms": 200},
         inputs=[[0, 0], [1000, 1], [2000, 0]], until=5000,
         expect=[[200, "power.battery_ok", {"initial": True}], [1100, "power.battery_low", {}],
                 [2200, "power.battery_ok", {}]]),
]


@pytest.mark.parametrize("case", BATTERY_CASES, ids=[c["name"] for c in BATTERY_CASES])
def test_battery(case: Dict[str, Any]) -> None:
    battery = BatteryMonitor("ups_battery", **case.get("config", {}))
    assert_matches(run_inputs(battery, case["inputs"], case["until"]), case["expect"])


def test_battery_low_is_critical_ok_is_normal() -> None:
    b = BatteryMonitor("ups_battery")
    events = run_inputs(b, [[0, 1], [10_000, 0]], 100_000)
    assert [(e.type, e.critical) for e in events] == [("power.battery_low", True), ("power.battery_ok", False)]


@pytest.mark.parametrize("kwargs", [dict(low_ms=-5), dict(ok_ms=None)])
def test_bad_battery_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BatteryMonitor("ups_battery", **kwargs)
