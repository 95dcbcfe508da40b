"""SmokeDetector on a virtual clock: table of (name, config, inputs, until, expected events)."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.events import SensorEvent
from drivers.smoke import SmokeDetector
from tests.vector_harness import as_tuples, assert_matches, make_sensor, run_inputs

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


# ---------------------------------------------------------------- Form C (docs/spec.md §13.2)
# Pin levels, as a technician measures them: COM to GND, both pull-ups. Healthy and quiet the
# NO pin reads 1 and the NC pin 0; in an alarm NO reads 0 and NC 1 (``active: low``).
QUIET, SOUNDING = (1, 0), (0, 1)


def run_form_c(smoke: SmokeDetector, start: Tuple[int, int], inputs: Sequence[Tuple[int, str, int]],
               until_ms: int) -> List[SensorEvent]:
    """Like ``run_inputs``, for two contacts: ``inputs`` are ``(t_ms, "no"|"nc", pin level)``.

    The pins are mapped to logical levels as the loop maps them, both through the
    sensor's ``active: low`` (pin 0 = True).
    """
    out = smoke.start(start[0] == 0, 0.0, nc=start[1] == 0)
    for t, contact, pin in list(inputs) + [(until_ms, "", 0)]:
        while True:
            due = smoke.next_deadline()
            if due is None or due > t / 1000:
                break
            out += smoke.advance(due)
        if contact == "no":
            out += smoke.edge(pin == 0, t / 1000)
        elif contact == "nc":
            out += smoke.edge_nc(pin == 0, t / 1000)
        else:
            out += smoke.advance(t / 1000)
    return out


def fault(t: int, no: int, nc: int) -> List[Any]:
    return [t, "sensor.fault", {"fault": "wiring", "levels": {"no": no, "nc": nc}}]


FORM_C: List[Dict[str, Any]] = [
    dict(name="healthy alarm with break-before-make changeover", start=QUIET,
         inputs=[(5000, "nc", 1), (5005, "no", 0), (8000, "no", 1), (8004, "nc", 0)], until=30000,
         expect=[C0, [6005, "smoke.alarm", {"pattern": "continuous"}], [23000, "smoke.cleared", {}]]),
    dict(name="both high (common or NC wire cut): fault, and a real alarm on NO still alarms", start=QUIET,
         inputs=[(5000, "nc", 1), (10000, "no", 0)], until=11500,
         expect=[C0, fault(7000, 1, 1), [11000, "smoke.alarm", {"pattern": "continuous"}]]),
    dict(name="both low (NC welded, real alarm): the alarm first, then the fault", start=QUIET,
         inputs=[(5000, "no", 0)], until=20000,
         expect=[C0, [6000, "smoke.alarm", {"pattern": "continuous"}], fault(7000, 0, 0)]),
    dict(name="NC wire cut, then a pulsed alarm on NO is still recognised", start=QUIET,
         inputs=[(1000, "nc", 1)] + [(t, "no", 1 - lv) for t, lv in pulses(5000, 500, 500, 3)], until=10000,
         expect=[C0, fault(3000, 1, 1), [7050, "smoke.alarm", {"pattern": "pulsed"}]]),
    dict(name="equal for 1999 ms is a changeover, not a fault", start=QUIET,
         inputs=[(5000, "nc", 1), (6999, "nc", 0)], until=30000, expect=[C0]),
    dict(name="repaired: recovered after disagreeing for wiring_fault_ms", start=QUIET,
         inputs=[(5000, "nc", 1), (10000, "nc", 0)], until=30000,
         expect=[C0, fault(7000, 1, 1), [12000, "sensor.recovered", {"fault": "wiring", "state": "clear"}]]),
    dict(name="a loose wire that reconnects for 1999 ms does not recover", start=QUIET,
         inputs=[(5000, "nc", 1), (10000, "nc", 0), (11999, "nc", 1)], until=30000,
         expect=[C0, fault(7000, 1, 1)]),
    dict(name="faulty at start-up", start=(1, 1), inputs=[], until=30000,
         expect=[C0, fault(2000, 1, 1)]),
    dict(name="wiring_fault_ms is configurable", start=QUIET, config={"wiring_fault_ms": 500},
         inputs=[(5000, "nc", 1)], until=30000, expect=[C0, fault(5500, 1, 1)]),
]


@pytest.mark.parametrize("case", FORM_C, ids=[c["name"] for c in FORM_C])
def test_form_c(case: Dict[str, Any]) -> None:
    smoke = SmokeDetector("k", supervised=True, **case.get("config", {}))
    assert_matches(run_form_c(smoke, case["start"], case["inputs"], case["until"]), case["expect"])


def test_wiring_fault_is_critical_and_recovery_normal() -> None:
    smoke = SmokeDetector("k", supervised=True)
    got = run_form_c(smoke, QUIET, [(5000, "nc", 1), (10000, "nc", 0)], 30000)
    assert [(e.type, e.critical) for e in got] == [
        ("smoke.cleared", True), ("sensor.fault", True), ("sensor.recovered", False)]
    assert smoke.raw_nc is True and smoke.wiring_fault is False


def test_wiring_levels_follow_active_high() -> None:
    # an opto-isolated input wired active-high: pin 1 = NO closed
    smoke = SmokeDetector("k", supervised=True, active="high")
    got = smoke.start(False, 0, nc=True) + smoke.edge_nc(False, 1) + smoke.advance(3)
    assert as_tuples(got)[-1] == (3000, "sensor.fault", {"fault": "wiring", "levels": {"no": 0, "nc": 0}})
    assert smoke.wiring_fault


def test_nc_level_is_required_when_supervised_and_refused_otherwise() -> None:
    with pytest.raises(ValueError, match="nc"):
        SmokeDetector("k", supervised=True).start(False, 0)
    plain = SmokeDetector("k")
    with pytest.raises(ValueError, match="pin_nc"):
        plain.start(False, 0, nc=True)
    plain.start(False, 0)
    with pytest.raises(RuntimeError, match="pin_nc"):
        plain.edge_nc(True, 1)


@pytest.mark.parametrize("kwargs", [dict(wiring_fault_ms=0), dict(wiring_fault_ms=-1), dict(active="up")])
def test_bad_form_c_settings_are_refused(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmokeDetector("k", supervised=True, **kwargs)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.booleans(),
       st.lists(st.tuples(st.integers(0, 3000), st.booleans(), st.booleans()), max_size=50))
def test_form_c_never_changes_the_alarm_decision(no0: bool, nc0: bool,
                                                 steps: List[Tuple[int, bool, bool]]) -> None:
    """Random edges on both contacts: the smoke events are exactly an unsupervised detector's."""
    supervised = SmokeDetector("k", supervised=True, wiring_fault_ms=700)
    plain = SmokeDetector("k")
    got = supervised.start(no0, 0, nc=nc0)
    want = plain.start(no0, 0)
    now = 0.0
    for gap_ms, on_nc, level in steps:
        now += gap_ms / 1000
        if on_nc:
            got += supervised.edge_nc(level, now)
        else:
            got += supervised.edge(level, now)
            want += plain.edge(level, now)
    got += supervised.advance(now + 60)
    want += plain.advance(now + 60)
    assert [e for e in got if e.type.startswith("smoke.")] == want
    faults = [e.type for e in got if not e.type.startswith("smoke.")]
    assert faults == ["sensor.fault", "sensor.recovered"] * (len(faults) // 2) + ["sensor.fault"] * (len(faults) % 2)
    for e in got:
        if e.type == "sensor.fault":
            assert e.data["levels"]["no"] == e.data["levels"]["nc"]
    assert supervised.wiring_fault == (supervised.raw == supervised.raw_nc)
