"""Every example of tests/vectors/sensors.yaml, run on a virtual clock (docs/spec.md §3)."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from tests.vector_harness import assert_matches, load_vectors, make_sensor, run_inputs

ALL = load_vectors()


def test_vectors_cover_every_kind() -> None:
    assert {v["kind"] for v in ALL} == {"sos_button", "door", "smoke"}
    assert len(ALL) >= 16


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_vector(vector: Dict[str, Any]) -> None:
    sensor = make_sensor(vector["kind"], vector.get("config"))
    events = run_inputs(sensor, vector["input"], vector["until"])
    assert_matches(events, vector["expect"])


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_vector_with_a_lazy_loop(vector: Dict[str, Any]) -> None:
    """A loop that only wakes for inputs (never at deadlines) sees the same events at the
    same times: events carry the instant their window completed, not when noticed."""
    sensor = make_sensor(vector["kind"], vector.get("config"))
    (t0, level0), rest = vector["input"][0], vector["input"][1:]
    events = sensor.start(bool(level0), t0 / 1000)
    for t, level in rest:
        events += sensor.edge(bool(level), t / 1000)
    events += sensor.advance(vector["until"] / 1000)
    assert_matches(events, vector["expect"])
