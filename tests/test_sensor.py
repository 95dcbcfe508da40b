"""SensorCore behaviour shared by all devices, and property tests over random edges."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.door import DoorContact
from drivers.events import SensorEvent
from drivers.sensor import SensorCore
from drivers.sos import SosButton
from tests.vector_harness import make_sensor


def test_call_order_is_enforced() -> None:
    door = DoorContact("d")
    with pytest.raises(RuntimeError):
        door.edge(True, 0)
    with pytest.raises(RuntimeError):
        door.advance(0)
    with pytest.raises(RuntimeError):
        door.raw
    door.start(False, 0)
    with pytest.raises(RuntimeError):
        door.start(False, 1)


def test_time_going_backwards_is_clamped() -> None:
    door = DoorContact("d", flapping=None)
    door.start(False, 10.0)
    door.advance(12.0)
    door.edge(True, 11.5)            # an older timestamp from another thread
    assert door.next_deadline() == 12.5


@pytest.mark.parametrize("name", ["", "agent", "a b", "x/y"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        SosButton(name)


KIND_CONFIGS = st.sampled_from([
    ("sos_button", {}), ("sos_button", {"hold_ms": 200}), ("sos_button", {"stuck_s": 2}),
    ("sos_button", {"flapping": {"max_edges": 4, "window_s": 1, "quiet_s": 2}}),
    ("door", {}), ("door", {"flapping": {"max_edges": 3, "window_s": 2, "quiet_s": 1}}),
    ("smoke", {}), ("smoke", {"clear_ms": 700, "flapping": {"max_edges": 5, "window_s": 1, "quiet_s": 1}}),
    ("tamper", {}), ("tamper", {"flapping": {"max_edges": 3, "window_s": 2, "quiet_s": 1}}),
    ("battery", {"low_ms": 500, "ok_ms": 2000}),
    ("mains", {"report_delay_s": 1, "jitter_s": 1, "restore_delay_s": 2, "rand": lambda: 0.5}),
    ("mains", {"report_delay_s": 0.5, "jitter_s": 0, "restore_delay_s": 0.2,
               "flapping": {"max_edges": 4, "window_s": 1, "quiet_s": 1}}),
])
GAPS = st.lists(st.tuples(st.one_of(st.integers(0, 60), st.integers(0, 3000), st.just(0)), st.booleans()),
                max_size=60)


@settings(max_examples=300, deadline=None)
@given(KIND_CONFIGS, st.booleans(), GAPS, st.floats(0, 1e5, allow_nan=False))
def test_random_edges_give_sensible_events(kc: Tuple[str, Dict[str, Any]], level0: bool,
                                           gaps: List[Tuple[int, bool]], t0: float) -> None:
    kind, config = kc
    sensor = make_sensor(kind, config)
    now = t0
    events: List[SensorEvent] = []

    def collect(got: List[SensorEvent], at: float) -> None:
        for e in got:
            assert e.at <= at + 5.01e-7, "an event from the future (beyond us rounding)"
            assert not events or e.at >= events[-1].at, "events out of order"
        events.extend(got)
        due = sensor.next_deadline()
        assert due is None or due > at, f"deadline {due} not after now {at}"

    collect(sensor.start(level0, now), now)
    for gap_ms, level in gaps:
        # sometimes wake at the deadline like the loop does, sometimes sleep past it
        due = sensor.next_deadline()
        if due is not None and gap_ms % 2 == 0 and due < now + gap_ms / 1000:
            collect(sensor.advance(due), due)
        now += gap_ms / 1000
        collect(sensor.edge(level, now), now)
    final_raw = sensor.raw
    end = now + 3600
    collect(sensor.advance(end), end)
    assert sensor.next_deadline() is None or kind == "sos_button"

    level_events = [e for e in events if "state" in e.data and not e.type.startswith("sensor.")]
    states = [e.data["state"] for e in level_events]
    assert all(a != b for a, b in zip(states, states[1:])), f"repeated state report: {states}"
    assert [e.data.get("initial", False) for e in level_events] == [True] + [False] * (len(level_events) - 1)
    faults = [e.type if e.type != "sensor.recovered" else "recovered." + e.data["fault"]
              for e in events if e.type.startswith("sensor.")]
    flaps = [f for f in faults if "flapping" in f]
    assert flaps == ["sensor.flapping", "recovered.flapping"] * (len(flaps) // 2)
    stucks = [f for f in faults if "stuck" in f]
    assert stucks[: len(stucks) // 2 * 2] == ["sensor.stuck", "recovered.stuck"] * (len(stucks) // 2)
    for e in events:
        if "held_ms" in e.data:
            assert e.data["held_ms"] >= 0
    # after an hour of quiet, the reported state is the raw level's
    words = {"sos_button": ("pressed", "released"), "door": ("open", "closed"), "smoke": ("alarm", "clear"),
             "tamper": ("open", "closed"), "battery": ("low", "ok"), "mains": ("lost", "present")}[kind]
    assert sensor.state == words[0 if final_raw else 1]


@pytest.mark.parametrize("module", ["events", "debounce", "sensor", "sos", "door", "smoke", "contact", "tamper",
                                    "power"])
def test_cores_are_sans_io(module: str) -> None:
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parent.parent / "drivers" / f"{module}.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not names & {"gpiozero", "paho", "jwt", "sqlite3", "socket", "threading", "time", "asyncio"}
