"""Debouncer, FlappingDetector and the microsecond clock, with plain integer times."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from drivers.debounce import (Debouncer, FlappingDetector, FlappingPolicy, ms_to_micros, to_micros,
                              to_seconds)

# (name, windows (active, inactive) us, start level, [(t, level)], expected [(t accepted, level)])
DEBOUNCE_CASES: List[Tuple[str, Tuple[int, int], bool, List[Tuple[int, bool]], List[Tuple[int, bool]]]] = [
    ("start level accepted after its window", (30, 50), False, [], [(50, False)]),
    ("clean change", (30, 50), False, [(100, True)], [(50, False), (130, True)]),
    ("bounce restarts the window", (30, 50), False,
     [(100, True), (101, False), (102, True), (103, False), (104, True)], [(50, False), (134, True)]),
    ("glitch shorter than the window vanishes", (30, 50), False, [(100, True), (129, False)], [(50, False)]),
    ("asymmetric: inactive uses its own window", (30, 50), True, [(100, False)], [(30, True), (150, False)]),
    ("completes at the same instant as an edge", (30, 50), False, [(100, True), (130, False)],
     [(50, False), (130, True), (180, False)]),
    ("zero window accepts at once", (0, 0), False, [(5, True)], [(0, False), (5, True)]),
]


@pytest.mark.parametrize("case", DEBOUNCE_CASES, ids=[c[0] for c in DEBOUNCE_CASES])
def test_debouncer(case: Any) -> None:
    _, (active, inactive), level0, edges, expect = case
    d = Debouncer(active, inactive)
    d.start(level0, 0)
    got: List[Tuple[int, bool]] = []

    def run(t: int) -> None:
        while (due := d.deadline()) is not None and due <= t:
            got.append((due, d.accept(due)))

    for t, level in edges:
        run(t)
        d.edge(level, t)
    run(10**9)
    assert got == expect
    assert d.deadline() is None and d.stable == d.raw


def test_debouncer_ignores_repeated_level_and_refuses_early_accept() -> None:
    d = Debouncer(30, 30)
    d.start(False, 0)
    assert d.accept(30) is False
    assert d.edge(False, 40) is False and d.deadline() is None
    assert d.edge(True, 50) is True and d.deadline() == 80
    with pytest.raises(RuntimeError):
        d.accept(79)
    with pytest.raises(RuntimeError):
        Debouncer(1, 1).edge(True, 0)


def test_flapping_nth_edge_within_window() -> None:
    f = FlappingDetector(FlappingPolicy(max_edges=3, window_s=1, quiet_s=5))
    assert [f.edge(t) for t in (0, 400_000)] == [False, False]
    assert f.edge(999_999) is True and f.flapping
    assert f.deadline() == 999_999 + 5_000_000
    assert f.edge(2_000_000) is False and f.deadline() == 7_000_000
    with pytest.raises(RuntimeError):
        f.recover(6_999_999)
    f.recover(7_000_000)
    assert not f.flapping and f.deadline() is None and f.edges_in_window() == 0


def test_flapping_edge_exactly_window_old_has_left() -> None:
    f = FlappingDetector(FlappingPolicy(max_edges=3, window_s=1, quiet_s=5))
    assert [f.edge(t) for t in (0, 500_000, 1_000_000)] == [False, False, False]
    assert f.edges_in_window() == 2
    assert f.edge(1_000_001) is True


def test_flapping_episode_ends_quiet_s_after_its_last_burst_edge() -> None:
    # docs/spec.md §3: a burst edge has ceil(max_edges / 4) = 3 raw edges within window_s,
    # itself included; lone edges during the episode do not move its end.
    f = FlappingDetector(FlappingPolicy(max_edges=10, window_s=1, quiet_s=5))
    assert [f.edge(100_000 * k) for k in range(10)] == [False] * 9 + [True]
    assert f.deadline() == 900_000 + 5_000_000
    assert f.edge(3_000_000) is False and f.edge(3_500_000) is False
    assert f.deadline() == 5_900_000             # two edges within 1 s: no burst
    assert f.edge(3_999_999) is False
    assert f.deadline() == 3_999_999 + 5_000_000  # the third: a burst edge
    assert f.edge(4_999_999) is False            # 3_999_999 has left the window just now
    assert f.deadline() == 8_999_999
    f.recover(8_999_999)
    assert not f.flapping and f.edges_in_window() == 0


def test_flapping_small_max_edges_every_edge_is_a_burst() -> None:
    f = FlappingDetector(FlappingPolicy(max_edges=4, window_s=1, quiet_s=5))   # ceil(4 / 4) = 1
    assert [f.edge(t) for t in (0, 1, 2, 3)] == [False, False, False, True]
    assert f.edge(9_000_000) is False and f.deadline() == 14_000_000


@pytest.mark.parametrize("kwargs", [dict(max_edges=1, window_s=1), dict(max_edges=True, window_s=1),
                                    dict(max_edges=5, window_s=0), dict(max_edges=5, window_s=1, quiet_s=-1)])
def test_flapping_policy_validates(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FlappingPolicy(**kwargs)


@pytest.mark.parametrize("seconds", [0.0, 0.1, 0.3, 1.03, 12345.678901, 1e6 + 0.000001])
def test_micros_round_trip(seconds: float) -> None:
    assert to_micros(to_seconds(to_micros(seconds))) == to_micros(seconds)
    assert to_micros(0.1) + ms_to_micros(200) == to_micros(0.3)
