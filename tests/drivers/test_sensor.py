"""SensorCore behaviour shared by all devices, and property tests over random edges."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.debounce import SOS_FLAPPING, Micros, ms_to_micros, to_micros
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
    ("sos_button", {"hold_ms": 200, "flapping": {"max_edges": 8, "window_s": 1, "quiet_s": 2}}),
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
    raw: List[Tuple[Micros, bool]] = [(to_micros(t0), level0)]

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
        raw.append((to_micros(now), level))
        collect(sensor.edge(level, now), now)
    final_raw = sensor.raw
    end = now + 3600
    collect(sensor.advance(end), end)
    assert sensor.next_deadline() is None or kind == "sos_button"

    episodes = _flapping_episodes(events)
    level_events = [e for e in events if "state" in e.data and not e.type.startswith("sensor.")]
    for a, b in zip(level_events, level_events[1:]):
        # the one repeat allowed: a critical event (sos.pressed, power.mains_lost, ...) in an
        # episode after a suppressed return to normal: flapping never suppresses an alarm
        assert a.data["state"] != b.data["state"] or (
            b.critical and _in_episode(to_micros(b.at), episodes)), \
            f"repeated state report: {[e.data['state'] for e in level_events]}"
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
    if kind == "sos_button":
        _check_no_press_swallowed(config, raw, events, episodes)


Span = Tuple[Micros, Micros]


def _flapping_episodes(events: List[SensorEvent]) -> List[Span]:
    """(start, end) of each flapping episode, in microseconds."""
    starts = [to_micros(e.at) for e in events if e.type == "sensor.flapping"]
    ends = [to_micros(e.at) for e in events if e.type == "sensor.recovered" and e.data["fault"] == "flapping"]
    return list(zip(starts, ends))


def _in_episode(t: Micros, episodes: List[Span]) -> bool:
    # Timers due at the instant of the edge that starts an episode fire before it, and
    # before the recovery due at their instant: so (start, end].
    return any(start < t <= end for start, end in episodes)


def _hold_completions(raw: List[Tuple[Micros, bool]], debounce_us: Micros, hold_us: Micros) -> List[Micros]:
    """An oracle apart from drivers/: when each accepted press completed its hold."""
    changes: List[Tuple[Micros, bool]] = []
    for t, level in raw:
        if not changes or level != changes[-1][1]:
            changes.append((t, level))
    accepted: List[Tuple[Micros, bool]] = []
    stable: Optional[bool] = None
    for i, (t, level) in enumerate(changes):
        nxt = changes[i + 1][0] if i + 1 < len(changes) else None
        if level != stable and (nxt is None or nxt >= t + debounce_us):
            accepted.append((t + debounce_us, level))
            stable = level
    done = []
    for i, (t, level) in enumerate(accepted):
        release = accepted[i + 1][0] if i + 1 < len(accepted) else None
        if level and (release is None or release >= t + hold_us):
            done.append(t + hold_us)
    return done


def _check_no_press_swallowed(config: Dict[str, Any], raw: List[Tuple[Micros, bool]],
                              events: List[SensorEvent], episodes: List[Span]) -> None:
    """docs/spec.md §3: a press accepted after an accepted release (its hold completed) at
    least window_s after the previous sos.pressed is always one; at most one per window_s
    while flapping; and no sos.pressed comes from anything else but a recovery."""
    window_us = to_micros(config["flapping"]["window_s"] if "flapping" in config else SOS_FLAPPING.window_s)
    holds = _hold_completions(raw, ms_to_micros(30), ms_to_micros(config.get("hold_ms", 0)))
    pressed = [to_micros(e.at) for e in events if e.type == "sos.pressed"]
    for h in holds:
        before = [p for p in pressed if p < h]
        if before and h - before[-1] < window_us and _in_episode(h, episodes):
            continue    # rate-limited: the care centre has had an alarm less than window_s ago
        assert h in pressed, f"press completed at {h} us swallowed: pressed {pressed}, episodes {episodes}"
    for a, b in zip(pressed, pressed[1:]):
        if any(start < a and b <= end for start, end in episodes):
            assert b - a >= window_us, f"two sos.pressed within window_s in one episode: {a}, {b}"
    recoveries = {end for _, end in episodes}
    assert set(pressed) <= set(holds) | recoveries, f"sos.pressed {pressed} without a press {holds}"


@pytest.mark.parametrize("module", ["events", "debounce", "sensor", "sos", "door", "smoke", "contact", "tamper", "motion",
                                    "power"])
def test_cores_are_sans_io(module: str) -> None:
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parents[2] / "drivers" / f"{module}.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not names & {"gpiozero", "paho", "jwt", "sqlite3", "socket", "threading", "time", "asyncio"}
