"""Drivers for the sensor tests: build a device from a vector, run it on a virtual clock.

``run_inputs`` simulates the agent's loop exactly: it wakes at every ``next_deadline()``
before the next input, calls ``advance(deadline)``, then feeds the input with ``edge()``.
Times in and out are milliseconds (as in ``tests/vectors/sensors.yaml``, docs/spec.md §3).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import yaml

from drivers.debounce import FlappingPolicy
from drivers.door import DoorContact
from drivers.events import SensorEvent
from drivers.power import BatteryMonitor, MainsMonitor
from drivers.sensor import SensorCore
from drivers.smoke import SmokeDetector
from drivers.sos import SosButton
from drivers.tamper import TamperSwitch

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors" / "sensors.yaml"

KINDS: Dict[str, Type[SensorCore]] = {
    "sos_button": SosButton, "door": DoorContact, "smoke": SmokeDetector,
    "tamper": TamperSwitch, "mains": MainsMonitor, "battery": BatteryMonitor,
}

Got = Tuple[int, str, Dict[str, Any]]


def load_vectors(path: Path = VECTORS) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, list)
    return data


def make_sensor(kind: str, config: Optional[Mapping[str, Any]] = None, name: str = "s1") -> SensorCore:
    kwargs: Dict[str, Any] = dict(config or {})
    if "flapping" in kwargs:
        flap = kwargs["flapping"]
        kwargs["flapping"] = None if flap is False else FlappingPolicy(**flap)
    return KINDS[kind](name, **kwargs)


def ms(event: SensorEvent) -> int:
    return int(round(event.at * 1000))


def run_inputs(sensor: SensorCore, inputs: Sequence[Sequence[float]], until_ms: float,
               check: bool = True) -> List[SensorEvent]:
    """Feed ``[[t_ms, level], ...]`` (first = level at start-up) and run to ``until_ms``.

    With ``check``, assert the loop invariants on the way: no deadline in the past,
    every event's time within the span just processed.
    """
    out: List[SensorEvent] = []
    (t0, level0), rest = inputs[0], inputs[1:]
    now = t0 / 1000
    out += sensor.start(bool(level0), now)
    horizon = [t / 1000 for t, _ in rest] + [until_ms / 1000]
    for i, stop in enumerate(horizon):
        while True:
            due = sensor.next_deadline()
            if check and due is not None:
                assert due > now, f"deadline {due} is not after now {now}"
            if due is None or due > stop:
                break
            got = sensor.advance(due)
            if check:
                after = sensor.next_deadline()
                assert after is None or after > due, f"deadline {due} did not move on ({after})"
                assert all(e.at == due for e in got)
            out += got
            now = due
        if i < len(rest):
            got = sensor.edge(bool(rest[i][1]), stop)
            if check:
                assert all(e.at == stop for e in got)
            out += got
        else:
            out += sensor.advance(stop)
        now = stop
    return out


def as_tuples(events: Sequence[SensorEvent]) -> List[Got]:
    return [(ms(e), e.type, dict(e.data)) for e in events]


def assert_matches(events: Sequence[SensorEvent], expect: Sequence[Sequence[Any]]) -> None:
    """Exact (t, type) sequence; each expected data dict is a subset of the event's."""
    got = as_tuples(events)
    assert [(t, ty) for t, ty, _ in got] == [(int(t), ty) for t, ty, *_ in expect], got
    for (t, ty, data), exp in zip(got, expect):
        want = exp[2] if len(exp) > 2 else {}
        for key, value in (want or {}).items():
            assert key in data and data[key] == value, f"{ty} at {t}: data {data} lacks {key}={value!r}"
